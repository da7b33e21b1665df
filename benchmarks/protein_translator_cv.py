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
import scipy.sparse as sp
from scipy.stats import pearsonr, spearmanr

import sxdiff
from sxdiff.data._protein import clr, coding_genes, is_isotype_control

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "citeseq" / "citefuse_eccite_pbmc_ctrl_500cells.h5mu"
RESULTS = Path(__file__).resolve().parent / "results"


def main(n_folds: int = 5, seed: int = 0) -> None:
    warnings.filterwarnings("ignore")
    logging.getLogger("scvi").setLevel(logging.WARNING)
    start = time.perf_counter()
    mdata = md.read_h5mu(DATA)
    rna = mdata["rna"]
    proteins = [str(p) for p in mdata["prot"].var_names]
    measured = clr(mdata["prot"].X)
    counts = rna.X.toarray() if sp.issparse(rna.X) else np.asarray(rna.X)
    logged = np.log1p(counts / counts.sum(1, keepdims=True).clip(min=1) * 1e4)
    genes = [str(g) for g in rna.var_names]
    position = {g: i for i, g in enumerate(genes)}

    predicted = np.zeros_like(measured)
    folds = np.random.default_rng(seed).permutation(mdata.n_obs) % n_folds
    for fold in range(n_folds):
        train = mdata[folds != fold].copy()
        sxdiff.model.ProteinTranslator.setup_mudata(train, modalities={"rna_layer": "rna", "protein_layer": "prot"})
        model = sxdiff.model.ProteinTranslator(train)
        model.train(enable_progress_bar=False)
        held_out = rna[folds == fold]
        predicted[folds == fold] = model.predict(held_out).to_numpy()
        print(f"fold {fold}: trained on {train.n_obs} cells, {time.perf_counter() - start:.0f} s elapsed")

    rows = []
    for k, protein in enumerate(proteins):
        coding = coding_genes(protein, genes)
        row = {
            "protein": protein,
            "coding_genes": "|".join(coding),
            "isotype": is_isotype_control(protein),
            "translator_pearson": pearsonr(predicted[:, k], measured[:, k])[0],
            "translator_spearman": spearmanr(predicted[:, k], measured[:, k])[0],
        }
        if coding:
            baseline = logged[:, [position[g] for g in coding]].mean(axis=1)
            if baseline.std() > 0:
                row["coding_gene_pearson"] = pearsonr(baseline, measured[:, k])[0]
                row["coding_gene_spearman"] = spearmanr(baseline, measured[:, k])[0]
        rows.append(row)
    table = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "protein_translator_cv.csv", index=False)
    with_gene = table.dropna(subset=["coding_gene_pearson"])
    with_gene = with_gene[~with_gene["isotype"]]
    medians = with_gene[
        ["translator_pearson", "coding_gene_pearson", "translator_spearman", "coding_gene_spearman"]
    ].median()
    wins = int((with_gene["translator_pearson"] > with_gene["coding_gene_pearson"]).sum())
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
        f"**Median over the {len(with_gene)} non-isotype proteins with a measured coding gene**: "
        f"Pearson {medians['translator_pearson']:.3f} (translator) vs {medians['coding_gene_pearson']:.3f} "
        f"(coding gene); Spearman {medians['translator_spearman']:.3f} vs {medians['coding_gene_spearman']:.3f}. "
        f"The translator is better for {wins} of {len(with_gene)} proteins.",
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
