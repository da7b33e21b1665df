"""ProteinTranslator cross-validation on a paired CITE-seq reference, against the coding-gene mRNA."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import pearsonr, spearmanr

__all__ = ["translator_cross_validation", "translator_summary"]

logger = logging.getLogger(__name__)


def translator_cross_validation(mdata, n_folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """Out-of-fold ProteinTranslator predictions vs measured CLR protein, per protein.

    For each of ``n_folds`` random folds of cells, a translator with default settings is trained on the
    other folds (its own early-stopping split lies inside them) and predicts the held-out cells from RNA
    alone. The baseline is the log-normalised mRNA of the protein's coding gene(s) (mean over genes).

    Parameters
    ----------
    mdata
        MuData (or path to ``.h5mu``) with ``rna`` counts and ``prot`` antibody counts.
    n_folds, seed
        Folds over cells and their seed.

    Returns
    -------
    One row per protein: ``protein``, ``coding_genes``, ``isotype``, ``translator_pearson``,
    ``translator_spearman``, ``coding_gene_pearson``, ``coding_gene_spearman`` (NaN without a coding gene).
    """
    import mudata as md

    from sxdiff.data._protein import clr, coding_genes, is_isotype_control
    from sxdiff.model import ProteinTranslator

    if isinstance(mdata, str | Path):
        mdata = md.read_h5mu(mdata)
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
        ProteinTranslator.setup_mudata(train, modalities={"rna_layer": "rna", "protein_layer": "prot"})
        model = ProteinTranslator(train)
        model.train(enable_progress_bar=False)
        predicted[folds == fold] = model.predict(rna[folds == fold]).to_numpy()
        logger.info("translator CV fold %d: trained on %d cells", fold, train.n_obs)
    rows = []
    for k, protein in enumerate(proteins):
        coding = coding_genes(protein, genes)
        row = {
            "protein": protein,
            "coding_genes": "|".join(coding),
            "isotype": is_isotype_control(protein),
            "translator_pearson": pearsonr(predicted[:, k], measured[:, k])[0],
            "translator_spearman": spearmanr(predicted[:, k], measured[:, k])[0],
            "coding_gene_pearson": np.nan,
            "coding_gene_spearman": np.nan,
        }
        if coding:
            baseline = logged[:, [position[g] for g in coding]].mean(axis=1)
            if baseline.std() > 0:
                row["coding_gene_pearson"] = pearsonr(baseline, measured[:, k])[0]
                row["coding_gene_spearman"] = spearmanr(baseline, measured[:, k])[0]
        rows.append(row)
    return pd.DataFrame(rows)


def translator_summary(table: pd.DataFrame) -> dict[str, float]:
    """Medians over non-isotype proteins with a measured coding gene, and how often the translator wins."""
    chosen = table.dropna(subset=["coding_gene_pearson"])
    chosen = chosen[~chosen["isotype"].astype(bool)]
    medians = chosen[["translator_pearson", "coding_gene_pearson", "translator_spearman", "coding_gene_spearman"]]
    summary = {f"median_{k}": float(v) for k, v in medians.median().items()}
    summary["n_proteins"] = len(chosen)
    summary["translator_wins"] = int((chosen["translator_pearson"] > chosen["coding_gene_pearson"]).sum())
    return summary
