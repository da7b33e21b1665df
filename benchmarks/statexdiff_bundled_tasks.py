"""StateXDiff with default settings on each bundled dataset's natural out-of-distribution split.

Command (repository root, after `make install`):

    .venv/bin/python benchmarks/statexdiff_bundled_tasks.py [--all-folds] [--seed 0]

For each task of `sxdiff.benchmark.TASKS` (glioblastoma: unseen patient; L1000: unseen drugs; Norman:
unseen two-gene combinations) the first fold (or every fold with `--all-folds`) is scored with
`sxdiff.benchmark.compare_on_fold`: control and mean-shift baselines, and StateXDiff trained with the
defaults of `StateXDiff()` and `StateXDiff.train()` (no tuning; the epoch count and batch size follow
from the number of training cells). Metrics are means over the fold's held-out conditions. The
wall-clock time covers StateXDiff's training and the prediction of every held-out condition (50 DDIM
steps). Writes benchmarks/results/statexdiff_bundled_tasks[_all_folds].md and .csv.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import warnings
from pathlib import Path

import pandas as pd
import torch

import sxdiff
from sxdiff.benchmark import TASKS, compare_on_fold

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all-folds", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    for name in ("scvi", "lightning", "lightning.pytorch", "sxdiff.drugs"):
        logging.getLogger(name).setLevel(logging.ERROR)
    rows = []
    for name, task in TASKS.items():
        folds = list(task.folds(seed=args.seed))
        for fold in folds if args.all_folds else folds[:1]:
            scores, seconds = compare_on_fold(name, tuple(fold.holdout), seed=args.seed)
            means = scores.groupby(level=0).mean()
            for metric, values in means.iterrows():
                for method, value in values.items():
                    rows.append({"task": name, "fold": fold.name, "metric": metric, "method": method, "value": value})
            rows.append(
                {
                    "task": name,
                    "fold": fold.name,
                    "metric": "seconds (train + predict)",
                    "method": "StateXDiff",
                    "value": seconds["StateXDiff (train + predict)"],
                }
            )
            print(name, fold.name, f"{seconds['StateXDiff (train + predict)']:.0f} s", flush=True)
    frame = pd.DataFrame(rows)
    suffix = "_all_folds" if args.all_folds else ""
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / f"statexdiff_bundled_tasks{suffix}.csv", index=False)
    table = frame.pivot_table(index=["task", "metric"], columns="method", values="value", aggfunc="mean")
    table = table[["control", "mean_shift", "StateXDiff"]]
    lines = [
        "# StateXDiff (defaults) on the bundled out-of-distribution tasks",
        "",
        f"Command: `.venv/bin/python benchmarks/statexdiff_bundled_tasks.py{' --all-folds' if args.all_folds else ''} "
        f"--seed {args.seed}`  ",
        f"sxdiff {sxdiff.__version__}, torch {torch.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPU cores.",
        "",
        "Folds: " + "; ".join(f"{t}: {', '.join(sorted(set(frame.loc[frame.task == t, 'fold'])))}" for t in TASKS),
        "",
        "Means over each fold's held-out conditions (then over folds); `seconds` is StateXDiff's training plus the "
        "prediction of all held-out conditions.",
        "",
        table.round(3).to_markdown(),
        "",
        "One seed; the evaluation issue's harness adds the ceiling, more baselines, seeds and paired tests.",
    ]
    (RESULTS / f"statexdiff_bundled_tasks{suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
