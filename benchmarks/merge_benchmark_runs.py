"""Merge the result folders of several ``sxdiff benchmark`` runs (e.g. one per task) into one report.

Usage::

    python benchmarks/merge_benchmark_runs.py --out benchmarks/results/benchmark_session7 run_a run_b ...

Each run folder holds ``scores.csv`` and ``seconds.csv`` (and ``report.md``, whose first line after the title names
its command; ``translator_cv.csv`` where the run had ``--citeseq``: the first one found is kept). Scores are
concatenated as they are; the report is rendered again over all of them, with the
commands of every run.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import replace
from pathlib import Path

import pandas as pd

from sxdiff.benchmark import BenchmarkResult
from sxdiff.benchmark._harness import PROFILES, _metadata
from sxdiff.benchmark._report import write_results


def _date(run: Path) -> str:
    found = re.search(r"; (\d{4}-\d\d-\d\d \d\d:\d\d UTC);", (run / "report.md").read_text())
    return found.group(1) if found else "?"


def _command(run: Path) -> str:
    found = re.search(r"Command: `([^`]*)`", (run / "report.md").read_text())
    return found.group(1) if found else str(run)


def merge(runs: list[Path], out: Path) -> BenchmarkResult:
    """One :class:`~sxdiff.benchmark.BenchmarkResult` over every run's scores and seconds, written to ``out``."""
    scores = pd.concat(
        [pd.read_csv(run / "scores.csv", dtype={"seed": str}, keep_default_na=False, na_values=[""]) for run in runs],
        ignore_index=True,
    )
    # as the harness writes them: "-" for the deterministic methods, integers for StateXDiff's seeds
    scores["seed"] = [int(s) if s.lstrip("-").isdigit() else s for s in scores["seed"]]
    seconds = pd.concat([pd.read_csv(run / "seconds.csv") for run in runs], ignore_index=True)
    seeds = tuple(sorted({s for s in scores["seed"] if isinstance(s, int)}))
    command = " ; ".join(_command(run) for run in runs)
    metadata = _metadata(command, float(seconds["seconds"].sum()), sorted(scores["task"].unique()))
    metadata["date"] = " / ".join(_date(run) for run in runs)
    translators = [run / "translator_cv.csv" for run in runs if (run / "translator_cv.csv").exists()]
    result = BenchmarkResult(
        scores=scores,
        seconds=seconds,
        profile=replace(PROFILES["full"], seeds=seeds or (0,)),
        translator=pd.read_csv(translators[0]) if translators else None,  # the same reference in every run
        metadata=metadata,
    )
    write_results(result, out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="result folders of sxdiff benchmark runs")
    parser.add_argument("--out", type=Path, required=True, help="folder for the merged results")
    args = parser.parse_args()
    merge(args.runs, args.out)
    print(f"Merged {len(args.runs)} runs into {args.out / 'report.md'}")


if __name__ == "__main__":
    main()
