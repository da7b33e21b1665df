"""Models: StateXDiff (to come) and baselines with the same fit/predict interface."""

from ._baselines import ControlBaseline, MeanShiftBaseline

__all__ = ["ControlBaseline", "MeanShiftBaseline"]
