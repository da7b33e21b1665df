"""All metrics of one (context, condition): predicted and true cells against the real controls."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sxdiff.data._expression import mean_expression

from ._challenge_metrics import de_overlap, mae
from ._delta_metrics import deg_direction_agreement, mse_delta, pearson_delta, r2_means
from ._distances import PCASpace, energy_distance, mmd

__all__ = ["METRIC_DIRECTIONS", "finite_mean", "is_lower_better", "score_condition"]

# +1: higher is better; -1: lower is better (used by reports and the fraction of the ceiling).
METRIC_DIRECTIONS = {
    "pearson_delta": 1,
    "mse_delta": -1,
    "r2_mean": 1,
    "r2_mean_top50": 1,
    "deg_direction_top50": 1,
    "energy_distance": -1,
    "mmd": -1,
    "mae": -1,
    "de_overlap": 1,
    "discrimination_score_l1": 1,
    "pearson_delta_pert": 1,
    "pearson_delta_pert_top50": 1,
}


def score_condition(
    X_pred,
    X_true,
    X_control,
    *,
    top_k: Sequence[int] = (20, 50),
    space: PCASpace | None = None,
    max_cells: int | None = 1000,
    seed: int = 0,
    perturbed_mean: np.ndarray | None = None,
    de: bool = True,
) -> dict[str, float]:
    """Every per-condition metric of :func:`sxdiff.metrics.evaluate` for one set of predicted, true and control cells.

    ``perturbed_mean`` (the mean of all perturbed cells of the context) adds the perturbation-centred
    Pearson correlations ``pearson_delta_pert`` and ``pearson_delta_pert_top{k}`` (Systema); ``de`` adds
    cell-eval's ``de_overlap`` (Wilcoxon tests of the cells, the costliest metric here).
    """
    pred_mean, true_mean = mean_expression(X_pred), mean_expression(X_true)
    control_mean = mean_expression(X_control)
    values = {"pearson_delta": pearson_delta(pred_mean, true_mean, control_mean)}
    for k in top_k:
        values[f"pearson_delta_top{k}"] = pearson_delta(pred_mean, true_mean, control_mean, top_k=k)
    values["mse_delta"] = mse_delta(pred_mean, true_mean, control_mean)
    values["r2_mean"] = r2_means(pred_mean, true_mean, control_mean)
    values["r2_mean_top50"] = r2_means(pred_mean, true_mean, control_mean, top_k=50)
    values["deg_direction_top50"] = deg_direction_agreement(pred_mean, true_mean, control_mean, top_k=50)
    values["mae"] = mae(pred_mean, true_mean)
    if perturbed_mean is not None:
        values["pearson_delta_pert"] = pearson_delta(pred_mean, true_mean, perturbed_mean)
        for k in top_k:
            values[f"pearson_delta_pert_top{k}"] = pearson_delta(pred_mean, true_mean, perturbed_mean, top_k=k)
    if de:
        values["de_overlap"] = de_overlap(X_pred, X_true, X_control)
    if space is not None:
        pred_pcs, true_pcs = space.transform(X_pred), space.transform(X_true)
        values["energy_distance"] = energy_distance(pred_pcs, true_pcs, max_cells=max_cells, seed=seed)
        values["mmd"] = mmd(pred_pcs, true_pcs, gamma=space.gamma, max_cells=max_cells, seed=seed)
    return values


def is_lower_better(metric: str) -> bool:
    """Whether smaller values of ``metric`` are better."""
    return METRIC_DIRECTIONS.get(metric, 1) < 0


def finite_mean(values) -> float:
    """Mean ignoring NaN (NaN when nothing is finite)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")
