"""Metrics of predicted against true perturbation responses, always relative to real controls."""

from ._delta_metrics import mse_delta, pearson_delta, top_deg_indices
from ._evaluate import evaluate

__all__ = ["evaluate", "mse_delta", "pearson_delta", "top_deg_indices"]
