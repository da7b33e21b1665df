"""The StateXDiff training plan: scvi-tools' plan, its own optimiser, EMA updates, per-epoch seeding, a NaN guard."""

from __future__ import annotations

import math

import torch
from scvi.train import TrainingPlan

__all__ = ["NonFiniteLossError", "StateXDiffTrainingPlan"]


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite during training."""


class StateXDiffTrainingPlan(TrainingPlan):
    """scvi-tools' training plan, plus what long runs on shared machines need.

    - an EMA update of the denoiser after each diffusion step;
    - the random number generators are re-seeded at the start of every epoch from ``(seed, stage, epoch)``,
      so a run resumed from a checkpoint draws the same noise as an uninterrupted one;
    - every loss term is checked after each step: a NaN or infinite value stops training with a
      :class:`NonFiniteLossError` naming the epoch, the step, the term and the last good checkpoint;
    - metrics are logged without inference tensors, so that DDP can all-reduce them;
    - the optimiser is AdamW with ``eps=1e-8`` (scvi-tools' default ``eps=0.01`` suits its losses summed over
      genes; StateXDiff's losses are means over genes and dimensions, whose gradients are mostly below 0.01, so
      that ``eps`` made every step 10-1000x smaller than the learning rate says), a linear warm-up over the first
      5 % of the stage's steps (at most 100) and a cosine decay to 10 % of the learning rate at its last step.

    Logging and early stopping are scvi-tools'.

    Parameters
    ----------
    module
        The :class:`~sxdiff.module.StateXDiffModule`.
    seed
        Base seed of the per-epoch re-seeding.
    checkpoint_dir
        Where checkpoints are written (named in the NaN error), or ``None``.
    **kwargs
        Passed to :class:`scvi.train.TrainingPlan` (``lr``, ``weight_decay``, ...).
    """

    def __init__(
        self, module, *, seed: int = 0, checkpoint_dir: str | None = None, adam_eps: float = 1e-8, **kwargs
    ) -> None:
        super().__init__(module, **kwargs)
        self.seed = seed
        self.checkpoint_dir = checkpoint_dir
        self.adam_eps = adam_eps

    def configure_optimizers(self):
        """AdamW (``eps=adam_eps``) over the stage's trainable parameters, warm-up then cosine decay per step."""
        parameters = [p for p in self.module.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(parameters, lr=self.lr, eps=self.adam_eps, weight_decay=self.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = max(1, min(100, total // 20))

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.1 + 0.45 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_train_epoch_start(self) -> None:
        """Seed torch from (seed, stage, epoch): identical draws whether or not the run was resumed."""
        stage = {"state": 1, "diffusion": 2, "all": 3}[self.module.stage]
        torch.manual_seed(self.seed * 1_000_003 + stage * 10_007 + self.current_epoch)

    def compute_and_log_metrics(self, loss_output, metrics, mode: str):
        """scvi-tools' metric logging without ``torch.inference_mode``.

        Under distributed training Lightning all-reduces logged values in place, which inference tensors do not
        allow; ``no_grad`` is enough here.
        """
        with torch.no_grad():
            return TrainingPlan.compute_and_log_metrics.__wrapped__(self, loss_output, metrics, mode)

    def training_step(self, batch, batch_idx):
        """scvi-tools' step, then the non-finite check of every loss term."""
        loss = super().training_step(batch, batch_idx)
        self._check_finite(loss)
        return loss

    def _check_finite(self, loss: torch.Tensor) -> None:
        if torch.isfinite(loss).all():
            return
        terms = getattr(self.module, "last_loss_terms", {}) or {}
        bad = [name for name, value in terms.items() if not torch.isfinite(value).all()] or ["loss"]
        last = _last_checkpoint(self.checkpoint_dir)
        raise NonFiniteLossError(
            f"Loss term(s) {bad} became {loss.item()} at epoch {self.current_epoch}, step {self.global_step} "
            f"(stage {self.module.stage!r}). Last good checkpoint: {last or 'none (pass `checkpoint_dir=` to train)'}. "
            "Check the input for extreme values, or lower `lr`."
        )

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        """Update the exponential moving average of the denoiser."""
        if self.module.stage in ("diffusion", "all"):
            self.module.update_ema()


def _last_checkpoint(directory: str | None) -> str | None:
    from pathlib import Path

    if directory is None:
        return None
    found = sorted(Path(directory).glob("*/last.ckpt"), key=lambda p: p.stat().st_mtime)
    return str(found[-1]) if found else None
