"""StateXDiff on one real unseen-patient fold (glioblastoma, PW034 held out) next to the baselines.

Command (repository root, after `make install`):

    .venv/bin/python benchmarks/statexdiff_glioblastoma_fold.py [--epochs 60] [--denoiser dit]

The same comparison as `make demo` (`sxdiff.benchmark.compare_on_fold`): bundled Zhao et al. 2021 data
(5 patients, DMSO vs panobinostat, 300 genes, counts); PW034's treated cells are the test set and its
controls the prediction sources; StateXDiff trains on counts with default settings except the epoch
budget (and the denoiser); predictions are log-normalised (1e4 per cell) and scored with
`sxdiff.metrics.evaluate` next to mean shift and control. Writes
benchmarks/results/statexdiff_glioblastoma_fold[_mlp].md.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import warnings
from pathlib import Path

import sxdiff
from sxdiff.benchmark import compare_on_fold

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--denoiser", choices=["dit", "mlp"], default="dit")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    for name in ("scvi", "lightning", "lightning.pytorch", "sxdiff.drugs"):
        logging.getLogger(name).setLevel(logging.ERROR)
    scores, seconds = compare_on_fold(epochs=args.epochs, denoiser=args.denoiser)
    lines = [
        "# StateXDiff on the unseen glioblastoma patient PW034 (one fold)",
        "",
        f"Command: `.venv/bin/python benchmarks/statexdiff_glioblastoma_fold.py --epochs {args.epochs} "
        f"--denoiser {args.denoiser}`  ",
        f"sxdiff {sxdiff.__version__}, Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} "
        f"CPU cores; StateXDiff training + prediction of the 500 PW034 controls (50 DDIM steps): "
        f"{seconds['StateXDiff (train + predict)']:.0f} s.",
        "",
        scores.round(3).to_markdown(),
        "",
        "One fold and one seed: a smoke measurement, not the benchmark of the evaluation issue.",
    ]
    RESULTS.mkdir(exist_ok=True)
    suffix = "" if args.denoiser == "dit" else f"_{args.denoiser}"
    (RESULTS / f"statexdiff_glioblastoma_fold{suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
