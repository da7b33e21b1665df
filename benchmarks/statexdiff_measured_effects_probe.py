"""Probe: StateXDiff with and without the measured-effects correction on one fold, one training.

The correction is fitted after training, so one model serves both arms: zeroing the buffer gives the ablation
(``measured_effects=False`` trains the same network and skips the fit). Prints per-method means over test
conditions and the model's fit of its training singles.

    python benchmarks/statexdiff_measured_effects_probe.py norman_unseen_combinations 0
"""

import sys
import time

import numpy as np
import pandas as pd

from sxdiff.benchmark import TASKS
from sxdiff.benchmark._run import predict_fold
from sxdiff.benchmark._statexdiff_fold import predict_statexdiff, train_fold_statexdiff
from sxdiff.metrics import evaluate

METRICS = ["pearson_delta_top50", "pearson_delta", "mse_delta", "energy_distance", "de_overlap"]


def score(task, fold, model, adata, seed):
    columns = ["perturbation"] + ([task.dose_key] if task.dose_key else [])
    test = fold.adata[(fold.adata.obs["sxdiff_split"].astype(str) == "test").to_numpy()]
    context = adata.obs[task.context_key].astype(str)
    tables = []
    for name in test.obs[task.context_key].astype(str).unique():
        truth = test[(test.obs[task.context_key].astype(str) == name).to_numpy()].copy()
        truth.obs[columns] = truth.obs[columns].astype(str)
        conditions = truth.obs[columns].drop_duplicates().reset_index(drop=True)
        pred = predict_statexdiff(model, adata, conditions, name, context_key=task.context_key, seed=seed, n_steps=10)
        pred.obs[columns] = pred.obs[columns].astype(str)
        sources = adata.obs_names[adata.obs["is_control"].to_numpy() & (context == name).to_numpy()]
        tables.append(evaluate(pred, truth, fold.adata[sources], dose_key=task.dose_key, context_key=task.context_key))
    return pd.concat(tables)


def main(task_name: str, seed: int) -> None:
    task = TASKS[task_name]
    fold = next(iter(task.folds()))
    start = time.perf_counter()
    model, adata = train_fold_statexdiff(task, fold, seed=seed)
    print(f"trained in {time.perf_counter() - start:.0f} s; measured_effects_ = {model.measured_effects_}")
    rows = {}
    rows["StateXDiff"] = score(task, fold, model, adata, seed)
    correction = model.module.composer.measured_correction.clone()
    model.module.composer.measured_correction.zero_()
    rows["StateXDiff[no_measured_effects]"] = score(task, fold, model, adata, seed)
    model.module.composer.measured_correction.copy_(correction)
    for method in ("additive", "mean_shift"):
        tables = [
            evaluate(p, t, s, dose_key=task.dose_key, context_key=task.context_key)
            for _, p, t, s in predict_fold(task, fold, method)
        ]
        rows[method] = pd.concat(tables)
    out = {}
    for name, table in rows.items():
        means = table[table["metric"].isin(METRICS)].groupby("metric")["value"].mean()
        out[name] = means
    print(pd.DataFrame(out).T[[m for m in METRICS if m in pd.DataFrame(out).T.columns]].round(5).to_string())
    print(
        "correction norm per corrected perturbation:",
        np.round(correction.norm(dim=1)[correction.norm(dim=1) > 0].numpy()[:10], 3),
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
