"""Model files: no pickle, checksums, version refusal, atomic replacement (issue: reliability and security)."""

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

import sxdiff
from sxdiff.datasets.synthetic import perturbation_data
from sxdiff.model._safe_io import FORMAT_VERSION, ModelFileError, from_json, to_json

StateXDiff = sxdiff.model.StateXDiff
SMALL = {"n_latent": 4, "n_hidden": 32, "d_model": 32, "n_blocks": 1, "n_heads": 2, "n_chunks": 4}
KEYS = {"perturbation_key": "perturbation", "control_value": "control", "dose_key": "dose", "context_key": "context"}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    adata = perturbation_data(n_genes=30, n_contexts=2, n_drugs=3, n_cells_per_condition=6, n_control_cells=20)
    sxdiff.pp.drug_features(adata, drug_key="perturbation", allow_structure_free=True, use_bundled_tables=False)
    StateXDiff.setup_anndata(adata, **KEYS)
    torch.manual_seed(0)
    model = StateXDiff(adata, **SMALL)
    model.train(max_epochs=2, batch_size=64, enable_progress_bar=False)
    path = tmp_path_factory.mktemp("models") / "model"
    model.save(path)
    return adata, model, path


def _sources(adata):
    return adata[adata.obs["is_control"].to_numpy() & (adata.obs["context"] == "context_0").to_numpy()].copy()


def test_tagged_json_round_trips_arrays_frames_and_tuples():
    value = {
        "ints": np.arange(6, dtype=np.int16).reshape(2, 3),
        "floats": np.array([0.5, np.nan, np.inf], dtype=np.float32),
        "strings": np.array(["a", "b"], dtype=object),
        "frame": pd.DataFrame({"loss": [1.0, 0.5], "stage": ["state", "diffusion"]}, index=[3, 4]),
        "tuple": (1, "x"),
        "nested": [{"k": np.float64(2.5)}, None, True],
        "not_finite": float("nan"),
        (1, 2): "tuple key",
    }
    back = from_json(json.loads(json.dumps(to_json(value))))
    np.testing.assert_array_equal(back["ints"], value["ints"])
    assert back["ints"].dtype == np.int16
    np.testing.assert_array_equal(back["floats"], value["floats"])
    assert list(back["strings"]) == ["a", "b"]
    pd.testing.assert_frame_equal(back["frame"], value["frame"])
    assert back["tuple"] == (1, "x")
    assert back["nested"] == [{"k": 2.5}, None, True]
    assert np.isnan(back["not_finite"])
    assert back[(1, 2)] == "tuple key"


def test_model_directory_holds_no_pickle(saved):
    _, _, path = saved
    files = sorted(p.name for p in path.iterdir())
    assert files == ["attributes.json", "manifest.json", "var_names.json", "weights.pt"]
    state = torch.load(path / "weights.pt", weights_only=True)  # tensors only, or this raises
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["sxdiff_version"] == sxdiff.__version__


def test_loaded_model_predicts_the_same_and_can_be_saved_again(saved, tmp_path):
    adata, model, path = saved
    sources = _sources(adata)
    conditions = pd.DataFrame({"perturbation": ["drug_1"], "dose": ["1.0"]})
    expected = model.predict(sources, conditions, n_steps=4, seed=1)
    loaded = StateXDiff.load(path)
    np.testing.assert_array_equal(loaded.predict(sources, conditions, n_steps=4, seed=1).X, expected.X)
    loaded.save(tmp_path / "again")
    again = StateXDiff.load(tmp_path / "again", adata=adata)
    np.testing.assert_array_equal(again.predict(sources, conditions, n_steps=4, seed=1).X, expected.X)
    pd.testing.assert_frame_equal(again.history["v_train"], model.history["v_train"])


def test_tampered_truncated_and_pickled_files_are_refused(saved, tmp_path):
    import shutil

    _, _, path = saved
    for damage, message in [
        (lambda d: (d / "weights.pt").write_bytes((d / "weights.pt").read_bytes()[:100]), "truncated or modified"),
        (lambda d: (d / "attributes.json").write_text('{"registry_": {}}'), "truncated or modified"),
        (lambda d: (d / "var_names.json").unlink(), "missing"),
        (lambda d: (d / "manifest.json").write_text("{"), "corrupt"),
    ]:
        copy = tmp_path / f"copy_{message[:4]}_{len(list(tmp_path.iterdir()))}"
        shutil.copytree(path, copy)
        damage(copy)
        with pytest.raises(ModelFileError, match=message):
            StateXDiff.load(copy)
    scvi_style = tmp_path / "scvi_style"
    scvi_style.mkdir()
    (scvi_style / "model.pt").write_bytes(pickle.dumps({"attr_dict": {}}))
    with pytest.raises(ModelFileError, match="pickle-based"):
        StateXDiff.load(scvi_style)


def test_newer_format_names_the_version_that_wrote_it(saved, tmp_path):
    import shutil

    _, _, path = saved
    copy = tmp_path / "newer"
    shutil.copytree(path, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest.update(format_version=FORMAT_VERSION + 1, sxdiff_version="9.0.0")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match=r"written by sxdiff 9\.0\.0 .*Upgrade sxdiff"):
        StateXDiff.load(copy)


def test_interrupted_save_keeps_the_previous_model(saved, tmp_path, monkeypatch):
    import shutil

    _, model, path = saved
    target = tmp_path / "good"
    shutil.copytree(path, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def fail(*args, **kwargs):
        raise KeyboardInterrupt  # e.g. the user interrupts while the attributes are written

    monkeypatch.setattr("sxdiff.model._safe_io.json.dumps", fail)
    with pytest.raises(KeyboardInterrupt):
        model.save(target, overwrite=True)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good"]  # no staging directory left behind
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save(target)


def test_loading_onto_other_genes_lists_the_mismatch(saved):
    adata, _, path = saved
    shuffled = adata[:, adata.var_names[::-1]].copy()
    with pytest.raises(ValueError, match="same genes in another order"):
        StateXDiff.load(path, adata=shuffled)
    fewer = adata[:, adata.var_names[:-2]].copy()
    with pytest.raises(ValueError, match=r"missing e\.g\. \['gene_28', 'gene_29'\]"):
        StateXDiff.load(path, adata=fewer)
