"""Plots in scanpy conventions (``ax=``, ``show=``, ``save=``; each returns its Axes)."""

from ._deg_heatmap import deg_heatmap
from ._delta_scatter import delta_scatter
from ._dose_response import dose_response
from ._metric_summary import metric_summary
from ._training_history import training_history

__all__ = ["deg_heatmap", "delta_scatter", "dose_response", "metric_summary", "training_history"]
