"""Command-line interface: ``sxdiff demo`` (and, later, ``sxdiff benchmark``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    import pandas as pd

    from sxdiff.benchmark import TASKS, run_tasks, summarize

    tasks = list(TASKS) if args.task == "all" else [args.task]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = run_tasks(tasks, methods=("control", "mean_shift"), seed=args.seed)
    table.to_csv(out / "metrics.csv", index=False)
    summary = summarize(table)
    summary.to_csv(out / "summary.csv", index=False)
    wide = summary.pivot_table(index=["task", "method"], columns="metric", values="mean")
    with pd.option_context("display.width", 120, "display.float_format", "{:.3f}".format):
        print("Pearson of predicted vs true expression changes, mean over held-out conditions:")
        print(wide.to_string())
    figure = _demo_figure(out / "demo_glioblastoma_PW034.png")
    print(f"\nPer-condition metrics: {out / 'metrics.csv'}\nSummary: {out / 'summary.csv'}\nFigure: {figure}")
    return 0


def _demo_figure(path: Path) -> Path:
    """Predicted vs true change for the unseen patient PW034 under panobinostat, per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sxdiff.benchmark import TASKS, predict_fold
    from sxdiff.pl import delta_scatter

    task = TASKS["glioblastoma_unseen_patient"]
    fold = next(f for f in task.folds() if f.holdout == ["PW034"])
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.5), sharex=True, sharey=True)
    for ax, method in zip(axes, ("control", "mean_shift"), strict=True):
        ((_, pred, truth, source),) = predict_fold(task, fold, method)
        delta_scatter(pred, truth, source, ax=ax, show=False)
        ax.set_title(f"{method}: {ax.get_title()}")
    fig.suptitle("Unseen patient PW034, panobinostat 0.2 uM (glioblastoma slices)")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sxdiff`` command."""
    parser = argparse.ArgumentParser(prog="sxdiff", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="run the pipeline on the bundled real datasets: load, validate, split, predict, score",
    )
    demo.add_argument(
        "--task",
        default="all",
        choices=["all", "glioblastoma_unseen_patient", "l1000_unseen_drugs", "norman_unseen_combinations"],
    )
    demo.add_argument("--out", default="sxdiff_demo", help="folder for the CSV results (default: sxdiff_demo)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
