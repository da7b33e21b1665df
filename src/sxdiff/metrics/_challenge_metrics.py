"""The Virtual Cell Challenge metrics as cell-eval computes them: DE overlap, discrimination score, MAE.

Each function reproduces the corresponding function of ``cell_eval`` (0.8) on sxdiff's inputs, where the
predicted and the true cells share the real control cells of their context; ``tests/metrics`` checks them
against ``cell_eval`` itself. The one deliberate difference is written in each docstring.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

__all__ = ["de_overlap", "differential_expression", "discrimination_chance", "discrimination_scores", "mae"]


def _dense(matrix) -> np.ndarray:
    return np.asarray(matrix.toarray() if sp.issparse(matrix) else matrix, dtype=np.float64)


def differential_expression(X_group, X_reference) -> tuple[np.ndarray, np.ndarray]:
    """Wilcoxon rank-sum test and log2 fold change of every gene, group against reference, as pdex does.

    cell-eval computes differential expression with ``pdex`` (``mode="ref"``, ``is_log1p=True``,
    ``epsilon=0``): a two-sided Mann-Whitney U test per gene (normal approximation with tie and continuity
    corrections), Benjamini-Hochberg FDR over the genes of the group, and the log2 fold change of the
    back-transformed geometric-mean pseudobulks, ``log2(expm1(mean(X_group)) / expm1(mean(X_reference)))``
    (``0/0`` is 0; one-sided zeros give ``±inf``).

    Parameters
    ----------
    X_group, X_reference
        Cells by genes, log1p-normalised.

    Returns
    -------
    ``(fdr, log2_fold_change)``, one value per gene. A gene constant over both groups has p-value 1.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> reference = rng.normal(1.0, 0.1, (50, 3))
    >>> group = reference + np.array([1.0, 0.0, -0.5])
    >>> fdr, lfc = differential_expression(group, reference)
    >>> (fdr < 0.05).tolist()
    [True, False, True]
    """
    from scipy.stats import false_discovery_control, mannwhitneyu

    group, reference = _dense(X_group), _dense(X_reference)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_values = mannwhitneyu(group, reference, axis=0, method="asymptotic", use_continuity=True).pvalue
        p_values = np.nan_to_num(np.clip(p_values, 0.0, 1.0), nan=1.0)
        lfc = np.log2(np.expm1(group.mean(axis=0)) / np.expm1(reference.mean(axis=0)))
    lfc[np.isnan(lfc)] = 0.0
    return false_discovery_control(p_values), lfc


def _ranked_significant(fdr: np.ndarray, lfc: np.ndarray, fdr_threshold: float) -> np.ndarray:
    """Significant genes ordered by decreasing ``|log2 fold change|`` (ties: gene order, as polars' ordinal rank)."""
    significant = np.flatnonzero(fdr < fdr_threshold)
    return significant[np.argsort(-np.abs(lfc[significant]), kind="stable")]


def de_overlap(X_pred, X_true, X_control, *, k: int | None = None, fdr_threshold: float = 0.05) -> float:
    """Overlap of the predicted and the true differentially expressed genes (cell-eval's ``overlap_at_N``).

    Both the predicted and the true cells are tested against the real control cells
    (:func:`differential_expression`); the significant genes (FDR < ``fdr_threshold``) of each are ranked
    by ``|log2 fold change|``. With ``k_eff = min(k, n_true)`` (``k=None``: ``n_true``, the number of true
    significant genes), the score is ``|top k_eff true ∩ top k_eff predicted| / k_eff``. This is the
    Virtual Cell Challenge's DE score (``k=None``); 1 is best.

    Difference from cell-eval: when the true cells have no significant gene, cell-eval scores 0 and
    sxdiff returns NaN (there is nothing to recover, so the condition says nothing about the method).

    Parameters
    ----------
    X_pred, X_true, X_control
        Predicted, true and real control cells of one condition and context (log1p-normalised).
    k
        Number of top true genes (``None``: all significant ones).
    fdr_threshold
        Benjamini-Hochberg FDR below which a gene is significant.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> control = rng.normal(1.0, 0.1, (60, 4))
    >>> true = rng.normal(1.0, 0.1, (60, 4)) + np.array([1.0, 0.5, 0.0, 0.0])
    >>> pred = rng.normal(1.0, 0.1, (60, 4)) + np.array([1.0, 0.0, 0.5, 0.0])
    >>> de_overlap(pred, true, control)
    0.5
    """
    true_genes = _ranked_significant(*differential_expression(X_true, X_control), fdr_threshold)
    if true_genes.size == 0:
        return float("nan")
    pred_genes = _ranked_significant(*differential_expression(X_pred, X_control), fdr_threshold)
    k_eff = true_genes.size if not k else min(k, true_genes.size)
    return float(np.intersect1d(true_genes[:k_eff], pred_genes[:k_eff]).size / k_eff)


def mae(pred_mean: np.ndarray, true_mean: np.ndarray) -> float:
    """Mean absolute error of the predicted and the true mean expression (cell-eval's ``mae``).

    Equal to the MAE of the deltas, because both subtract the same real control mean.

    Examples
    --------
    >>> import numpy as np
    >>> mae(np.array([1.0, 2.0]), np.array([0.0, 4.0]))
    1.5
    """
    return float(np.mean(np.abs(np.asarray(pred_mean, dtype=float) - np.asarray(true_mean, dtype=float))))


def discrimination_scores(
    pred_means: np.ndarray,
    true_means: np.ndarray,
    excluded_genes: Sequence[Sequence[int]] | None = None,
) -> np.ndarray:
    """Perturbation discrimination score of each condition (cell-eval's ``discrimination_score_l1``).

    For condition ``i``, the L1 distances of its predicted pseudobulk to the true pseudobulks of all
    conditions are sorted in increasing order (``np.argsort``, as cell-eval); with ``r`` the 0-based
    position of condition ``i``'s own truth, the score is ``1 - r / n``. 1: the true perturbation is the
    nearest; a random prediction scores ``(n + 1) / (2n)`` on average (:func:`discrimination_chance`).
    cell-eval ranks the perturbation effects (pseudobulk minus each object's control mean); with shared
    real controls the distances are the same. The genes a condition targets are left out of its
    distances (cell-eval leaves out the gene whose name equals the perturbation label; sxdiff leaves out
    every member of a combination).

    Parameters
    ----------
    pred_means, true_means
        Conditions by genes: predicted and true mean expression, rows in the same order.
    excluded_genes
        Per condition, the gene indices to leave out (its targets), or ``None``.

    Returns
    -------
    One score per condition.

    Examples
    --------
    >>> import numpy as np
    >>> true = np.array([[0.0, 0.0], [1.0, 1.0], [4.0, 4.0]])
    >>> pred = np.array([[0.2, 0.0], [3.0, 3.0], [4.0, 3.5]])
    >>> discrimination_scores(pred, true).round(3).tolist()
    [1.0, 0.667, 1.0]
    """
    pred_means = np.asarray(pred_means, dtype=float)
    true_means = np.asarray(true_means, dtype=float)
    if pred_means.shape != true_means.shape:
        raise ValueError(f"pred_means {pred_means.shape} and true_means {true_means.shape} must have the same shape.")
    n = pred_means.shape[0]
    scores = np.empty(n)
    for i in range(n):
        keep = np.ones(pred_means.shape[1], dtype=bool)
        if excluded_genes is not None:
            keep[list(excluded_genes[i])] = False
        distances = np.abs(true_means[:, keep] - pred_means[i, keep]).sum(axis=1)
        rank = int(np.flatnonzero(np.argsort(distances) == i)[0])
        scores[i] = 1.0 - rank / n
    return scores


def discrimination_chance(n_conditions: int) -> float:
    """Expected discrimination score of a prediction that does not tell conditions apart: ``(n + 1) / (2n)``.

    Examples
    --------
    >>> discrimination_chance(4)
    0.625
    """
    return (n_conditions + 1) / (2 * n_conditions)
