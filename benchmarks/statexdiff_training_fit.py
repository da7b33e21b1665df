"""Does StateXDiff fit the conditions it was trained on? Training fit against the split-half ceiling, per task.

Command (repository root, after `make install`):

    .venv/bin/python benchmarks/statexdiff_training_fit.py [--tasks ...] [--seed 0] [--out NAME]
        [--model-kwargs '{"composition": "additive"}']

For the first fold of each task, StateXDiff is trained exactly as `sxdiff benchmark` trains it (defaults,
knowledge-proxy protein context, the fold's non-test cells). Then every *training* condition (context,
perturbation, dose) is predicted from the controls of its own context and scored by the top-50-DEG Pearson of
the predicted vs the observed mean change, next to its split-half ceiling (one half of the condition's cells
predicting the other half; conditions with fewer than 6 cells, such as single L1000 wells, have none). A model
that cannot reproduce its training conditions has an optimisation or capacity problem, not a generalisation
one. The held-out conditions of the fold are scored too, for reference only (nothing is chosen on them).
Writes benchmarks/results/statexdiff_training_fit[_NAME].md and .csv.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import sxdiff
from sxdiff.benchmark import TASKS
from sxdiff.benchmark._statexdiff_fold import predict_statexdiff, train_fold_statexdiff
from sxdiff.metrics import ceiling, pearson_delta

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_TASKS = ("glioblastoma_unseen_patient", "l1000_unseen_drugs", "norman_unseen_combinations")


def _mean(adata) -> np.ndarray:
    return np.asarray(adata.X.mean(0)).ravel()


def fit_task(name: str, seed: int, model_kwargs: dict) -> tuple[pd.DataFrame, float]:
    """Train on the first fold of a task; one row per (context, condition) of the fold, training and test."""
    task = TASKS[name]
    fold = next(task.folds(seed=0))
    start = time.perf_counter()
    model, adata = train_fold_statexdiff(task, fold, seed=seed, **model_kwargs)
    seconds = time.perf_counter() - start
    keys = ["perturbation"] + ([task.dose_key] if task.dose_key else [])
    full = fold.adata
    full_obs = full.obs[keys].astype(str)
    split = full.obs["sxdiff_split"].astype(str)
    context = full.obs[task.context_key].astype(str)
    rows = []
    for ctx in sorted(context.unique()):
        in_context = (context == ctx).to_numpy()
        controls = full[in_context & full.obs["is_control"].to_numpy()]
        if controls.n_obs == 0:
            continue
        perturbed = in_context & ~full.obs["is_control"].to_numpy()
        conditions = full_obs[perturbed].drop_duplicates().reset_index(drop=True)
        if conditions.empty:
            continue
        pred = predict_statexdiff(model, adata, conditions, ctx, context_key=task.context_key, seed=seed)
        pred_obs = pred.obs[keys].astype(str)
        control_mean = _mean(controls)
        for condition in conditions.itertuples(index=False):
            values = dict(zip(keys, condition, strict=True))
            cells = full[perturbed & (full_obs[keys] == pd.Series(values)).all(axis=1).to_numpy()]
            predicted = pred[(pred_obs[keys] == pd.Series(values)).all(axis=1).to_numpy()]
            row = {
                "task": name,
                "context": ctx,
                **values,
                "split": "test" if (split[cells.obs_names] == "test").all() else "train",
                "cells": cells.n_obs,
                "StateXDiff": pearson_delta(_mean(predicted), _mean(cells), control_mean, top_k=50),
                "ceiling": np.nan,
            }
            if cells.n_obs >= 6:
                table = ceiling(cells, controls, distances=False, n_repeats=3).set_index("metric")
                row["ceiling"] = table.at["pearson_delta_top50", "value"]
            rows.append(row)
    return pd.DataFrame(rows), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="", help="suffix of the result files")
    parser.add_argument("--model-kwargs", default="{}", help="JSON: StateXDiff arguments (an ablation)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import scvi

    scvi.settings.verbosity = logging.ERROR
    for name in ("scvi", "lightning", "lightning.pytorch", "sxdiff.drugs", "sxdiff"):
        logging.getLogger(name).setLevel(logging.ERROR)
    model_kwargs = json.loads(args.model_kwargs)
    started = time.perf_counter()
    tables, seconds = [], {}
    for name in args.tasks:
        table, seconds[name] = fit_task(name, args.seed, model_kwargs)
        tables.append(table)
        train = table[table["split"] == "train"]
        print(
            f"{name}: training fit {train['StateXDiff'].mean():.3f} (ceiling {train['ceiling'].mean():.3f}), "
            f"held out {table.loc[table['split'] == 'test', 'StateXDiff'].mean():.3f}; "
            f"trained in {seconds[name]:.0f} s",
            flush=True,
        )
    table = pd.concat(tables, ignore_index=True)
    suffix = f"_{args.out}" if args.out else ""
    command = "`.venv/bin/python benchmarks/statexdiff_training_fit.py" + (
        f" --tasks {' '.join(args.tasks)}" if list(args.tasks) != list(DEFAULT_TASKS) else ""
    )
    command += (f" --seed {args.seed}" if args.seed else "") + (f" --out {args.out}" if args.out else "")
    command += (f" --model-kwargs '{args.model_kwargs}'" if model_kwargs else "") + "`"
    lines = [
        "# StateXDiff training fit: training conditions against their split-half ceiling",
        "",
        f"Command: {command}  ",
        f"sxdiff {sxdiff.__version__}, Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPU cores; {time.perf_counter() - started:.0f} s in all. Seed {args.seed}; model "
        f"arguments {model_kwargs or 'default'}; first fold of each task, trained as `sxdiff benchmark` trains.",
        "",
        "Top-50-DEG Pearson of the predicted vs the observed mean change of each condition, from the controls of "
        "its own context. 'fraction' is the mean of StateXDiff / ceiling over conditions with a ceiling; the "
        "weakest half are the training conditions with the lowest ceiling. Held-out conditions are shown for "
        "reference; nothing was chosen on them.",
        "",
        "| task | training s | training conditions | fit | ceiling | fraction | weakest half: fit / ceiling | "
        "held-out conditions | held-out fit |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, group in table.groupby("task", sort=False):
        train = group[group["split"] == "train"]
        test = group[group["split"] == "test"]
        with_ceiling = train.dropna(subset=["ceiling"])
        fraction = (with_ceiling["StateXDiff"] / with_ceiling["ceiling"]).mean() if len(with_ceiling) else np.nan
        weak = with_ceiling[with_ceiling["ceiling"] <= with_ceiling["ceiling"].median()]
        weak_text = f"{weak['StateXDiff'].mean():.3f} / {weak['ceiling'].mean():.3f}" if len(weak) else "n/a"
        lines.append(
            f"| {name} | {seconds[name]:.0f} | {len(train)} | {train['StateXDiff'].mean():.3f} | "
            f"{with_ceiling['ceiling'].mean() if len(with_ceiling) else np.nan:.3f} | {fraction:.2f} | {weak_text} | "
            f"{len(test)} | {test['StateXDiff'].mean():.3f} |"
        )
    lines += ["", f"Per condition: `statexdiff_training_fit{suffix}.csv`."]
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / f"statexdiff_training_fit{suffix}.csv", index=False, float_format="%.4f")
    (RESULTS / f"statexdiff_training_fit{suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
