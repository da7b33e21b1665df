"""Metrics of predicted against true perturbation responses, always relative to real controls."""

from ._ceiling import ceiling, null_floor
from ._delta_metrics import deg_direction_agreement, mse_delta, pearson_delta, r2_means, top_deg_indices
from ._distances import PCASpace, energy_distance, mmd
from ._evaluate import evaluate, pca_space

__all__ = [
    "PCASpace",
    "ceiling",
    "deg_direction_agreement",
    "energy_distance",
    "evaluate",
    "mmd",
    "mse_delta",
    "null_floor",
    "pca_space",
    "pearson_delta",
    "r2_means",
    "top_deg_indices",
]
