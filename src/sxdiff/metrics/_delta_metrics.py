"""Metrics on mean expression changes (deltas) relative to the real control cells of a context."""

from __future__ import annotations

import numpy as np

__all__ = ["mse_delta", "pearson_delta", "top_deg_indices"]


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
