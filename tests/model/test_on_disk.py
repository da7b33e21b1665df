"""Training and prediction from AnnData stores on disk (backed ``.h5ad``): rows read per minibatch, never whole.

Reading rows and checking stores are tested in ``tests/data/test_on_disk.py``.
"""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

import sxdiff
from sxdiff.data._on_disk import RowReader
from sxdiff.datasets.synthetic import drug_table, expected_log_mean, perturbation_data

KEYS = {"perturbation_key": "perturbation", "control_value": "control", "dose_key": "dose", "context_key": "context"}
SMALL = {"n_latent": 8, "n_hidden": 64, "d_model": 64}


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """Synthetic counts with known effects written to .h5ad (CSR) and opened backed, in shuffled cell order."""
    adata = perturbation_data(
        n_genes=40,
        n_contexts=2,
        n_drugs=4,
        n_combinations=0,
        n_cells_per_condition=20,
        n_control_cells=60,
        n_modules=4,
        effect_size=2.0,
        seed=0,
    )
    adata = adata[np.random.default_rng(0).permutation(adata.n_obs)].copy()
    sxdiff.pp.drug_features(adata, drug_key="perturbation", drug_table=drug_table(adata), use_bundled_tables=False)
    path = tmp_path_factory.mktemp("store") / "cells.h5ad"
    adata.write_h5ad(path)
    return adata, path


def test_setup_refuses_a_backed_store_with_nan(stored, tmp_path):
    adata, _ = stored
    bad = adata.copy()
    bad.X = bad.X.toarray()
    bad.X[7, 3] = np.nan
    bad.write_h5ad(tmp_path / "bad.h5ad")
    backed = ad.read_h5ad(tmp_path / "bad.h5ad", backed="r")
    with pytest.raises(ValueError, match=r"adata.X contains 1 NaN"):
        sxdiff.model.StateXDiff.setup_anndata(backed, **KEYS)


@pytest.mark.slow
def test_training_from_disk_never_loads_the_matrix_and_recovers_effects(stored, tmp_path, monkeypatch):
    adata, path = stored
    backed = ad.read_h5ad(path, backed="r")
    sxdiff.model.StateXDiff.setup_anndata(backed, **KEYS)
    reads: list[tuple[str, int]] = []
    original = RowReader.__getitem__

    def counting(self, rows):
        assert not (isinstance(rows, slice) and rows == slice(None)), "the whole matrix was read"
        values = original(self, rows)
        reads.append(("slice" if isinstance(rows, slice) else "rows", values.shape[0]))
        return values

    monkeypatch.setattr(RowReader, "__getitem__", counting)
    torch.manual_seed(0)
    model = sxdiff.model.StateXDiff(backed, **SMALL)
    model.train(max_epochs=60, batch_size=64, storage="auto", enable_progress_bar=False)
    minibatches = [n for kind, n in reads if kind == "rows"]
    assert len(minibatches) > 60
    assert max(minibatches) <= 64
    stages = {stage for frame in model.history_.values() if "stage" in frame for stage in frame["stage"]}
    assert stages == {"state", "diffusion"}
    assert model.is_trained_

    controls = adata[(adata.obs["is_control"] & (adata.obs["context"] == "context_0")).to_numpy()].copy()
    controls.write_h5ad(tmp_path / "controls.h5ad")
    sources = ad.read_h5ad(tmp_path / "controls.h5ad", backed="r")
    conditions = pd.DataFrame({"perturbation": ["drug_0"], "dose": ["10.0"]})
    pred = model.predict(sources, conditions, seed=0, out_path=tmp_path / "pred.h5ad")
    assert pred.isbacked
    assert pred.n_obs == controls.n_obs
    in_memory = model.predict(controls, conditions, seed=0)
    np.testing.assert_allclose(np.asarray(pred.X[:]), in_memory.X, rtol=1e-5, atol=1e-5)

    truth = adata.uns["synthetic_truth"]
    control = np.asarray(sxdiff.data.log_normalize(controls.X).mean(0)).ravel()
    change = np.asarray(sxdiff.data.log_normalize(in_memory.X).mean(0)).ravel() - control
    expected = expected_log_mean(truth, "context_0", ["drug_0"], [10.0]) - expected_log_mean(truth, "context_0", [], [])
    assert np.corrcoef(change, expected)[0, 1] > 0.8
