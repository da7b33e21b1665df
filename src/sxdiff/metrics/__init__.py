"""Metrics of predicted against true perturbation responses, always relative to real controls."""

from ._ceiling import ceiling, null_floor
from ._challenge_metrics import de_overlap, differential_expression, discrimination_chance, discrimination_scores, mae
from ._delta_metrics import deg_direction_agreement, mean_deltas, mse_delta, pearson_delta, r2_means, top_deg_indices
from ._distances import PCASpace, energy_distance, mmd
from ._evaluate import evaluate, pca_space
from ._interaction import (
    interaction_limits,
    interaction_metrics,
    interaction_residual,
    interaction_scores,
    interaction_stratum,
)

__all__ = [
    "PCASpace",
    "ceiling",
    "de_overlap",
    "deg_direction_agreement",
    "differential_expression",
    "discrimination_chance",
    "discrimination_scores",
    "energy_distance",
    "evaluate",
    "interaction_limits",
    "interaction_metrics",
    "interaction_residual",
    "interaction_scores",
    "interaction_stratum",
    "mae",
    "mean_deltas",
    "mmd",
    "mse_delta",
    "null_floor",
    "pca_space",
    "pearson_delta",
    "r2_means",
    "top_deg_indices",
]
