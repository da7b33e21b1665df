"""Metrics on mean expression changes (deltas) relative to the real control cells of a context."""

from __future__ import annotations

import numpy as np
from anndata import AnnData

from sxdiff.data._expression import get_expression, mean_expression

__all__ = ["deg_direction_agreement", "mean_deltas", "mse_delta", "pearson_delta", "r2_means", "top_deg_indices"]


def mean_deltas(
    adata_pred: AnnData, adata_true: AnnData, adata_control: AnnData, layer: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true mean change per gene from the mean of the real control cells.

    The deltas every metric here compares (``pred_mean - control_mean``, ``true_mean - control_mean``),
    computed from cells: the plots of :mod:`sxdiff.pl` draw them.

    Parameters
    ----------
    adata_pred, adata_true, adata_control
        Predicted and true cells of one condition, and the real control cells of their context.
    layer
        Layer with the expression values (``None``: ``X``), the same in all three.

    Returns
    -------
    ``(predicted, true)`` deltas, float64 arrays of one value per gene.

    Examples
    --------
    >>> import numpy as np
    >>> from anndata import AnnData
    >>> control = AnnData(np.array([[1.0, 1.0], [3.0, 1.0]]))
    >>> pred, true = mean_deltas(AnnData(np.array([[2.0, 2.0]])), AnnData(np.array([[4.0, 1.0]])), control)
    >>> pred.tolist(), true.tolist()
    ([0.0, 1.0], [2.0, 0.0])
    """
    control = mean_expression(get_expression(adata_control, layer))
    pred_delta = mean_expression(get_expression(adata_pred, layer)) - control
    return pred_delta, mean_expression(get_expression(adata_true, layer)) - control


def top_deg_indices(true_delta: np.ndarray, top_k: int | None) -> np.ndarray:
    """Indices of the ``top_k`` genes with the largest absolute true delta (all genes when ``None``).

    Ties are broken by gene order (stable sort), so the selection is deterministic.
    """
    true_delta = np.asarray(true_delta, dtype=float)
    if top_k is None or top_k >= true_delta.shape[0]:
        return np.arange(true_delta.shape[0])
    return np.argsort(-np.abs(true_delta), kind="stable")[:top_k]


def pearson_delta(
    pred_mean: np.ndarray,
    true_mean: np.ndarray,
    control_mean: np.ndarray,
    top_k: int | None = None,
) -> float:
    """Pearson correlation of predicted and true mean changes from the control mean.

    ``corr(pred_mean - control_mean, true_mean - control_mean)`` over all genes, or over the
    ``top_k`` genes with the largest ``|true_mean - control_mean|`` (the top differentially
    expressed genes). Both deltas subtract the *same* real control mean of the context.

    Parameters
    ----------
    pred_mean, true_mean, control_mean
        Mean expression per gene (log-normalised scale) of the predicted, the true perturbed and the
        real control cells of one context.
    top_k
        Restrict to the top-k DEGs by absolute true delta; ``None`` uses all genes.

    Returns
    -------
    The correlation. A constant predicted delta (e.g. the "no change" prediction of the control
    baseline) predicts no direction and scores 0; a constant true delta gives NaN.

    Examples
    --------
    >>> import numpy as np
    >>> control = np.zeros(4)
    >>> round(pearson_delta(np.array([1.0, 2.0, 0.0, 0.0]), np.array([2.0, 4.0, 0.1, 0.0]), control), 3)
    1.0
    """
    pred_delta = np.asarray(pred_mean, dtype=float) - np.asarray(control_mean, dtype=float)
    true_delta = np.asarray(true_mean, dtype=float) - np.asarray(control_mean, dtype=float)
    genes = top_deg_indices(true_delta, top_k)
    x, y = pred_delta[genes], true_delta[genes]
    if y.std() == 0:
        return float("nan")
    if np.ptp(x) <= 1e-9 * np.ptp(y):  # constant up to floating-point summation noise
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def mse_delta(pred_mean: np.ndarray, true_mean: np.ndarray, control_mean: np.ndarray) -> float:
    """Mean squared error between predicted and true deltas (equal to the MSE of the means).

    Examples
    --------
    >>> import numpy as np
    >>> mse_delta(np.array([1.0, 1.0]), np.array([0.0, 2.0]), np.zeros(2))
    1.0
    """
    pred_delta = np.asarray(pred_mean, dtype=float) - np.asarray(control_mean, dtype=float)
    true_delta = np.asarray(true_mean, dtype=float) - np.asarray(control_mean, dtype=float)
    return float(np.mean((pred_delta - true_delta) ** 2))


def r2_means(pred_mean: np.ndarray, true_mean: np.ndarray, control_mean: np.ndarray, top_k: int | None = None) -> float:
    """Coefficient of determination of the true mean expression by the predicted mean, over genes.

    ``1 - sum((true - pred)^2) / sum((true - mean(true))^2)`` over all genes, or over the ``top_k`` genes
    with the largest ``|true_mean - control_mean|``. ``control_mean`` only selects the DEGs; R² of means is
    computed on the means themselves (as in CPA and scGen), so it is high for any prediction close to the
    control when the perturbation changes few genes — read it together with the delta metrics.

    Examples
    --------
    >>> import numpy as np
    >>> r2_means(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]), np.zeros(3))
    1.0
    >>> r2_means(np.array([2.0, 2.0, 2.0]), np.array([1.0, 2.0, 3.0]), np.zeros(3))
    0.0
    """
    pred = np.asarray(pred_mean, dtype=float)
    true = np.asarray(true_mean, dtype=float)
    genes = top_deg_indices(true - np.asarray(control_mean, dtype=float), top_k)
    residual = np.sum((true[genes] - pred[genes]) ** 2)
    total = np.sum((true[genes] - true[genes].mean()) ** 2)
    if total == 0:
        return float("nan")
    return float(1.0 - residual / total)


def deg_direction_agreement(
    pred_mean: np.ndarray, true_mean: np.ndarray, control_mean: np.ndarray, top_k: int | None = 50
) -> float:
    """Fraction of the top-k DEGs whose predicted change has the sign of the true change.

    DEGs are the ``top_k`` genes with the largest ``|true_mean - control_mean|`` (genes whose true change
    is exactly zero are left out; NaN if none is left); a predicted change of exactly zero counts as a
    disagreement (the prediction says "no change"). 0.5 is chance for a random
    direction; the control baseline scores 0.

    Examples
    --------
    >>> import numpy as np
    >>> deg_direction_agreement(np.array([1.0, -1.0, 1.0, 0.0]), np.array([2.0, -2.0, -2.0, 2.0]), np.zeros(4), top_k=4)
    0.5
    """
    control = np.asarray(control_mean, dtype=float)
    pred_delta = np.asarray(pred_mean, dtype=float) - control
    true_delta = np.asarray(true_mean, dtype=float) - control
    genes = top_deg_indices(true_delta, top_k)
    genes = genes[true_delta[genes] != 0]
    if genes.size == 0:
        return float("nan")
    return float(np.mean(np.sign(pred_delta[genes]) * np.sign(true_delta[genes]) > 0))
