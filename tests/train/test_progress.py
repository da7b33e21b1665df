"""Training progress logged a few lines per stage."""

import logging
from types import SimpleNamespace

import torch

from sxdiff.train import EpochProgressLog


def _fit(progress: EpochProgressLog, epochs: int, stage: str) -> None:
    """Call the callback as a Lightning fit of ``epochs`` epochs would (validation loss from epoch 2)."""
    plan = SimpleNamespace(module=SimpleNamespace(stage=stage))
    trainer = SimpleNamespace(max_epochs=epochs, current_epoch=0, callback_metrics={})
    progress.on_train_start(trainer, plan)
    for epoch in range(epochs):
        trainer.current_epoch = epoch
        trainer.callback_metrics = {"train_loss": torch.tensor(1.0 / (epoch + 1))}
        if epoch:
            trainer.callback_metrics["validation_loss"] = torch.tensor(2.0)
        progress.on_train_epoch_end(trainer, plan)


def test_a_few_lines_per_stage_with_losses_and_the_last_epoch(caplog):
    with caplog.at_level(logging.INFO, logger="sxdiff.train"):
        _fit(EpochProgressLog(n_lines=3), 7, "state")
        _fit(EpochProgressLog(n_lines=3), 2, "diffusion")
        _fit(EpochProgressLog(n_lines=3), 1, "diffusion")
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == "StateXDiff, state stage: 7 epochs"
    assert [line.split(": epoch ")[1].split(",")[0] for line in lines if ": epoch " in line] == [
        "3/7",
        "6/7",
        "7/7",
        "1/2",
        "2/2",
        "1/1",
    ]
    assert "train_loss 0.3333, validation_loss 2" in lines[1]
    assert "validation_loss" not in lines[5]  # the first epoch of a stage before any validation
    assert lines[4] == "StateXDiff, diffusion stage: 2 epochs"
    assert lines[7] == "StateXDiff, diffusion stage: 1 epoch"


def test_silent_unless_info_is_shown(caplog):
    with caplog.at_level(logging.WARNING, logger="sxdiff.train"):
        _fit(EpochProgressLog(), 3, "state")
    assert not caplog.records
