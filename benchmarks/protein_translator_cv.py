"""ProteinTranslator vs the coding-gene mRNA baseline: 5-fold cross-validation over cells.

Data: ../shared/data/citeseq/citefuse_eccite_pbmc_ctrl_500cells.h5mu (ECCITE-seq PBMCs, 49 antibodies;
GPL-3, read from the shared folder, never vendored).

Command (repository root, after `make install`):

    .venv/bin/python benchmarks/protein_translator_cv.py

For each fold the translator is trained on 4/5 of the cells with its default settings (its own
early-stopping validation split lies inside those cells) and predicts the held-out fifth from RNA
alone. Out-of-fold predictions of all 500 cells are then compared with the measured CLR protein, per
protein (Pearson, Spearman). The baseline is the log-normalised mRNA of the protein's coding gene(s)
(mean over genes), for proteins that have one. Writes benchmarks/results/protein_translator_cv.{csv,md}.
"""

from __future__ import annotations

import logging
import os
import platform
import time
import warnings
from pathlib import Path

import mudata as md
import numpy as np
import pandas as pd

import sxdiff
from sxdiff.benchmark import translator_cross_validation, translator_summary

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "citeseq" / "citefuse_eccite_pbmc_ctrl_500cells.h5mu"
RESULTS = Path(__file__).resolve().parent / "results"


def main(n_folds: int = 5, seed: int = 0) -> None:
    warnings.filterwarnings("ignore")
    logging.getLogger("scvi").setLevel(logging.WARNING)
    start = time.perf_counter()
    mdata = md.read_h5mu(DATA)
    proteins = list(mdata["prot"].var_names)
    table = translator_cross_validation(mdata, n_folds=n_folds, seed=seed)
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "protein_translator_cv.csv", index=False)
    summary = translator_summary(table)
    medians = {k.removeprefix("median_"): v for k, v in summary.items()}
    wins, n_with_gene = summary["translator_wins"], summary["n_proteins"]
    elapsed = time.perf_counter() - start
    lines = [
        "# ProteinTranslator: 5-fold cross-validation on ECCITE-seq PBMCs",
        "",
        "Command: `.venv/bin/python benchmarks/protein_translator_cv.py`  ",
        f"sxdiff {sxdiff.__version__}, Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPU cores; {elapsed:.0f} s in all.",
        "",
        f"Data: {DATA.name} (500 cells, {len(proteins)} antibodies). Out-of-fold predictions (default "
        "settings, no tuning) vs measured per-cell CLR; baseline = log-normalised mRNA of the coding gene(s).",
        "",
        f"**Median over the {n_with_gene} non-isotype proteins with a measured coding gene**: "
        f"Pearson {medians['translator_pearson']:.3f} (translator) vs {medians['coding_gene_pearson']:.3f} "
        f"(coding gene); Spearman {medians['translator_spearman']:.3f} vs {medians['coding_gene_spearman']:.3f}. "
        f"The translator is better for {wins} of {n_with_gene} proteins.",
        "",
        "| protein | coding genes | translator r | coding-gene r | translator rho | coding-gene rho |",
        "|---|---|---|---|---|---|",
    ]
    for row in table.itertuples(index=False):
        cg = "" if pd.isna(getattr(row, "coding_gene_pearson", np.nan)) else f"{row.coding_gene_pearson:.3f}"
        cs = "" if pd.isna(getattr(row, "coding_gene_spearman", np.nan)) else f"{row.coding_gene_spearman:.3f}"
        name = row.protein + (" (isotype)" if row.isotype else "")
        lines.append(
            f"| {name} | {row.coding_genes} | {row.translator_pearson:.3f} | {cg} | "
            f"{row.translator_spearman:.3f} | {cs} |"
        )
    (RESULTS / "protein_translator_cv.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:8]))


if __name__ == "__main__":
    main()
