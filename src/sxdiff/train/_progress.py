"""Training progress as log lines: a few per stage, through :mod:`logging` rather than a progress bar."""

from __future__ import annotations

import logging
import math
import time

from lightning.pytorch.callbacks import Callback

__all__ = ["EpochProgressLog"]

logger = logging.getLogger(__name__)


class EpochProgressLog(Callback):
    """Log the epoch, the losses and the elapsed time at INFO level, about ``n_lines`` times per stage.

    For runs whose output is a log or a terminal that a progress bar would flood (``make demo``, batch jobs);
    it only reads the trainer, so results do not change. Pass it to
    :meth:`StateXDiff.train <sxdiff.model.StateXDiff.train>` as ``callbacks=[EpochProgressLog()]`` and show
    INFO records of the ``sxdiff.train`` logger.

    Parameters
    ----------
    n_lines
        Lines per stage (each training stage is one Lightning fit); the last epoch is always logged.
    name
        What is trained, at the start of every line.

    Examples
    --------
    >>> progress = EpochProgressLog(n_lines=4)
    >>> [epoch for epoch in range(1, 11) if progress.is_logged(epoch, 10)]
    [3, 6, 9, 10]
    """

    def __init__(self, n_lines: int = 10, name: str = "StateXDiff") -> None:
        self.n_lines = max(1, n_lines)
        self.name = name
        self._start = time.perf_counter()

    def is_logged(self, epoch: int, max_epochs: int) -> bool:
        """Whether ``epoch`` (counted from 1) gets a line in a stage of ``max_epochs`` epochs."""
        return epoch == max_epochs or epoch % max(1, math.ceil(max_epochs / self.n_lines)) == 0

    def on_train_start(self, trainer, pl_module) -> None:
        """Note the start time and announce the stage and its number of epochs."""
        self._start = time.perf_counter()
        epochs = trainer.max_epochs
        logger.info("%s, %s stage: %s epoch%s", self.name, _stage(pl_module), epochs, "" if epochs == 1 else "s")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Log the epoch's losses when the epoch is one of the logged ones."""
        epoch, total = trainer.current_epoch + 1, trainer.max_epochs
        if total is None or total < 1 or not self.is_logged(epoch, total):
            return
        metrics = trainer.callback_metrics
        shown = [key for key in ("train_loss", "validation_loss") if key in metrics]
        losses = "".join(f", {key} {float(metrics[key]):.4g}" for key in shown)
        seconds = time.perf_counter() - self._start
        logger.info("%s, %s stage: epoch %d/%d%s (%.0f s)", self.name, _stage(pl_module), epoch, total, losses, seconds)


def _stage(pl_module) -> str:
    """The training stage of a StateXDiff training plan's module (``"?"`` for another module)."""
    return str(getattr(getattr(pl_module, "module", None), "stage", "?"))
