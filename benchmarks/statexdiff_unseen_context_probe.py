"""Probe: where StateXDiff's error on unseen contexts comes from (one training per fold, switches at prediction).

Each fold's model is trained once with defaults; the arms switch one part off at prediction time only:
``no_measured`` (measured-effects correction zeroed), ``variation0`` (no sampled residual), ``mu0`` (state
deviation of *novel* perturbations off), ``no_state_dev`` (the state-dependent deviation off for every member),
``no_context_transfer`` (the context-transfer weights (τ, ν) set to 1: effects carried into the new context whole).
Prints running means over the folds so far (over conditions).

    python benchmarks/statexdiff_unseen_context_probe.py mcfaline23_unseen_cell_line
"""

import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from statexdiff_measured_effects_probe import score

from sxdiff.benchmark import TASKS
from sxdiff.benchmark._run import predict_fold
from sxdiff.benchmark._statexdiff_fold import train_fold_statexdiff
from sxdiff.metrics import evaluate

METRICS = ["pearson_delta_top50", "pearson_delta", "mse_delta", "energy_distance"]


def arms(task, fold, model, adata) -> dict[str, pd.DataFrame]:
    """Scores of the trained model with each part switched off in turn (restored afterwards)."""
    composer, module = model.module.composer, model.module
    out = {"default": score(task, fold, model, adata, 0)}
    correction = composer.measured_correction.clone()
    composer.measured_correction.zero_()
    out["no_measured"] = score(task, fold, model, adata, 0)
    composer.measured_correction.copy_(correction)
    scale = float(module.variation_scale)
    module.set_variation_scale(0.0)
    out["variation0"] = score(task, fold, model, adata, 0)
    module.set_variation_scale(scale)
    shrinkage = composer.novelty_shrinkage.clone()
    composer.novelty_shrinkage[1] = 0.0
    out["mu0"] = score(task, fold, model, adata, 0)
    composer.novelty_shrinkage.copy_(shrinkage)
    composer.state_effects = False
    out["no_state_dev"] = score(task, fold, model, adata, 0)
    composer.state_effects = True
    transfer = model.context_transfer_
    module.set_context_transfer(1.0, 1.0)
    out["no_context_transfer"] = score(task, fold, model, adata, 0)
    module.set_context_transfer(transfer["tau"], transfer["nu"])
    return out


def main(task_name: str, n_folds: int | None) -> None:
    task = TASKS[task_name]
    rows = []
    for fold in list(task.folds())[:n_folds]:
        start = time.perf_counter()
        model, adata = train_fold_statexdiff(task, fold, seed=0)
        measured = {k: v for k, v in model.measured_effects_.items() if k != "conditions"}
        print(
            f"{fold.name}: trained in {time.perf_counter() - start:.0f} s; variation scale "
            f"{model.variation_scale_.get('chosen')}; measured effects {measured}; context transfer "
            f"{ {k: round(v, 3) for k, v in model.context_transfer_.items()} }",
            flush=True,
        )
        tables = arms(task, fold, model, adata)
        for method in ("control", "mean_shift", "state_matched"):
            keys = {"dose_key": task.dose_key, "context_key": task.context_key}
            tables[method] = pd.concat([evaluate(p, t, s, **keys) for _, p, t, s in predict_fold(task, fold, method)])
        for name, table in tables.items():
            rows.append(table.assign(arm=name, fold=fold.name))
        scores = pd.concat(rows)
        means = scores[scores["metric"].isin(METRICS)].groupby(["arm", "metric"])["value"].mean().unstack()
        print(means[METRICS].round(4).to_string(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
