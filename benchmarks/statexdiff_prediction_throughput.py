"""Prediction throughput of StateXDiff: cells per second at 10 and 50 DDIM steps, 2,000 genes, CPU.

Command (repository root, after `make install`):

    .venv/bin/python benchmarks/statexdiff_prediction_throughput.py [--cells 5000]

Synthetic counts (2,000 genes, 3 contexts, 4 drugs); the model is trained for one epoch only — speed
does not depend on how well it is trained. Default model size (DiT: d_model 128, 4 blocks) and the MLP
ablation. Writes benchmarks/results/statexdiff_prediction_throughput.md.
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
from sxdiff.datasets.synthetic import drug_table, perturbation_data

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=5000, help="source cells to predict")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    for name in ("scvi", "lightning", "lightning.pytorch", "sxdiff.drugs"):
        logging.getLogger(name).setLevel(logging.ERROR)
    adata = perturbation_data(
        n_genes=2000,
        n_contexts=3,
        n_drugs=4,
        n_combinations=0,
        n_cells_per_condition=20,
        n_control_cells=max(200, args.cells // 3 + 1),
        seed=0,
    )
    sxdiff.pp.drug_features(adata, drug_key="perturbation", drug_table=drug_table(adata), use_bundled_tables=False)
    sxdiff.model.StateXDiff.setup_anndata(
        adata, perturbation_key="perturbation", control_value="control", dose_key="dose", context_key="context"
    )
    sources = adata[adata.obs["is_control"].to_numpy()][: args.cells].copy()
    conditions = pd.DataFrame({"perturbation": ["drug_0"], "dose": ["1.0"]})
    rows = []
    for denoiser in ("dit", "mlp"):
        torch.manual_seed(0)
        model = sxdiff.model.StateXDiff(adata, denoiser=denoiser)
        model.train(max_epochs=2, enable_progress_bar=False)
        for steps in (10, 50):
            start = time.perf_counter()
            model.predict(sources, conditions, n_steps=steps, seed=0)
            seconds = time.perf_counter() - start
            rows.append(
                {
                    "denoiser": denoiser,
                    "ddim_steps": steps,
                    "cells": sources.n_obs,
                    "seconds": round(seconds, 2),
                    "cells_per_second": round(sources.n_obs / seconds),
                }
            )
    frame = pd.DataFrame(rows)
    lines = [
        "# StateXDiff prediction throughput (CPU)",
        "",
        f"Command: `.venv/bin/python benchmarks/statexdiff_prediction_throughput.py --cells {args.cells}`  ",
        f"sxdiff {sxdiff.__version__}, torch {torch.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads; 2,000 genes.",
        "",
        frame.to_markdown(index=False),
        "",
        "Target of the model issue: at least 1,000 cells/s at 10 DDIM steps on 2 CPU cores.",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "statexdiff_prediction_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
