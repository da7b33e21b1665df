"""StateXDiff: training under scvi-tools, prediction into AnnData, save/load, bad input (fast, tiny models)."""

import mudata as md
import numpy as np
import pandas as pd
import pytest
import torch

import sxdiff
from sxdiff.data import clr
from sxdiff.datasets.synthetic import drug_table, perturbation_data

StateXDiff = sxdiff.model.StateXDiff
SMALL = {"n_latent": 4, "n_hidden": 32, "d_model": 32, "n_blocks": 1, "n_heads": 2, "n_chunks": 4}
KEYS = {"perturbation_key": "perturbation", "control_value": "control", "dose_key": "dose", "context_key": "context"}


def _data(seed=0, n_drugs=4):
    adata = perturbation_data(
        n_genes=40,
        n_contexts=2,
        n_drugs=n_drugs,
        n_combinations=1,
        n_cells_per_condition=8,
        n_control_cells=30,
        seed=seed,
    )
    sxdiff.pp.drug_features(adata, drug_key="perturbation", drug_table=drug_table(adata), use_bundled_tables=False)
    return adata


@pytest.fixture(scope="module")
def trained():
    adata = _data()
    sxdiff.pp.ood_split(adata, "unseen_context", ["context_1"], **KEYS)
    StateXDiff.setup_anndata(adata, **KEYS)
    torch.manual_seed(0)
    model = StateXDiff(adata, **SMALL)
    model.train(max_epochs=2, split_key="sxdiff_split", batch_size=64, enable_progress_bar=False)
    return adata, model


def _controls(adata, context="context_1"):
    return adata[(adata.obs["context"] == context).to_numpy() & adata.obs["is_control"].to_numpy()].copy()


def test_training_logs_losses_of_both_stages(trained):
    _, model = trained
    assert model.is_trained_
    history = model.history
    assert "train_loss" in history
    assert "validation_loss" in history
    assert "rna_train" in history
    assert "v_train" in history  # stage-2 losses are kept too
    assert "triplet_train" in history
    assert set(history["train_loss"]["stage"]) == {"state", "diffusion"}
    assert np.isfinite(history["train_loss"]["train_loss"].to_numpy(dtype=float)).all()


def test_predict_returns_predicted_cells_for_scanpy(trained):
    adata, model = trained
    sources = _controls(adata)
    conditions = pd.DataFrame({"perturbation": ["drug_1", "drug_0+drug_2"], "dose": ["10.0", "1.0+1.0"]})
    pred = model.predict(sources, conditions, n_samples_per_cell=2, n_steps=5, seed=0)
    assert pred.n_obs == 2 * 2 * sources.n_obs
    assert list(pred.var_names) == list(adata.var_names)
    assert {"perturbation", "dose", "source_cell", "context", "sample"} <= set(pred.obs.columns)
    assert set(pred.obs["source_cell"]) == set(sources.obs_names)
    assert pred.obsm["X_sxdiff"].shape == (pred.n_obs, model.module.n_state)
    assert np.all(pred.X >= 0)  # counts scale, residual decoding clipped at zero
    again = model.predict(sources, conditions, n_samples_per_cell=2, n_steps=5, seed=0)
    np.testing.assert_array_equal(pred.X, again.X)  # same seed, same prediction
    chosen = float(model.module.variation_scale)
    try:  # the seed draws the residual's cell-level variation, whatever factor validation chose
        model.module.set_variation_scale(1.0)
        first = model.predict(sources, conditions, n_samples_per_cell=2, n_steps=5, seed=0)
        other = model.predict(sources, conditions, n_samples_per_cell=2, n_steps=5, seed=1)
        assert not np.allclose(first.X, other.X)
        # the residual is centred per condition: the seed moves cells, not the condition's mean change
        np.testing.assert_allclose(first.X.mean(axis=0), other.X.mean(axis=0), rtol=0.05, atol=0.05)
    finally:
        model.module.set_variation_scale(chosen)


def test_predict_scales_the_spread_of_the_change_around_each_contexts_mean_whatever_the_batch():
    adata = _data()
    StateXDiff.setup_anndata(adata, **KEYS)
    torch.manual_seed(0)
    model = StateXDiff(adata, **SMALL, state_anchors=0)  # each cell's own state: a per-cell expected change
    model.train(max_epochs=2, batch_size=64, enable_progress_bar=False)
    sources = adata[adata.obs["is_control"].to_numpy()].copy()  # both contexts
    conditions = pd.DataFrame({"perturbation": ["drug_1"], "dose": ["10.0"]})
    module = model.module

    def states(spread: float, **kwargs) -> np.ndarray:
        module.set_state_spread(spread)
        return model.predict(sources, conditions, n_steps=2, seed=0, **kwargs).obsm["X_sxdiff"]

    module.set_variation_scale(0.0)  # predicted state = source state + expected change
    full, none, none_small = states(1.0), states(0.0), states(0.0, batch_size=7)
    np.testing.assert_allclose(none_small, none, atol=1e-5)  # each context's mean, not each batch's
    spread = full - none  # the per-cell part of the expected change
    assert np.abs(spread).max() > 1e-4
    for context in ("context_0", "context_1"):
        rows = (sources.obs["context"] == context).to_numpy()
        np.testing.assert_allclose(spread[rows].mean(axis=0), 0.0, atol=1e-3 * np.abs(spread).max())


def test_the_joint_choice_takes_the_argmin_of_the_distance_table_and_keeps_fixed_factors(trained, monkeypatch):
    from itertools import count

    from sxdiff.model import _variation_scale

    _, model = trained
    module = model.module
    data = model._paired_data("sxdiff_split", 0.1, 64, 0)
    settings = float(module.variation_scale), float(module.state_spread)
    spreads = sorted(_variation_scale.SPREAD_GRID, reverse=True)  # the chooser's order: spread-major, 1 first
    variations = list(_variation_scale.VARIATION_GRID)
    table = np.arange(len(spreads) * len(variations), dtype=float)[::-1] + 1.0
    table[8] = 0.5  # spread 0.5 (second), variation 0.75 (fourth)
    calls = count()  # energy distances come condition by condition, pair by pair
    monkeypatch.setattr(_variation_scale, "energy_distance", lambda *a, **k: table[next(calls) % len(table)])
    try:
        _variation_scale.choose_variation_scale(model, data)
        assert (float(module.state_spread), float(module.variation_scale)) == (0.5, 0.75)
        assert model.state_spread_ == {"chosen": 0.5, "1.00": 11.0, "0.50": 0.5, "0.00": 1.0}  # best over variation
        by_variation = {"0.00": 5.0, "0.25": 4.0, "0.50": 3.0, "0.75": 0.5, "1.00": 1.0}
        assert model.variation_scale_ == {"chosen": 0.75, **by_variation}
        # a factor the user fixed is kept; the other is still chosen
        module.set_variation_scale(0.25)
        calls = count()
        monkeypatch.setattr(_variation_scale, "energy_distance", lambda *a, **k: [3.0, 1.0, 2.0][next(calls) % 3])
        _variation_scale.choose_variation_scale(model, data, grid=None)
        assert float(module.variation_scale) == 0.25
        assert model.variation_scale_ == {"chosen": 0.25, "0.25": 1.0}
        assert float(module.state_spread) == 0.5
    finally:
        module.set_variation_scale(settings[0])
        module.set_state_spread(settings[1])


def test_save_load_reproduces_predictions(trained, tmp_path):
    adata, model = trained
    sources = _controls(adata)
    conditions = pd.DataFrame({"perturbation": ["drug_3"], "dose": ["1.0"]})
    expected = model.predict(sources, conditions, n_steps=5, seed=3)
    model.save(tmp_path / "model", overwrite=True)
    for loaded in (StateXDiff.load(tmp_path / "model", adata=adata), StateXDiff.load(tmp_path / "model")):
        got = loaded.predict(sources, conditions, n_steps=5, seed=3)
        np.testing.assert_allclose(got.X, expected.X, rtol=1e-5, atol=1e-5)


def test_unseen_drug_is_predicted_from_its_targets_only(trained):
    adata, model = trained
    sources = _controls(adata)
    truth = adata.uns["synthetic_truth"]
    new = pd.DataFrame(
        {"drug": ["new_drug"], "targets": ["|".join(truth["targets"]["drug_1"])], "action": ["INHIBITOR"]}
    )
    pred = model.predict(
        sources, pd.DataFrame({"perturbation": ["new_drug"], "dose": ["1.0"]}), n_steps=5, seed=0, drug_table=new
    )
    assert pred.n_obs == sources.n_obs
    embedding = model.get_drug_embedding(["new_drug", "drug_1", "drug_2"])
    assert list(embedding.index) == ["new_drug", "drug_1", "drug_2"]
    with pytest.raises(ValueError, match="neither SMILES nor targets"):
        model.predict(sources, pd.DataFrame({"perturbation": ["mystery"], "dose": ["1.0"]}), n_steps=2)


def test_counterfactual_latent_and_dose_response(trained):
    adata, model = trained
    sources = _controls(adata)
    model.predict_counterfactual(sources, "drug_1", dose=10.0, key_added="cf", n_steps=3)
    assert sources.layers["cf_pred"].shape == sources.shape
    assert sources.obsm["X_cf"].shape[0] == sources.n_obs
    assert model.get_latent_representation(sources).shape == (sources.n_obs, model.module.n_state)
    curve = model.dose_response(sources, "drug_1", [0.1, 1.0, 10.0], n_steps=3)
    assert curve.shape == (3, adata.n_vars)


def test_bad_input_is_refused_clearly(trained):
    adata, model = trained
    sources = _controls(adata)
    with pytest.raises(ValueError, match="genes differ"):
        model.predict(sources[:, ::-1].copy(), pd.DataFrame({"perturbation": ["drug_1"], "dose": ["1.0"]}))
    treated = adata[(adata.obs["perturbation"] == "drug_1").to_numpy()].copy()
    with pytest.raises(ValueError, match="non-control cells"):
        model.predict(treated, pd.DataFrame({"perturbation": ["drug_1"], "dose": ["1.0"]}))
    with pytest.raises(KeyError, match="columns 'perturbation' and 'dose'"):
        model.predict(sources, ["drug_1"])
    with pytest.raises(ValueError, match="stage must be"):
        model.train(max_epochs=1, stage="everything")
    for bad in (1.5, "full"):
        with pytest.raises(ValueError, match=r"variation_scale must be 'auto' or a number in \[0, 1\]"):
            sxdiff.model.StateXDiff(adata, variation_scale=bad)
        with pytest.raises(ValueError, match=r"state_spread must be 'auto' or a number in \[0, 1\]"):
            sxdiff.model.StateXDiff(adata, state_spread=bad)


def test_setup_describes_perturbations_itself_only_after_validation():
    adata = perturbation_data(n_genes=20, n_drugs=2, n_combinations=0, n_cells_per_condition=5, n_control_cells=10)
    with pytest.raises(ValueError, match="Control value 'DMSO'"):
        StateXDiff.setup_anndata(adata, **{**KEYS, "control_value": "DMSO"})
    assert "sxdiff_drugs" not in adata.uns  # nothing written when validation fails
    StateXDiff.setup_anndata(adata, **KEYS)  # no pp.drug_features first: setup runs it with its defaults
    assert sorted(adata.uns["sxdiff_drugs"]["names"]) == ["drug_0", "drug_1"]
    assert len(StateXDiff(adata, **SMALL)._features().names) == 2


def test_two_models_on_two_datasets_do_not_interfere():
    a, b = _data(seed=1, n_drugs=3), _data(seed=2, n_drugs=5)
    StateXDiff.setup_anndata(a, **KEYS)
    StateXDiff.setup_anndata(b, **KEYS)
    model_a, model_b = StateXDiff(a, **SMALL), StateXDiff(b, **SMALL)
    assert len(model_a._features().names) == 3
    assert len(model_b._features().names) == 5
    assert model_a.adata is a
    assert model_b.adata is b


def test_anndata_and_mudata_paths_give_the_same_result():
    adata = _data(seed=4)
    rng = np.random.default_rng(0)
    protein_counts = rng.poisson(5, size=(adata.n_obs, 6)).astype(np.float32)
    names = [f"P{i}" for i in range(6)]
    with_obsm = adata.copy()
    with_obsm.obsm["sxdiff_protein"] = clr(protein_counts)
    with_obsm.uns["sxdiff_protein"] = {"names": names, "reliability": np.ones(6)}
    StateXDiff.setup_anndata(with_obsm, **KEYS, protein_obsm_key="sxdiff_protein")
    mdata = md.MuData({"rna": adata.copy(), "prot": __import__("anndata").AnnData(protein_counts)})
    mdata["prot"].var_names = names
    mdata["prot"].obs_names = adata.obs_names
    mdata.uns["sxdiff_drugs"] = adata.uns["sxdiff_drugs"]
    mdata.update()
    StateXDiff.setup_mudata(mdata, **KEYS)
    predictions = []
    for data in (with_obsm, mdata):
        torch.manual_seed(0)
        model = StateXDiff(data, **SMALL)
        model.train(max_epochs=2, batch_size=64, enable_progress_bar=False, seed=0)
        mask = (adata.obs["is_control"] & (adata.obs["context"] == "context_0")).to_numpy()
        sources = data[mask].copy()
        pred = model.predict(sources, pd.DataFrame({"perturbation": ["drug_1"], "dose": ["1.0"]}), n_steps=5, seed=0)
        predictions.append(pred)
    np.testing.assert_allclose(predictions[0].X, predictions[1].X, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(predictions[0].obsm["sxdiff_protein"], predictions[1].obsm["sxdiff_protein"], atol=1e-4)


def test_saved_model_predicts_a_new_drug_from_its_smiles_alone(tmp_path):
    """Drug table and feature statistics travel with the saved model (attributes ending in ``_``)."""
    adata = sxdiff.datasets.glioblastoma_panobinostat()
    adata = adata[np.random.default_rng(0).choice(adata.n_obs, 600, replace=False)].copy()
    sxdiff.pp.drug_features(adata, drug_key="perturbation")
    StateXDiff.setup_anndata(adata, **KEYS)
    torch.manual_seed(0)
    model = StateXDiff(adata, **SMALL)
    model.train(max_epochs=2, batch_size=128, enable_progress_bar=False)
    model.save(tmp_path / "glio", overwrite=True)
    loaded = StateXDiff.load(tmp_path / "glio")  # no training data needed
    assert loaded.drug_features_["table"]["key"] == ["panobinostat"]
    np.testing.assert_array_equal(
        loaded.drug_features_["featurizer"]["descriptor_mean"], model.drug_features_["featurizer"]["descriptor_mean"]
    )
    sources = adata[(adata.obs["is_control"] & (adata.obs["context"] == "PW034")).to_numpy()].copy()
    vorinostat = pd.DataFrame({"drug": ["vorinostat"], "smiles": ["ONC(=O)CCCCCCC(=O)Nc1ccccc1"]})
    pred = loaded.predict(
        sources, pd.DataFrame({"perturbation": ["vorinostat"], "dose": [1.0]}), n_steps=3, seed=0, drug_table=vorinostat
    )
    assert pred.n_obs == sources.n_obs
    features = sxdiff.drugs.DrugFeatures.from_dict(loaded.drug_features_)
    row = features.index("vorinostat")
    assert features.has_structure[row]
    np.testing.assert_array_equal(
        features.structure[row],
        features.featurizer.transform([sxdiff.drugs.canonical_smiles(vorinostat["smiles"][0])])[0],
    )


def test_perturbation_set_field_registers_and_transfers_unseen_drugs(trained):
    from sxdiff.data import encode_perturbation_sets, validate_perturbation_data
    from sxdiff.data._perturbation_field import decode_perturbation_field

    adata, model = trained
    encoded = adata.obsm["_sxdiff_perturbation_set"]
    index, dose, mask = decode_perturbation_field(encoded)
    state = model.adata_manager.get_state_registry("perturbation_set")
    found = validate_perturbation_data(adata, **KEYS)
    expected = encode_perturbation_sets(found.perturbation_sets, found.doses, state["vocabulary"])
    np.testing.assert_array_equal(index, expected[0])
    np.testing.assert_allclose(dose, expected[1])
    np.testing.assert_array_equal(mask, expected[2])
    assert model.summary_stats["n_perturbations"] == len(state["vocabulary"])
    # one index space: the field's indices are rows of the model's drug features, with no mapping in between
    assert list(model.drug_features_["names"])[: len(state["vocabulary"])] == list(state["vocabulary"])
    new = adata[:40].copy()
    new.obs["perturbation"] = new.obs["perturbation"].astype(str)
    new.obs.loc[new.obs_names[:5], "perturbation"] = "never_seen"
    new.obs.loc[new.obs_names[:5], "dose"] = "1.0"
    model._validate_anndata(new)
    transferred = model.get_anndata_manager(new).get_state_registry("perturbation_set")
    assert transferred["vocabulary"][: len(state["vocabulary"])] == state["vocabulary"]
    assert transferred["vocabulary"][-1] == "never_seen"
    new_index, _, new_mask = decode_perturbation_field(new.obsm["_sxdiff_perturbation_set"])
    assert set(new_index[:5, 0]) == {len(transferred["vocabulary"]) - 1}
    assert new_mask[:5, 0].all()


def test_control_partners_are_redrawn_every_epoch(monkeypatch):
    adata = _data(seed=7)
    StateXDiff.setup_anndata(adata, **KEYS)
    model = StateXDiff(adata, **SMALL)
    draws = []
    original = sxdiff.train.PairedPerturbationData.train_dataloader

    def spy(self):
        loader = original(self)
        draws.append(self.train_set.partners.copy())
        return loader

    monkeypatch.setattr(sxdiff.train.PairedPerturbationData, "train_dataloader", spy)
    model.train(max_epochs=3, stage="state", batch_size=64, enable_progress_bar=False)
    assert len(draws) == 3
    assert len({d.tobytes() for d in draws}) == 3


def test_predict_describes_unseen_drugs_by_the_training_table_policy():
    """A model featurised without the bundled tables does not reach for them at prediction time either."""
    adata = _data(seed=5)  # drug_features(..., use_bundled_tables=False)
    assert adata.uns["sxdiff_drugs"]["params"]["use_bundled_tables"] is False
    StateXDiff.setup_anndata(adata, **KEYS)
    model = StateXDiff(adata, **SMALL)
    model.train(max_epochs=2, batch_size=64, enable_progress_bar=False)
    controls = _controls(adata, "context_0")
    frame = pd.DataFrame({"perturbation": ["panobinostat"], "dose": [1.0]})
    with pytest.raises(ValueError, match=r"neither SMILES nor targets: \['panobinostat'\]"):
        model.predict(controls, frame, seed=0)  # the bundled tables know it, but were not to be used
    mine = pd.DataFrame({"drug": ["vorinostat"], "smiles": ["ONC(=O)CCCCCCC(=O)Nc1ccccc1"]})
    model.predict(controls, frame.assign(perturbation="vorinostat"), seed=0, drug_table=mine)
    features = model._features()
    assert features.has_structure[features.names.index("vorinostat")]  # the user's table is read


def test_trained_singles_are_corrected_toward_their_measured_change(trained):
    """After 2 epochs the network fits its training singles poorly; the fitted corrections move a single's predicted
    mean change in its training context toward the measured one, and a set of trained members gets their sum."""
    adata, model = trained
    composer = model.module.composer
    assert model.measured_effects == "raw"
    assert model.measured_effects_["perturbations"] >= 3
    assert float(composer.measured_correction.abs().sum()) > 0
    sources = _controls(adata, "context_0")
    control = np.asarray(sxdiff.data.log_normalize(sources.X).mean(0)).ravel()
    cells = adata[(adata.obs["context"] == "context_0").to_numpy() & (adata.obs["perturbation"] == "drug_1").to_numpy()]
    dose = "10.0"  # the strongest dose: lower ones change little beyond the 8 cells' noise
    cells = cells[(cells.obs["dose"].astype(str) == dose).to_numpy()]
    measured = np.asarray(sxdiff.data.log_normalize(cells.X).mean(0)).ravel() - control
    condition = pd.DataFrame({"perturbation": ["drug_1"], "dose": [dose]})

    def error() -> float:
        pred = model.predict(sources, condition, n_steps=2, seed=0)
        change = np.asarray(sxdiff.data.log_normalize(pred.X).mean(0)).ravel() - control
        return float(np.mean((change - measured) ** 2))

    corrected = error()
    saved = composer.measured_correction.clone()
    try:
        composer.measured_correction.zero_()
        uncorrected = error()
    finally:
        composer.measured_correction.copy_(saved)
    assert corrected < 0.5 * uncorrected, (corrected, uncorrected)  # measured: raw 0.40, shrunk 0.27 vs 1.06


def test_context_transfer_is_off_by_default_and_contexts_with_perturbed_cells_are_recorded(trained):
    adata, model = trained
    assert model.context_transfer == "off"
    assert model.module.composer.context_transfer.tolist() == [1.0, 1.0]  # carried over whole
    assert model.perturbed_contexts_ == ["context_0"]  # context_1's perturbed cells are the test set
    with pytest.raises(ValueError, match="context_transfer"):
        StateXDiff(adata, context_transfer="yes", **SMALL)
