"""Prediction quality against the number of DDIM steps (10, 25, 50, 100) on a bundled dataset.

Command (repository root, after `make install`):

    .venv/bin/python benchmarks/statexdiff_ddim_steps.py [--task glioblastoma_unseen_patient] [--seed 0]

Trains StateXDiff once with default settings on the task's first fold, then predicts the held-out
conditions from the same source cells with the same seed at each step count, and scores them with
`sxdiff.metrics.evaluate` (means over held-out conditions). Reports the smallest step count whose
Pearson delta (all genes and top-50 DEGs) is within 2 % of the 100-step value, and prediction time.
Writes benchmarks/results/statexdiff_ddim_steps_<task>.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
import warnings
from pathlib import Path

import pandas as pd
import torch

import sxdiff
from sxdiff.benchmark import TASKS
from sxdiff.benchmark._statexdiff_fold import _log_normalise
from sxdiff.metrics import evaluate

RESULTS = Path(__file__).resolve().parent / "results"
STEPS = (10, 25, 50, 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="glioblastoma_unseen_patient", choices=list(TASKS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    for name in ("scvi", "lightning", "lightning.pytorch", "sxdiff.drugs"):
        logging.getLogger(name).setLevel(logging.ERROR)
    task = TASKS[args.task]
    fold = next(task.folds(seed=args.seed))
    adata = fold.adata.copy()
    has_counts = "counts" in adata.layers
    sxdiff.pp.drug_features(adata, drug_key="perturbation", allow_structure_free=True)
    sxdiff.model.StateXDiff.setup_anndata(
        adata,
        perturbation_key="perturbation",
        control_value="control",
        dose_key=task.dose_key,
        context_key=task.context_key,
        layer="counts" if has_counts else None,
    )
    torch.manual_seed(args.seed)
    model = sxdiff.model.StateXDiff(adata)
    model.train(split_key="sxdiff_split", seed=args.seed, enable_progress_bar=False)
    split = adata.obs["sxdiff_split"].astype(str).to_numpy()
    columns = ["perturbation"] + ([task.dose_key] if task.dose_key else [])
    rows = []
    for context in pd.unique(adata.obs.loc[split == "test", task.context_key].astype(str)):
        in_context = (adata.obs[task.context_key].astype(str) == context).to_numpy()
        truth = fold.adata[(split == "test") & in_context].copy()
        truth.obs[columns] = truth.obs[columns].astype(str)
        sources_mask = adata.obs["is_control"].to_numpy() & in_context
        sources = adata[sources_mask].copy()
        if has_counts:
            sources.X = sources.layers["counts"]
        conditions = truth.obs[columns].drop_duplicates().reset_index(drop=True)
        for steps in STEPS:
            start = time.perf_counter()
            pred = model.predict(sources, conditions, n_steps=steps, seed=args.seed)
            seconds = time.perf_counter() - start
            pred = _log_normalise(pred) if has_counts else pred
            pred.obs[columns] = pred.obs[columns].astype(str)
            scores = evaluate(
                pred, truth, fold.adata[sources_mask], dose_key=task.dose_key, context_key=task.context_key
            )
            means = scores.groupby("metric")["value"].mean()
            rows.append({"steps": steps, "context": context, "seconds": seconds, **means.to_dict()})
    frame = pd.DataFrame(rows).groupby("steps").mean(numeric_only=True)
    reference = frame.loc[100]
    within = frame[
        (frame["pearson_delta"] >= 0.98 * reference["pearson_delta"])
        & (frame["pearson_delta_top50"] >= 0.98 * reference["pearson_delta_top50"])
    ]
    best = int(within.index.min())
    lines = [
        f"# Prediction quality against DDIM steps ({args.task}, fold {fold.name})",
        "",
        f"Command: `.venv/bin/python benchmarks/statexdiff_ddim_steps.py --task {args.task} --seed {args.seed}`  ",
        f"sxdiff {sxdiff.__version__}, torch {torch.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPU cores. One trained model, same seed at every step count.",
        "",
        frame[["pearson_delta", "pearson_delta_top20", "pearson_delta_top50", "mse_delta", "seconds"]]
        .round(4)
        .to_markdown(),
        "",
        f"Smallest step count within 2 % of the 100-step Pearson delta (all genes and top-50 DEGs): **{best}**.",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"statexdiff_ddim_steps_{args.task}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
