"""Training: paired minibatches, the training plan, checkpoints and progress logging."""

from ._paired_data import PairedPerturbationData
from ._progress import EpochProgressLog
from ._training_plan import NonFiniteLossError, StateXDiffTrainingPlan

__all__ = ["EpochProgressLog", "NonFiniteLossError", "PairedPerturbationData", "StateXDiffTrainingPlan"]
