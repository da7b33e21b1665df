"""Command-line interface: ``sxdiff demo`` and ``sxdiff benchmark``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

DEMO_PATIENT = "PW034"
DEMO_BASELINES = ("control", "mean_shift", "additive")
DEMO_ROWS = ("null_floor", *DEMO_BASELINES, "ceiling")  # each baseline read between the two limits
DEMO_LIMIT_REPEATS = 2  # random half splits for the limits (the benchmark's full profile uses 5)
DEMO_METRICS = (
    "pearson_delta",
    "pearson_delta_top50",
    "pearson_delta_pert_top50",
    "mse_delta",
    "discrimination_score_l1",
    "de_overlap",
)


def _demo(args: argparse.Namespace) -> int:
    import pandas as pd

    from sxdiff.benchmark import TASK_GROUPS, Profile, run_benchmark, summarize

    tasks = list(TASK_GROUPS["core"]) if args.task == "all" else [args.task]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"Baselines (control, mean shift, additive), split-half ceiling and null floor on {', '.join(tasks)}...",
        flush=True,
    )
    profile = Profile(name="demo", tasks=tuple(tasks), ceiling_repeats=DEMO_LIMIT_REPEATS)
    table = run_benchmark(profile, methods=DEMO_BASELINES, include_model=False).scores
    table.to_csv(out / "metrics.csv", index=False)
    summary = summarize(table[table["method"].isin(DEMO_ROWS)], metrics=DEMO_METRICS)
    summary.to_csv(out / "summary.csv", index=False)
    wide = summary.pivot_table(index=["task", "method"], columns="metric", values="mean")
    order = {method: i for i, method in enumerate(DEMO_ROWS)}
    wide = wide.sort_index(key=lambda level: level.map(order) if level.name == "method" else level)
    wide = wide[[m for m in DEMO_METRICS if m in wide.columns]]
    with pd.option_context("display.width", 160, "display.float_format", "{:.3f}".format):
        print(
            "Baselines, mean over held-out conditions: Pearson of predicted vs true changes from control (all genes, "
            "top-50 DEGs) and from the perturbed mean (Systema), MSE of the changes, discrimination score (1: the "
            "right condition is the closest, about 0.5: chance), overlap of significant DEGs (cell-eval). The additive "
            "baseline (sum of the measured singles) is the one to beat on combinations; on single perturbations it "
            "is the mean shift. null_floor: control cells scored as if they were a prediction (what noise alone "
            "gives); ceiling: one half of the true cells predicting the other (L1000 has one well per condition, "
            "so no ceiling):"
        )
        print(wide.to_string())
    if args.epochs is None or args.epochs > 0:
        model_table, figure = _demo_model(out, args.epochs, args.seed, quiet=not args.verbose)
        model_table.to_csv(out / "statexdiff_glioblastoma_PW034.csv")
        with pd.option_context("display.width", 120, "display.float_format", "{:.3f}".format):
            budget = "default epochs" if args.epochs is None else f"{args.epochs} epochs"
            print(f"\nStateXDiff ({budget}) on the unseen patient {DEMO_PATIENT}, next to the baselines:")
            print(model_table.to_string())
        print(f"\nFigure: {figure}")
    print(f"Per-condition metrics: {out / 'metrics.csv'}\nSummary: {out / 'summary.csv'}")
    return 0


def _demo_model(out: Path, epochs: int | None, seed: int, quiet: bool = True):
    """Train StateXDiff on the glioblastoma fold without PW034; score and plot it beside the baselines.

    Training logs a few progress lines per stage (epoch, losses, seconds) even without ``--verbose``.
    """
    from sxdiff.benchmark import compare_on_fold
    from sxdiff.train import EpochProgressLog

    if quiet:  # importing scvi resets Lightning's log level (scvi.settings.verbosity): silence it afterwards
        import scvi

        scvi.settings.verbosity = logging.ERROR
        for name in ("lightning", "lightning.pytorch", "scvi"):
            logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("sxdiff.train._progress").setLevel(logging.INFO)

    budget = "default training budget" if epochs is None else f"{epochs} epochs"
    print(
        f"\nTraining StateXDiff on the glioblastoma patients other than {DEMO_PATIENT} ({budget}), then predicting "
        f"{DEMO_PATIENT}; progress below.",
        flush=True,
    )
    path = out / f"demo_glioblastoma_{DEMO_PATIENT}.png"
    progress = {"callbacks": [EpochProgressLog(n_lines=5)]}
    scores, _ = compare_on_fold(
        "glioblastoma_unseen_patient", (DEMO_PATIENT,), epochs=epochs, seed=seed, figure=path, train_kwargs=progress
    )
    return scores, path


def _benchmark(args: argparse.Namespace) -> int:
    import shlex

    from sxdiff.benchmark import run_benchmark

    if not args.verbose:  # importing scvi resets Lightning's log level: silence it again
        import scvi

        scvi.settings.verbosity = logging.ERROR
        for name in ("lightning", "lightning.pytorch", "scvi"):
            logging.getLogger(name).setLevel(logging.ERROR)
    result = run_benchmark(
        "quick" if args.quick else args.profile,
        tasks=args.task,
        seeds=args.seeds,
        ablations=args.ablations,
        train_steps=args.train_steps,
        citeseq=args.citeseq,
        out=args.out,
        command="sxdiff " + " ".join(shlex.quote(a) for a in (args.argv or [])),
    )
    report = Path(args.out) / "report.md"
    headline = report.read_text().split("\n## ")[:3]
    print("\n## ".join(headline).strip())
    print(f"\nFull report: {report}; per-condition scores: {Path(args.out) / 'scores.csv'}")
    print(f"Finished in {result.metadata['seconds'] / 60:.1f} minutes.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sxdiff`` command."""
    parser = argparse.ArgumentParser(prog="sxdiff", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="the pipeline on the bundled real datasets: load, validate, split, train, predict, score, plot",
    )
    demo.add_argument(
        "--task",
        default="all",
        choices=["all", "glioblastoma_unseen_patient", "l1000_unseen_drugs", "norman_unseen_combinations"],
        help="baseline tasks to run (default: all three)",
    )
    demo.add_argument("--out", default="sxdiff_demo", help="folder for the results (default: sxdiff_demo)")
    demo.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="StateXDiff epochs on the glioblastoma fold (default: the model's step-based default, about 2 minutes "
        "on 2 CPU cores; 0: skip)",
    )
    demo.add_argument(
        "--seed", type=int, default=0, help="StateXDiff seed (the baselines and folds are the benchmark's, seed 0)"
    )
    demo.set_defaults(func=_demo)
    bench = commands.add_parser(
        "benchmark",
        help="the out-of-distribution benchmark: baselines, StateXDiff, ablations, ceiling, paired tests",
    )
    bench.add_argument("--profile", default="quick", choices=["quick", "full"], help="what to run (default: quick)")
    bench.add_argument("--quick", action="store_true", help="same as --profile quick (1-2 min, 2 CPU cores)")
    bench.add_argument("--task", nargs="+", default=None, help="tasks to run (default: the profile's)")
    bench.add_argument("--seeds", nargs="+", type=int, default=None, help="StateXDiff seeds (default: the profile's)")
    bench.add_argument("--ablations", nargs="*", default=None, help="ablations to run (default: the profile's)")
    bench.add_argument("--train-steps", type=int, default=None, help="StateXDiff gradient steps (default: profile)")
    bench.add_argument("--citeseq", default=None, help="paired CITE-seq .h5mu for the translator cross-validation")
    bench.add_argument("--out", default="sxdiff_benchmark", help="folder for the results (default: sxdiff_benchmark)")
    bench.set_defaults(func=_benchmark)
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if not args.verbose:
        import warnings

        warnings.filterwarnings("ignore", module="lightning")
        warnings.filterwarnings("ignore", module="scvi")
        for name in ("lightning", "lightning.pytorch", "scvi", "sxdiff.drugs"):
            logging.getLogger(name).setLevel(logging.ERROR)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
