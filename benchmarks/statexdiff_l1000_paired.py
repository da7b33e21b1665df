"""Paired per-condition comparison of StateXDiff and mean shift on the L1000 unseen-drug folds.

Command (repository root, after `make install`):

    .venv/bin/python benchmarks/statexdiff_l1000_paired.py

Same folds, settings and scoring as `statexdiff_bundled_tasks.py --all-folds` for L1000 (defaults, seed 0),
but keeps every held-out (compound, dose) condition, so the two methods can be compared condition by
condition: mean difference with a 95 % bootstrap interval and a two-sided Wilcoxon signed-rank test on
the top-50-DEG Pearson delta. Writes benchmarks/results/statexdiff_l1000_paired.md.
"""

from __future__ import annotations

import logging
import os
import platform
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

import sxdiff
from sxdiff.benchmark import TASKS, compare_on_fold

RESULTS = Path(__file__).resolve().parent / "results"
METRIC = "pearson_delta_top50"


def main() -> None:
    warnings.filterwarnings("ignore")
    for name in ("scvi", "lightning", "lightning.pytorch", "sxdiff.drugs"):
        logging.getLogger(name).setLevel(logging.ERROR)
    task = TASKS["l1000_unseen_drugs"]
    rows = []
    for fold in task.folds(seed=0):
        scores, _ = compare_on_fold(task.name, tuple(fold.holdout), seed=0)
        values = scores.loc[METRIC]
        rows.append(values.reset_index(drop=True).assign(fold=fold.name))
    frame = pd.concat(rows, ignore_index=True).dropna(subset=["mean_shift", "StateXDiff"])
    difference = (frame["StateXDiff"] - frame["mean_shift"]).to_numpy()
    rng = np.random.default_rng(0)
    boot = [rng.choice(difference, size=len(difference)).mean() for _ in range(2000)]
    low, high = np.percentile(boot, [2.5, 97.5])
    test = wilcoxon(frame["StateXDiff"], frame["mean_shift"])
    lines = [
        "# StateXDiff vs mean shift on L1000 unseen drugs, condition by condition",
        "",
        "Command: `.venv/bin/python benchmarks/statexdiff_l1000_paired.py`  ",
        f"sxdiff {sxdiff.__version__}, Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPU cores.",
        "",
        f"{len(frame)} held-out (compound, dose) conditions over 3 folds of 10 unseen compounds; {METRIC}.",
        "",
        "| | value |",
        "|---|---|",
        f"| StateXDiff mean | {frame['StateXDiff'].mean():.3f} |",
        f"| mean shift mean | {frame['mean_shift'].mean():.3f} |",
        f"| mean difference (StateXDiff - mean shift) | {difference.mean():+.3f} (95 % bootstrap CI {low:+.3f} to "
        f"{high:+.3f}) |",
        f"| StateXDiff better in | {(difference > 0).sum()} of {len(difference)} conditions |",
        f"| Wilcoxon signed-rank (two-sided) | p = {test.pvalue:.3g} |",
        "",
        "Reading: " + _reading(low, high),
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "statexdiff_l1000_paired.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _reading(low: float, high: float) -> str:
    if low > 0:
        return "StateXDiff is better than mean shift on these conditions (the interval excludes 0)."
    if high < 0:
        return "mean shift is better than StateXDiff on these conditions (the interval excludes 0)."
    return "a tie; the interval of the mean difference contains 0."


if __name__ == "__main__":
    main()
