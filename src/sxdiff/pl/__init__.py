"""Plots in scanpy conventions (``ax=``, ``show=``, ``save=``; each returns its Axes)."""

from ._delta_scatter import delta_scatter

__all__ = ["delta_scatter"]
