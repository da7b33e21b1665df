"""Training: paired minibatches and the training plan."""

from ._paired_data import PairedPerturbationData
from ._training_plan import StateXDiffTrainingPlan

__all__ = ["PairedPerturbationData", "StateXDiffTrainingPlan"]
