"""The StateXDiff training plan: scvi-tools' plan plus EMA updates of the denoiser and gradient clipping."""

from __future__ import annotations

from scvi.train import TrainingPlan

__all__ = ["StateXDiffTrainingPlan"]


class StateXDiffTrainingPlan(TrainingPlan):
    """scvi-tools' training plan, plus an EMA update of the denoiser after each diffusion step.

    Optimiser, learning rate, logging and early stopping are scvi-tools'.
    """

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        """Update the exponential moving average of the denoiser."""
        if self.module.stage in ("diffusion", "all"):
            self.module.update_ema()
