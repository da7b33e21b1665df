"""Linear algebra of the ProteinTranslator: principal components, ridge regression with leave-one-out penalties."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["RIDGE_ALPHAS", "column_pearson", "principal_components", "ridge_fit"]

RIDGE_ALPHAS = np.logspace(-4, 2, 25)
"""Ridge penalties tried, relative to the mean squared singular value of the component scores."""


def _mean_std(matrix) -> tuple[np.ndarray, np.ndarray]:
    if sp.issparse(matrix):
        mean = np.asarray(matrix.mean(axis=0)).ravel()
        sq = np.asarray(matrix.multiply(matrix).mean(axis=0)).ravel()
    else:
        mean, sq = matrix.mean(axis=0), (matrix**2).mean(axis=0)
    return mean, np.sqrt(np.clip(sq - mean**2, 0.0, None))


def principal_components(logged, n_components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gene means, the top principal axes and their variances, from the gene-gene covariance.

    Works on dense or sparse cells x genes matrices without densifying the cells (the covariance is
    genes x genes). With fewer cells or genes than ``n_components``, the missing axes are zero columns
    with variance 0.

    Returns
    -------
    ``(mean, components, variance)``: genes, genes x ``n_components``, ``n_components``.
    """
    n_cells, n_genes = logged.shape
    mean = np.asarray(logged.mean(axis=0), dtype=np.float64).ravel()
    gram = logged.T @ logged
    gram = gram.toarray() if sp.issparse(gram) else np.asarray(gram)
    covariance = gram / max(n_cells, 1) - np.outer(mean, mean)
    values, vectors = np.linalg.eigh(covariance)
    keep = min(n_components, n_genes, max(n_cells - 1, 0))
    order = np.argsort(-values)[:keep]
    components = np.zeros((n_genes, n_components))
    variance = np.zeros(n_components)
    components[:, :keep] = vectors[:, order]
    variance[:keep] = np.clip(values[order], 0.0, None)
    return mean, components, variance


def ridge_fit(
    design: np.ndarray, targets: np.ndarray, alphas: np.ndarray = RIDGE_ALPHAS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ridge regression of each target column on ``design``, its penalty chosen by leave-one-out error.

    The leave-one-out residuals of ridge regression have a closed form (``(y - fit) / (1 - h)``, with
    ``h`` the diagonal of the hat matrix), so every penalty of ``alphas`` (relative to the mean squared
    singular value of the centred design) is scored without refitting, separately for each target.

    Returns
    -------
    ``(weight, bias, alpha)``: features x targets, targets, and the absolute penalty chosen per target.
    """
    n = design.shape[0]
    x_mean, y_mean = design.mean(axis=0), targets.mean(axis=0)
    u, s, vt = np.linalg.svd(design - x_mean, full_matrices=False)
    s2 = s**2
    grid = np.asarray(alphas, dtype=np.float64) * max(float(s2.mean()), 1e-12)
    uty = u.T @ (targets - y_mean)
    errors = np.empty((len(grid), targets.shape[1]))
    for i, alpha in enumerate(grid):
        shrink = s2 / (s2 + alpha)
        fitted = u @ (shrink[:, None] * uty)
        hat = (u**2) @ shrink + 1.0 / n
        errors[i] = ((((targets - y_mean) - fitted) / (1.0 - hat)[:, None]) ** 2).mean(axis=0)
    best = grid[errors.argmin(axis=0)]
    factor = s[:, None] / (s2[:, None] + best[None, :])  # components x targets
    weight = vt.T @ (factor * uty)
    return weight, y_mean - x_mean @ weight, best


def column_pearson(predicted: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Pearson correlation of matching columns (0 where either column is constant)."""
    a = predicted - predicted.mean(axis=0)
    b = measured - measured.mean(axis=0)
    norm = np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=0))
    return np.where(norm > 0, (a * b).sum(axis=0) / np.where(norm > 0, norm, 1.0), 0.0)
