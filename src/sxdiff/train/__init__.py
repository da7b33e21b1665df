"""Training: paired minibatches and the training plan."""

from ._paired_data import PairedPerturbationData
from ._training_plan import NonFiniteLossError, StateXDiffTrainingPlan

__all__ = ["NonFiniteLossError", "PairedPerturbationData", "StateXDiffTrainingPlan"]
