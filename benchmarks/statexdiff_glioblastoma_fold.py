"""StateXDiff on one real unseen-patient fold (glioblastoma, PW034 held out) next to the baselines.

Command (repository root, after `make install`):

    .venv/bin/python benchmarks/statexdiff_glioblastoma_fold.py [--epochs 60] [--denoiser dit]

Bundled data (Zhao et al. 2021): 5 patients, DMSO vs panobinostat, 300 genes, raw counts. PW034's
treated cells are the test set; its controls are the prediction sources. The model trains on counts with
default settings except the epoch budget; predictions (counts scale) and true cells are log-normalised
(1e4 per cell) before scoring with `sxdiff.metrics.evaluate`. Mean shift and control are fit on the
log-normalised training cells. Writes benchmarks/results/statexdiff_glioblastoma_fold.md.
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
from sxdiff.benchmark import log_normalized

RESULTS = Path(__file__).resolve().parent / "results"


def _lognorm(adata):
    out = adata.copy()
    out.X = sxdiff.data.log_normalize(out.X)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--denoiser", choices=["dit", "mlp"], default="dit")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    for name in ("scvi", "lightning", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.ERROR)

    adata = sxdiff.datasets.glioblastoma_panobinostat()
    sxdiff.pp.drug_features(adata, drug_key="perturbation")
    sxdiff.pp.ood_split(adata, "unseen_context", ["PW034"], context_key="context")
    keys = {
        "perturbation_key": "perturbation",
        "control_value": "control",
        "dose_key": "dose",
        "context_key": "context",
    }
    sxdiff.model.StateXDiff.setup_anndata(adata, **keys)
    torch.manual_seed(0)
    model = sxdiff.model.StateXDiff(adata, denoiser=args.denoiser)
    start = time.perf_counter()
    model.train(max_epochs=args.epochs, split_key="sxdiff_split", enable_progress_bar=False)
    train_seconds = time.perf_counter() - start

    obs = adata.obs
    sources = adata[(obs["is_control"] & (obs["context"] == "PW034")).to_numpy()].copy()
    truth = adata[(obs["sxdiff_split"] == "test").to_numpy()].copy()
    conditions = pd.DataFrame({"perturbation": ["panobinostat"], "dose": [0.2]})
    start = time.perf_counter()
    pred = model.predict(sources, conditions, seed=0)
    predict_seconds = time.perf_counter() - start
    pred.obs["dose"] = pred.obs["dose"].astype(float)

    logged = log_normalized(adata)
    train = logged[(logged.obs["sxdiff_split"] != "test").to_numpy()]
    tables = {}
    score_keys = {"dose_key": "dose", "context_key": "context"}
    tables["StateXDiff"] = sxdiff.metrics.evaluate(_lognorm(pred), _lognorm(truth), _lognorm(sources), **score_keys)
    for name, cls in (("mean shift", sxdiff.model.MeanShiftBaseline), ("control", sxdiff.model.ControlBaseline)):
        baseline = cls(dose_key="dose", context_key="context").fit(train)
        log_sources = logged[sources.obs_names]
        tables[name] = sxdiff.metrics.evaluate(
            baseline.predict(log_sources, conditions), logged[truth.obs_names], log_sources, **score_keys
        )
    summary = pd.DataFrame({name: t.set_index("metric")["value"] for name, t in tables.items()}).round(3)
    lines = [
        "# StateXDiff on the unseen glioblastoma patient PW034 (one fold)",
        "",
        f"Command: `.venv/bin/python benchmarks/statexdiff_glioblastoma_fold.py --epochs {args.epochs} "
        f"--denoiser {args.denoiser}`  ",
        f"sxdiff {sxdiff.__version__}, Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} "
        f"CPU cores; training {train_seconds:.0f} s, prediction of {sources.n_obs} cells at 50 DDIM steps "
        f"{predict_seconds:.1f} s.",
        "",
        summary.to_markdown(),
        "",
        "One fold and one seed: a smoke measurement, not the benchmark of the evaluation issue.",
    ]
    RESULTS.mkdir(exist_ok=True)
    suffix = "" if args.denoiser == "dit" else f"_{args.denoiser}"
    (RESULTS / f"statexdiff_glioblastoma_fold{suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
