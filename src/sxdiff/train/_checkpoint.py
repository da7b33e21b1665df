"""Per-epoch resume checkpoints written by Lightning (no scvi-tools model saves)."""

from __future__ import annotations

import logging
from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint
from scvi.train import SaveCheckpoint

__all__ = ["ResumeCheckpoint", "resume_checkpointing"]

logger = logging.getLogger(__name__)


class ResumeCheckpoint(SaveCheckpoint):
    """Lightning's ``ModelCheckpoint`` writing ``<dirpath>/last.ckpt`` after every epoch.

    It subclasses scvi-tools' ``SaveCheckpoint`` only so that scvi-tools' trainer does not add its own
    checkpoint callback (which pickles a full model save into ``scvi_log/`` at every epoch); every
    behaviour is Lightning's plain ``ModelCheckpoint``.
    """

    def __init__(self, dirpath: str | Path) -> None:
        ModelCheckpoint.__init__(
            self, dirpath=dirpath, filename="last", save_top_k=1, every_n_epochs=1, enable_version_counter=False
        )
        self.load_best_on_end, self.loss_is_nan, self.check_nan_gradients = False, False, False

    on_save_checkpoint = ModelCheckpoint.on_save_checkpoint
    _remove_checkpoint = ModelCheckpoint._remove_checkpoint
    _update_best_and_save = ModelCheckpoint._update_best_and_save
    on_train_end = ModelCheckpoint.on_train_end
    on_train_batch_end = ModelCheckpoint.on_train_batch_end


def resume_checkpointing(directory: Path, trainer_kwargs: dict) -> dict:
    """Trainer arguments that write ``last.ckpt`` every epoch into ``directory`` and resume from it.

    Parameters
    ----------
    directory
        Folder of this training stage's checkpoint.
    trainer_kwargs
        The trainer arguments so far; their ``callbacks`` are kept, the checkpoint callback added.

    Returns
    -------
    ``callbacks`` and ``enable_checkpointing``, plus ``ckpt_path`` when ``directory/last.ckpt`` exists.
    """
    checkpoint = ResumeCheckpoint(directory)
    last = directory / "last.ckpt"
    out = {"callbacks": [*trainer_kwargs.get("callbacks", []), checkpoint], "enable_checkpointing": True}
    if last.exists():
        logger.info("Resuming from %s", last)
        out["ckpt_path"] = str(last)
    return out
