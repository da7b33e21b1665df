"""Probe: where protein context moves the energy distance on the sparse task (issue #18).

For the first ``N`` folds of ``synthetic_sparse_unseen_context`` (seed 0), trains StateXDiff with the default
knowledge-proxy protein context and with ``use_protein=False`` (the benchmark's ``no_protein`` ablation), prints each
model's chosen variation scale (and the validation energy distance at each grid value), the protein gate's mean
weight, and scores the test conditions with the chosen variation scale and with the sampled residual off
(``variation0``), so that the mean prediction's part of the distance is separated from the cell-level part.

    python benchmarks/protein_context_probe.py 1
"""

import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from statexdiff_measured_effects_probe import score

from sxdiff.benchmark import TASKS
from sxdiff.benchmark._statexdiff_fold import train_fold_statexdiff

METRICS = ["pearson_delta_top50", "mse_delta", "energy_distance"]
TASK = "synthetic_sparse_unseen_context"


def main(n_folds: int) -> None:
    task = TASKS[TASK]
    rows = []
    for fold in list(task.folds())[:n_folds]:
        for arm, kwargs in (("protein", {}), ("no_protein", {"use_protein": False})):
            start = time.perf_counter()
            model, adata = train_fold_statexdiff(task, fold, seed=0, **kwargs)
            vmcs = model.module.vmcs
            gate = float(vmcs.gate(vmcs.running_rho).mean()) if vmcs.use_protein else float("nan")
            print(
                f"{fold.name} {arm}: trained in {time.perf_counter() - start:.0f} s; variation scale "
                f"{ {k: round(v, 4) for k, v in model.variation_scale_.items()} }; mean gate a {gate:.3f}",
                flush=True,
            )
            rows.append(score(task, fold, model, adata, 0).assign(arm=arm, fold=fold.name))
            scale = float(model.module.variation_scale)
            model.module.set_variation_scale(0.0)
            rows.append(score(task, fold, model, adata, 0).assign(arm=f"{arm}, variation0", fold=fold.name))
            model.module.set_variation_scale(scale)
        scores = pd.concat(rows)
        means = scores[scores["metric"].isin(METRICS)].groupby(["arm", "metric"])["value"].mean().unstack()
        print(means[METRICS].round(4).to_string(), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
