"""ProteinTranslator cross-validation on a paired CITE-seq reference, against ridge-on-PCs and coding-gene mRNA."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import pearsonr, spearmanr

__all__ = ["ridge_on_pcs", "translator_calibration", "translator_cross_validation", "translator_summary"]

logger = logging.getLogger(__name__)


def ridge_on_pcs(
    train_logged: np.ndarray,
    train_protein: np.ndarray,
    test_logged: np.ndarray,
    n_genes: int = 2000,
    n_components: int = 30,
) -> np.ndarray:
    """The linear baseline: ridge regression of CLR protein on principal components of the variable genes.

    The ``n_genes`` most variable log-normalised genes of the training cells are centred and reduced to
    ``n_components`` principal components; each protein is regressed on the component scores with its
    ridge penalty chosen by leave-one-out error on the training cells
    (:func:`sxdiff.model._translator_linear.ridge_fit`).

    Parameters
    ----------
    train_logged, test_logged
        Dense cells x genes ``log1p`` expression (counts per 10,000), same genes.
    train_protein
        Training cells x proteins CLR.
    n_genes, n_components
        Genes kept (by standard deviation over training cells) and components.

    Returns
    -------
    Test cells x proteins predicted CLR.
    """
    from sxdiff.model._translator_linear import principal_components, ridge_fit

    top = np.argsort(-train_logged.std(axis=0), kind="stable")[:n_genes]
    mean, components, _ = principal_components(train_logged[:, top], n_components)
    weight, bias, _ = ridge_fit((train_logged[:, top] - mean) @ components, train_protein)
    return (test_logged[:, top] - mean) @ components @ weight + bias


def translator_cross_validation(
    mdata,
    n_folds: int = 5,
    seed: int = 0,
    *,
    translator_kwargs: Mapping[str, Any] | None = None,
    train_kwargs: Mapping[str, Any] | None = None,
    return_folds: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Out-of-fold ProteinTranslator predictions vs measured CLR protein, per protein, beside two baselines.

    For each of ``n_folds`` random folds of cells, a translator (default settings unless ``translator_kwargs``
    / ``train_kwargs``) is trained on the other folds, where it runs its own inner cross-validation to choose
    predictors and measure reliabilities, and predicts the held-out cells from RNA alone. The same folds
    give two baselines: ridge regression on 30 principal components of the 2,000 most variable genes
    (:func:`ridge_on_pcs`, fitted on the training folds) and the log-normalised mRNA of the protein's coding
    gene(s) (mean over genes, no fitting).

    Parameters
    ----------
    mdata
        MuData (or path to ``.h5mu``) with ``rna`` counts and ``prot`` antibody counts.
    n_folds, seed
        Folds over cells and their seed.
    translator_kwargs, train_kwargs
        Passed to :class:`~sxdiff.model.ProteinTranslator` and its ``train`` (e.g. ``{"predictor": "linear"}``).
    return_folds
        Also return the per-fold rows (``fold``, ``protein``, ``isotype``, ``reliability`` reported by that
        fold's translator, its ``predictor`` and ``heldout_pearson`` on that fold's held-out cells); see
        :func:`translator_calibration`.

    Returns
    -------
    One row per protein: ``protein``, ``coding_genes``, ``isotype``, ``translator_pearson``,
    ``translator_spearman``, ``ridge_pcs_pearson``, ``ridge_pcs_spearman``, ``coding_gene_pearson``,
    ``coding_gene_spearman`` (NaN without a coding gene), ``reliability`` (the translator's reported
    reliability, mean over folds) and ``predictor`` (its choices over folds, e.g. ``"linear 4, mean 1"``);
    with ``return_folds``, ``(table, per_fold)``.
    """
    import mudata as md

    from sxdiff.data._expression import log_normalize
    from sxdiff.data._protein import clr, coding_genes, is_isotype_control
    from sxdiff.model import ProteinTranslator

    if isinstance(mdata, str | Path):
        mdata = md.read_h5mu(mdata)
    if "rna" not in mdata.mod or "prot" not in mdata.mod:
        raise KeyError(f"The reference needs an 'rna' and a 'prot' modality; it has {list(mdata.mod)}.")
    mdata = md.MuData({"rna": mdata["rna"], "prot": mdata["prot"]})  # other modalities play no part
    rna = mdata["rna"]
    proteins = [str(p) for p in mdata["prot"].var_names]
    measured = clr(mdata["prot"].X).astype(np.float64)
    logged = log_normalize(rna.X)
    logged = logged.toarray() if sp.issparse(logged) else np.asarray(logged)
    genes = [str(g) for g in rna.var_names]
    position = {g: i for i, g in enumerate(genes)}
    predicted = np.zeros_like(measured)
    ridge = np.zeros_like(measured)
    assignment = np.random.default_rng(seed).permutation(mdata.n_obs) % n_folds
    fold_rows = []
    for fold in range(n_folds):
        held = assignment == fold
        train = mdata[~held].copy()
        ProteinTranslator.setup_mudata(train, modalities={"rna_layer": "rna", "protein_layer": "prot"})
        model = ProteinTranslator(train, **dict(translator_kwargs or {}))
        model.train(**{"enable_progress_bar": False, **dict(train_kwargs or {})})
        predicted[held] = model.predict(rna[held]).to_numpy()
        ridge[held] = ridge_on_pcs(logged[~held], measured[~held], logged[held])
        for k, protein in enumerate(proteins):
            x, y = predicted[held, k], measured[held, k]
            r = pearsonr(x, y)[0] if x.std() > 0 and y.std() > 0 else 0.0
            fold_rows.append(
                {
                    "fold": fold,
                    "protein": protein,
                    "isotype": bool(model.is_isotype_[k]),
                    "reliability": float(model.reliability_[k]),
                    "predictor": str(model.predictor_[k]),
                    "heldout_pearson": float(r),
                }
            )
        logger.info("translator CV fold %d: trained on %d cells", fold, train.n_obs)
    per_fold = pd.DataFrame(fold_rows)
    rows = []
    for k, protein in enumerate(proteins):
        coding = coding_genes(protein, genes)
        mine = per_fold[per_fold["protein"] == protein]
        choices = mine["predictor"].value_counts()
        row = {
            "protein": protein,
            "coding_genes": "|".join(coding),
            "isotype": is_isotype_control(protein),
            "translator_pearson": _correlation(pearsonr, predicted[:, k], measured[:, k]),
            "translator_spearman": _correlation(spearmanr, predicted[:, k], measured[:, k]),
            "ridge_pcs_pearson": _correlation(pearsonr, ridge[:, k], measured[:, k]),
            "ridge_pcs_spearman": _correlation(spearmanr, ridge[:, k], measured[:, k]),
            "coding_gene_pearson": np.nan,
            "coding_gene_spearman": np.nan,
            "reliability": float(mine["reliability"].mean()),
            "predictor": ", ".join(f"{name} {n}" for name, n in choices.items()),
        }
        if coding:
            baseline = logged[:, [position[g] for g in coding]].mean(axis=1)
            if baseline.std() > 0:
                row["coding_gene_pearson"] = _correlation(pearsonr, baseline, measured[:, k])
                row["coding_gene_spearman"] = _correlation(spearmanr, baseline, measured[:, k])
        rows.append(row)
    table = pd.DataFrame(rows)
    return (table, per_fold) if return_folds else table


def _correlation(method, x: np.ndarray, y: np.ndarray) -> float:
    """Pearson or Spearman correlation, 0 when either side is constant (an undefined correlation)."""
    return float(method(x, y)[0]) if np.std(x) > 0 and np.std(y) > 0 else 0.0


def translator_summary(table: pd.DataFrame, per_fold: pd.DataFrame | None = None) -> dict[str, float]:
    """Medians, wins and calibration of a :func:`translator_cross_validation` table.

    Keys ``median_translator_pearson``, ``median_coding_gene_pearson`` (and Spearman), ``n_proteins`` and
    ``translator_wins`` (strictly better than the coding gene) are over non-isotype proteins with a measured
    coding gene. Keys ``n_proteins_all``, ``median_translator_pearson_all``, ``median_ridge_pcs_pearson_all``,
    ``wins_vs_ridge`` (better or equal to ridge-on-PCs) and the calibration keys of
    :func:`translator_calibration` (given ``per_fold`` too, its per-fold keys) are over all non-isotype proteins.
    """
    chosen = table.dropna(subset=["coding_gene_pearson"])
    chosen = chosen[~chosen["isotype"].astype(bool)]
    medians = chosen[["translator_pearson", "coding_gene_pearson", "translator_spearman", "coding_gene_spearman"]]
    summary = {f"median_{k}": float(v) for k, v in medians.median().items()}
    summary["n_proteins"] = len(chosen)
    summary["translator_wins"] = int((chosen["translator_pearson"] > chosen["coding_gene_pearson"]).sum())
    if "ridge_pcs_pearson" in table:
        proteins = table[~table["isotype"].astype(bool)]
        summary["n_proteins_all"] = len(proteins)
        summary["median_translator_pearson_all"] = float(proteins["translator_pearson"].median())
        summary["median_ridge_pcs_pearson_all"] = float(proteins["ridge_pcs_pearson"].median())
        summary["wins_vs_ridge"] = int((proteins["translator_pearson"] >= proteins["ridge_pcs_pearson"]).sum())
        summary |= translator_calibration(table, per_fold)
    return summary


def translator_calibration(table: pd.DataFrame, per_fold: pd.DataFrame | None = None) -> dict[str, float]:
    """How well the reported reliabilities match held-out correlations on new cells (non-isotype proteins).

    Returns
    -------
    ``calibration_pearson``: across proteins, correlation of the reported reliability (mean over folds) with
    the measured out-of-fold Pearson clipped at 0 (reliabilities are clipped at 0 too);
    ``mean_overstatement``: mean of reported minus measured (positive: reliabilities promise too much);
    with ``per_fold`` (from ``translator_cross_validation(..., return_folds=True)``), ``calibration_pearson_folds``
    and ``mean_overstatement_folds``: the same per fold and protein, each fold's reported reliability against the
    Pearson on that fold's held-out cells only (noisier: a fifth of the cells).
    """
    proteins = table[~table["isotype"].astype(bool)]
    reported = proteins["reliability"].to_numpy(dtype=float)
    measured = np.clip(proteins["translator_pearson"].to_numpy(dtype=float), 0.0, None)
    out = {
        "calibration_pearson": float(np.corrcoef(reported, measured)[0, 1]),
        "mean_overstatement": float(np.mean(reported - measured)),
    }
    if per_fold is not None and len(per_fold):
        folds = per_fold[~per_fold["isotype"].astype(bool)]
        held = np.clip(folds["heldout_pearson"].to_numpy(dtype=float), 0.0, None)
        out["calibration_pearson_folds"] = float(np.corrcoef(folds["reliability"], held)[0, 1])
        out["mean_overstatement_folds"] = float(np.mean(folds["reliability"] - held))
    return out
