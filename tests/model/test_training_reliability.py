"""Training reliability: NaN guard, determinism, resume after interruption, bounded prediction batches."""

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch

import sxdiff
from sxdiff.datasets.synthetic import perturbation_data
from sxdiff.train import NonFiniteLossError

StateXDiff = sxdiff.model.StateXDiff
SMALL = {"n_latent": 4, "n_hidden": 32, "d_model": 32, "n_blocks": 1, "n_heads": 2, "n_chunks": 4}
KEYS = {"perturbation_key": "perturbation", "control_value": "control", "dose_key": "dose", "context_key": "context"}
TRAIN = {"max_epochs": 4, "state_epochs": 2, "batch_size": 32, "seed": 3, "enable_progress_bar": False}


@pytest.fixture(scope="module")
def adata():
    data = perturbation_data(n_genes=30, n_contexts=2, n_drugs=3, n_cells_per_condition=6, n_control_cells=20)
    sxdiff.pp.drug_features(data, drug_key="perturbation", allow_structure_free=True, use_bundled_tables=False)
    StateXDiff.setup_anndata(data, **KEYS)
    return data


def _model(adata):
    torch.manual_seed(0)
    return StateXDiff(adata, **SMALL)


def _weights(model):
    return {k: v.detach().clone() for k, v in model.module.state_dict().items()}


class _Interrupt(pl.Callback):
    """Raise in the given stage at the start of the given epoch (a crash, a killed job, a full disk)."""

    def __init__(self, stage: str, epoch: int) -> None:
        self.stage, self.epoch = stage, epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if pl_module.module.stage == self.stage and trainer.current_epoch == self.epoch:
            raise RuntimeError("interrupted")


class _Poison(pl.Callback):
    """Put a NaN into the decoder at the start of an epoch."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            with torch.no_grad():
                pl_module.module.vmcs.rna_decoder[-1].bias[0] = float("nan")


def test_same_seed_gives_identical_weights_and_predictions(adata):
    first, second = _model(adata), _model(adata)
    first.train(**TRAIN)
    second.train(**TRAIN)
    a, b = _weights(first), _weights(second)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    sources = adata[adata.obs["is_control"].to_numpy()][:10].copy()
    conditions = pd.DataFrame({"perturbation": ["drug_0"], "dose": ["1.0"]})
    np.testing.assert_array_equal(
        first.predict(sources, conditions, n_steps=3, seed=5).X,
        second.predict(sources, conditions, n_steps=3, seed=5).X,
    )
    third = _model(adata)
    third.train(**{**TRAIN, "seed": 4})
    assert not torch.equal(_weights(third)["denoiser.out.weight"], a["denoiser.out.weight"])


@pytest.mark.parametrize("stage", ["state", "diffusion"])
def test_interrupted_training_resumes_to_the_uninterrupted_state(adata, tmp_path, stage):
    reference = _model(adata)
    reference.train(**TRAIN, checkpoint_dir=tmp_path / "reference")
    interrupted = _model(adata)
    with pytest.raises(RuntimeError, match="interrupted"):
        interrupted.train(**TRAIN, checkpoint_dir=tmp_path / "run", callbacks=[_Interrupt(stage, 1)])
    assert (tmp_path / "run" / stage / "last.ckpt").exists()
    resumed = _model(adata)  # a fresh process: new object, same arguments, same checkpoint directory
    resumed.train(**TRAIN, checkpoint_dir=tmp_path / "run")
    expected, got = _weights(reference), _weights(resumed)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6, msg=name)


def test_nan_loss_stops_training_naming_epoch_step_term_and_checkpoint(adata, tmp_path):
    model = _model(adata)
    with pytest.raises(
        NonFiniteLossError, match=r"\['rna'\] became nan at epoch 1, step \d+ \(stage 'state'\)"
    ) as info:
        model.train(**TRAIN, checkpoint_dir=tmp_path, callbacks=[_Poison(1)])
    assert str(tmp_path / "state" / "last.ckpt") in str(info.value)
    fresh = _model(adata)
    with pytest.raises(NonFiniteLossError, match="none \\(pass `checkpoint_dir=`"):
        fresh.train(**TRAIN, callbacks=[_Poison(0)])


def test_gradient_clipping_is_on_by_default(adata, monkeypatch):
    seen = {}
    original = sxdiff.model._statexdiff.TrainRunner.__init__

    def spy(self, *args, **kwargs):
        seen.update(kwargs)
        original(self, *args, **kwargs)

    monkeypatch.setattr(sxdiff.model._statexdiff.TrainRunner, "__init__", spy)
    _model(adata).train(**{**TRAIN, "max_epochs": 2, "state_epochs": 1})
    assert seen["gradient_clip_val"] == 1.0
