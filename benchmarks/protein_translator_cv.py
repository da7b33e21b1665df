"""ProteinTranslator vs ridge-on-PCs and coding-gene mRNA: 5-fold cross-validation over cells.

Data: ../shared/data/citeseq/citefuse_eccite_pbmc_ctrl_500cells.h5mu (ECCITE-seq PBMCs, 49 antibodies;
GPL-3, read from the shared folder, never vendored).

Command (repository root, after `make install`):

    .venv/bin/python benchmarks/protein_translator_cv.py

For each fold the translator is trained on 4/5 of the cells with its default settings (its own inner
cross-validation, which chooses each protein's predictor and measures its reliability, lies inside those
cells) and predicts the held-out fifth from RNA alone. The same folds give two baselines: ridge regression
on 30 principal components of the 2,000 most variable genes (fitted on the 4/5), and the log-normalised
mRNA of the protein's coding gene(s) (mean over genes), for proteins that have one. Out-of-fold
predictions of all 500 cells are compared with the measured CLR protein, per protein (Pearson,
Spearman), and each fold's reported reliabilities with what its held-out cells measured.

Writes benchmarks/results/protein_translator_cv.{csv,md}, protein_translator_cv_folds.csv and the
calibration plot docs/_static/protein_translator_calibration.png.
"""

from __future__ import annotations

import logging
import os
import platform
import time
import warnings
from pathlib import Path

import mudata as md
import pandas as pd

import sxdiff
from sxdiff.benchmark import translator_cross_validation, translator_summary

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "citeseq" / "citefuse_eccite_pbmc_ctrl_500cells.h5mu"
RESULTS = ROOT / "benchmarks" / "results"
PLOT = ROOT / "docs" / "_static" / "protein_translator_calibration.png"


def _plot(table: pd.DataFrame, per_fold: pd.DataFrame, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    proteins = table[~table["isotype"]]
    folds = per_fold[~per_fold["isotype"]]
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), constrained_layout=True)
    ax = axes[0]
    ax.scatter(folds["reliability"], folds["heldout_pearson"].clip(lower=0), s=8, alpha=0.35, label="one fold")
    ax.scatter(proteins["reliability"], proteins["translator_pearson"].clip(lower=0), s=18, label="mean over folds")
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="reported reliability (inner CV)", ylabel="Pearson on new cells")
    ax.set_title(
        f"calibration: r = {summary['calibration_pearson']:.2f}, over-statement {summary['mean_overstatement']:+.3f}",
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="upper left")
    ax = axes[1]
    ax.scatter(proteins["ridge_pcs_pearson"], proteins["translator_pearson"], s=18)
    low = min(proteins["ridge_pcs_pearson"].min(), proteins["translator_pearson"].min(), 0)
    ax.plot([low, 1], [low, 1], color="grey", lw=1, ls="--")
    ax.set(xlabel="ridge on 30 PCs, Pearson", ylabel="translator, Pearson")
    ax.set_title(
        f"medians {summary['median_translator_pearson_all']:.3f} vs {summary['median_ridge_pcs_pearson_all']:.3f}; "
        f">= on {summary['wins_vs_ridge']} of {summary['n_proteins_all']}",
        fontsize=10,
    )
    fig.suptitle(f"ProteinTranslator, 5-fold CV on {DATA.name} ({len(proteins)} non-isotype proteins)", fontsize=10)
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=110)
    plt.close(fig)


def main(n_folds: int = 5, seed: int = 0) -> None:
    warnings.filterwarnings("ignore")
    for name in ("scvi", "lightning", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.ERROR)
    start = time.perf_counter()
    mdata = md.read_h5mu(DATA)
    n_antibodies = mdata["prot"].n_vars
    table, per_fold = translator_cross_validation(mdata, n_folds=n_folds, seed=seed, return_folds=True)
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "protein_translator_cv.csv", index=False)
    per_fold.to_csv(RESULTS / "protein_translator_cv_folds.csv", index=False)
    s = translator_summary(table, per_fold)
    _plot(table, per_fold, s)
    choices = per_fold[~per_fold["isotype"]]["predictor"].value_counts()
    elapsed = time.perf_counter() - start
    lines = [
        "# ProteinTranslator: 5-fold cross-validation on ECCITE-seq PBMCs",
        "",
        "Command: `.venv/bin/python benchmarks/protein_translator_cv.py`  ",
        f"sxdiff {sxdiff.__version__}, Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPU cores; {elapsed:.0f} s in all.",
        "",
        f"Data: {DATA.name} ({mdata.n_obs} cells, {n_antibodies} antibodies, {int(table['isotype'].sum())} of them "
        "isotype controls). Out-of-fold predictions (default settings, no tuning) vs measured per-cell CLR. "
        "Translator: per protein the best of ridge-on-components, MLP and their mean by an inner 5-fold CV inside "
        "the training folds. Baselines on the same folds: ridge regression on 30 principal components of the "
        "2,000 most variable genes; log-normalised mRNA of the coding gene(s).",
        "",
        f"**Median Pearson over the {s['n_proteins_all']} non-isotype proteins**: "
        f"{s['median_translator_pearson_all']:.3f} (translator) vs {s['median_ridge_pcs_pearson_all']:.3f} "
        f"(ridge on PCs); the translator is better or equal on {s['wins_vs_ridge']} of {s['n_proteins_all']}.  ",
        f"**Over the {s['n_proteins']} with a measured coding gene**: Pearson {s['median_translator_pearson']:.3f} "
        f"(translator) vs {s['median_coding_gene_pearson']:.3f} (coding gene); Spearman "
        f"{s['median_translator_spearman']:.3f} vs {s['median_coding_gene_spearman']:.3f}; the translator is better "
        f"for {s['translator_wins']} of {s['n_proteins']}.  ",
        f"**Calibration** (non-isotype proteins): reported reliability (mean over folds) vs out-of-fold Pearson "
        f"(clipped at 0) correlate {s['calibration_pearson']:.3f}, mean reported minus measured "
        f"{s['mean_overstatement']:+.3f}; per fold and protein, against the fold's 100 held-out cells: "
        f"{s['calibration_pearson_folds']:.3f} and {s['mean_overstatement_folds']:+.3f}.  ",
        "Predictors chosen (non-isotype proteins x folds): "
        + ", ".join(f"{name} {count}" for name, count in choices.items())
        + ". Plot: `docs/_static/protein_translator_calibration.png`.",
        "",
        "| protein | coding genes | translator r | ridge-on-PCs r | coding-gene r | reliability | predictor (folds) "
        "| translator rho | ridge-on-PCs rho | coding-gene rho |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def fmt(value: float) -> str:
        return "" if pd.isna(value) else f"{value:.3f}"

    for row in table.itertuples(index=False):
        name = row.protein + (" (isotype)" if row.isotype else "")
        lines.append(
            f"| {name} | {row.coding_genes} | {fmt(row.translator_pearson)} | {fmt(row.ridge_pcs_pearson)} | "
            f"{fmt(row.coding_gene_pearson)} | {fmt(row.reliability)} | {row.predictor} | "
            f"{fmt(row.translator_spearman)} | {fmt(row.ridge_pcs_spearman)} | {fmt(row.coding_gene_spearman)} |"
        )
    (RESULTS / "protein_translator_cv.md").write_text("\n".join(lines) + "\n")
    logging.getLogger(__name__).info("wrote %s", RESULTS / "protein_translator_cv.md")
    print("\n".join(lines[:14]))


if __name__ == "__main__":
    main()
