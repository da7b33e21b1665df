"""Does StateXDiff recover known drug effects on synthetic data? (a diagnostic, not a tuned benchmark)

Command (repository root, after `make install`):

    .venv/bin/python benchmarks/statexdiff_synthetic_recovery.py                      # DiT (default)
    .venv/bin/python benchmarks/statexdiff_synthetic_recovery.py --denoiser mlp       # MLP ablation

Data: `sxdiff.datasets.synthetic.perturbation_data` (60 genes, 3 contexts, 6 drugs x 3 doses, one
combination, effect size 2, seed 0). Two splits: `random` (held-out cells of seen conditions; scored in
context_0) and `unseen_context` (context_2's perturbed cells held out; scored in context_2). Model: the
defaults except a small network (n_latent 8, n_hidden 64, d_model 64, 2 blocks), 150 epochs (50 state +
100 diffusion), batch 64, lr 3e-3. Score: Pearson between predicted and true mean log-normalised change
from the context's controls at dose 10, against the noise-free truth and against the held-out cells;
the mean-shift baseline is scored the same way. Writes
benchmarks/results/statexdiff_synthetic_recovery[_<denoiser>].md.
"""

from __future__ import annotations

import logging
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import sxdiff
from sxdiff.datasets.synthetic import drug_table, expected_log_mean, perturbation_data

RESULTS = Path(__file__).resolve().parent / "results"


def _lognorm(x) -> np.ndarray:
    logged = sxdiff.data.log_normalize(x)
    return logged.toarray() if hasattr(logged, "toarray") else logged


def run(kind: str, context: str, denoiser: str = "dit", epochs: int = 150) -> list[dict]:
    adata = perturbation_data(
        n_genes=60,
        n_contexts=3,
        n_drugs=6,
        n_combinations=1,
        n_cells_per_condition=30,
        n_control_cells=100,
        effect_size=2.0,
        seed=0,
    )
    truth = adata.uns["synthetic_truth"]
    sxdiff.pp.drug_features(adata, drug_key="perturbation", drug_table=drug_table(adata), use_bundled_tables=False)
    holdout = ["context_2"] if kind == "unseen_context" else None
    sxdiff.pp.ood_split(adata, kind, holdout, context_key="context", dose_key="dose")
    sxdiff.model.StateXDiff.setup_anndata(
        adata, perturbation_key="perturbation", control_value="control", dose_key="dose", context_key="context"
    )
    torch.manual_seed(0)
    model = sxdiff.model.StateXDiff(adata, n_latent=8, n_hidden=64, d_model=64, n_blocks=2, denoiser=denoiser)
    start = time.perf_counter()
    model.train(
        max_epochs=epochs, state_epochs=50, split_key="sxdiff_split", batch_size=64, lr=3e-3, enable_progress_bar=False
    )
    seconds = time.perf_counter() - start
    logged = adata.copy()
    logged.X = _lognorm(adata.X)
    train = logged[(logged.obs["sxdiff_split"] != "test").to_numpy()]
    baseline = sxdiff.model.MeanShiftBaseline(dose_key="dose", context_key="context").fit(train)
    obs = adata.obs
    sources = adata[((obs["context"] == context) & obs["is_control"]).to_numpy()]
    control_mean = _lognorm(sources.X).mean(0)
    rows = []
    for drug in [str(d) for d in truth["drugs"]]:
        condition = pd.DataFrame({"perturbation": [drug], "dose": ["10.0"]})
        pred = model.predict(sources, condition, seed=0, n_steps=25)
        shift = baseline.predict(logged[sources.obs_names], condition)
        expected = expected_log_mean(truth, context, [drug], [10.0]) - expected_log_mean(truth, context, [], [])
        cells = adata[
            (
                (obs["context"] == context)
                & (obs["perturbation"] == drug)
                & (obs["dose"] == "10.0")
                & (obs["sxdiff_split"] == "test")
            ).to_numpy()
        ]
        observed = _lognorm(cells.X).mean(0) - control_mean
        for method, mean in (("StateXDiff", _lognorm(pred.X).mean(0)), ("mean shift", np.asarray(shift.X).mean(0))):
            rows.append(
                {
                    "split": kind,
                    "drug": drug,
                    "method": method,
                    "train_s": seconds,
                    "n_test_cells": cells.n_obs,
                    "r_truth": np.corrcoef(mean - control_mean, expected)[0, 1],
                    "r_heldout": np.corrcoef(mean - control_mean, observed)[0, 1] if cells.n_obs else np.nan,
                }
            )
    return rows


def _reading(summary: pd.DataFrame) -> str:
    """One sentence per score comparing StateXDiff with mean shift, from the numbers themselves."""
    parts = []
    for score, label in (("r_truth", "the noise-free truth"), ("r_heldout", "the held-out cells")):
        pairs = [
            f"{split.replace('_', ' ')} {summary.loc[(split, 'StateXDiff'), score]:.3f} vs "
            f"{summary.loc[(split, 'mean shift'), score]:.3f}"
            for split in ("random", "unseen_context")
        ]
        parts.append(f"Against {label}, StateXDiff vs mean shift: {'; '.join(pairs)}")
    return "Reading: " + ". ".join(parts) + ". Nothing here was tuned."


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--denoiser", choices=["dit", "mlp"], default="dit")
    parser.add_argument("--epochs", type=int, default=150, help="total epochs (50 of them stage 1)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    for name in ("scvi", "lightning", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.ERROR)
    rows = run("random", "context_0", args.denoiser, args.epochs) + run(
        "unseen_context", "context_2", args.denoiser, args.epochs
    )
    table = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    summary = table.groupby(["split", "method"])[["r_truth", "r_heldout"]].mean().round(3)
    seconds = table.groupby("split")["train_s"].first().round(0).to_dict()
    lines = [
        "# StateXDiff on synthetic data with known effects (diagnostic)",
        "",
        f"Command: `.venv/bin/python benchmarks/statexdiff_synthetic_recovery.py --denoiser {args.denoiser} "
        f"--epochs {args.epochs}`  ",
        f"sxdiff {sxdiff.__version__}, Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPU cores; training seconds per split: {seconds}.",
        "",
        "Mean over the 6 drugs at dose 10 of the Pearson correlation between predicted and true mean change "
        "(log-normalised) from the context's controls: against the noise-free truth (`r_truth`) and the held-out "
        "cells (`r_heldout`).",
        "",
        summary.to_markdown(),
        "",
        "Per drug:",
        "",
        table.drop(columns=["train_s"]).round(3).to_markdown(index=False),
        "",
        _reading(summary),
    ]
    suffix = "" if (args.denoiser, args.epochs) == ("dit", 150) else f"_{args.denoiser}_{args.epochs}"
    (RESULTS / f"statexdiff_synthetic_recovery{suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:12]))


if __name__ == "__main__":
    main()
