"""Resume checkpoints of one training stage, and the history of a model trained in stages."""

import pandas as pd

from sxdiff.train._checkpoint import ResumeCheckpoint, resume_checkpointing
from sxdiff.train._history import merge_history


def test_checkpointing_keeps_callbacks_and_resumes_only_from_an_existing_last_checkpoint(tmp_path):
    mine = object()
    fresh = resume_checkpointing(tmp_path / "state", {"callbacks": [mine]})
    assert fresh["callbacks"][0] is mine
    assert isinstance(fresh["callbacks"][1], ResumeCheckpoint)
    assert fresh["enable_checkpointing"]
    assert "ckpt_path" not in fresh
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "last.ckpt").write_bytes(b"")
    assert resume_checkpointing(tmp_path / "state", {})["ckpt_path"] == str(tmp_path / "state" / "last.ckpt")


def test_history_appends_stages_and_keeps_metrics_new_in_a_later_stage():
    history = merge_history({}, {"train_loss": pd.DataFrame({"train_loss": [2.0]}, index=[7])}, "state")
    later = {"train_loss": pd.DataFrame({"train_loss": [1.0]}), "validation_loss": pd.DataFrame({"loss": [3.0]})}
    history = merge_history(history, later, "diffusion")
    assert history["train_loss"]["stage"].tolist() == ["state", "diffusion"]
    assert history["train_loss"].index.tolist() == [0, 1]
    assert history["validation_loss"]["stage"].tolist() == ["diffusion"]
