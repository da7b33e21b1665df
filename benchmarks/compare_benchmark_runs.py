"""Compare one method between two ``sxdiff benchmark`` runs on the same conditions (e.g. before and after a change).

Usage::

    python benchmarks/compare_benchmark_runs.py NEW_RUN OLD_RUN [--method StateXDiff] [--old-method StateXDiff]
        [--task TASK ...]

Reads both runs' ``scores.csv``, keeps the conditions (task, fold, context, condition) both scored, and prints, per
task and metric, the mean of each and the Wilcoxon signed-rank test paired by condition (values averaged over seeds
first; ``+`` = the new run better, lower is better for MSE and the distances), as in the benchmark report. Valid
only when the runs differ in nothing but what is compared: the same data, folds and seeds (training with a given
seed is deterministic on CPU, so a re-run reproduces the old scores exactly where nothing changed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from sxdiff.benchmark._statistics import paired_tests

METRICS = ["pearson_delta_top50", "pearson_delta", "mse_delta", "energy_distance"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("new", type=Path)
    parser.add_argument("old", type=Path)
    parser.add_argument("--method", default="StateXDiff")
    parser.add_argument("--old-method", default=None, help="method name in the old run (default: --method)")
    parser.add_argument("--task", nargs="*", default=None)
    args = parser.parse_args()
    new = pd.read_csv(args.new / "scores.csv")
    old = pd.read_csv(args.old / "scores.csv")
    new = new[new["method"] == args.method].assign(method="new")
    old = old[old["method"] == (args.old_method or args.method)].assign(method="old")
    if args.task:
        new, old = new[new["task"].isin(args.task)], old[old["task"].isin(args.task)]
    old = old[old["task"].isin(new["task"].unique()) & old["seed"].isin(new["seed"].unique())]
    scores = pd.concat([new, old], ignore_index=True)
    scores = scores[scores["metric"].isin(METRICS)]
    means = scores.groupby(["task", "metric", "method"])["value"].mean().unstack().round(4)
    tests = paired_tests(scores, "new", ["old"], METRICS).set_index(["task", "metric"])
    table = means.join(tests[["n", "mean_difference", "reference_better", "p_value"]])
    print(f"{args.method} in {args.new} (new) vs {args.old_method or args.method} in {args.old} (old)")
    print(table.to_markdown())


if __name__ == "__main__":
    main()
