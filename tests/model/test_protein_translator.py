import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

import sxdiff
from sxdiff.data import clr

ProteinTranslator = sxdiff.model.ProteinTranslator


def _reference(n_cells=400, n_genes=300, seed=0, mod_names=("rna", "prot")) -> md.MuData:
    """RNA counts from two cell programmes; protein P1 follows gene G1's programme, P2 gene G2's, Iso is noise."""
    loadings = np.random.default_rng(0).normal(size=(2, n_genes)) * 0.8  # the same biology for every sample
    rng = np.random.default_rng(seed)
    programme = rng.normal(size=(n_cells, 2))
    counts = rng.poisson(np.exp(programme @ loadings + 0.5)).astype(np.float32)
    genes = [f"G{i}" for i in range(n_genes)]
    rna = ad.AnnData(sp.csr_matrix(counts), var=pd.DataFrame(index=genes))
    rna.obs_names = [f"c{i}" for i in range(n_cells)]
    noise = [np.full(n_cells, 5.0)] * 11  # an isotype control and ten proteins RNA does not inform
    lam = np.stack([np.exp(1.5 + 1.2 * programme[:, 0]), np.exp(1.5 - 1.2 * programme[:, 1]), *noise], axis=1)
    names = ["P1", "P2", "IgG1"] + [f"N{i}" for i in range(10)]
    prot = ad.AnnData(rng.poisson(lam).astype(np.float32), var=pd.DataFrame(index=names))
    prot.obs_names = rna.obs_names
    return md.MuData({mod_names[0]: rna, mod_names[1]: prot})


@pytest.fixture(scope="module")
def trained():
    mdata = _reference()
    ProteinTranslator.setup_mudata(mdata)
    torch.manual_seed(0)
    model = ProteinTranslator(mdata, n_genes=200, n_hidden=32)
    model.train(max_epochs=40, n_folds=3, enable_progress_bar=False)
    return mdata, model


def test_translator_learns_proteins_that_rna_predicts_and_flags_isotypes(trained):
    _mdata, model = trained
    summary = model.reliability_summary()
    assert summary.loc["P1", "reliability"] > 0.8
    assert summary.loc["P2", "reliability"] > 0.8
    assert summary.loc["IgG1", "reliability"] == 0.0  # an isotype control carries no specific signal
    assert bool(summary.loc["IgG1", "is_isotype"])
    assert not summary.loc["P1", "is_isotype"]
    assert set(summary["predictor"]) <= {"linear", "mean", "network"}
    non_isotype = summary.loc[~summary["is_isotype"], "reliability"]
    assert summary.attrs["median"] == pytest.approx(np.median(non_isotype))
    assert np.all((model.reliability_ >= 0) & (model.reliability_ <= 1))
    fresh = _reference(n_cells=200, seed=1)
    predicted = model.predict(fresh["rna"])
    measured = clr(fresh["prot"].X)
    assert list(predicted.columns[:3]) == ["P1", "P2", "IgG1"]
    assert list(predicted.index) == list(fresh["rna"].obs_names)
    assert np.corrcoef(predicted["P1"], measured[:, 0])[0, 1] > 0.8


def test_reliability_is_close_to_the_correlation_on_new_cells(trained):
    """The cross-validated reliability promises what new cells deliver, protein by protein."""
    _, model = trained
    fresh = _reference(n_cells=1000, seed=7)
    predicted = model.predict(fresh["rna"]).to_numpy()
    measured = clr(fresh["prot"].X)
    heldout = np.clip([np.corrcoef(predicted[:, k], measured[:, k])[0, 1] for k in range(13)], 0, None)
    proteins = ~model.is_isotype_
    gap = model.reliability_[proteins] - heldout[proteins]
    assert np.abs(gap[:2]).max() < 0.05, gap  # P1, P2: strong signals, estimated closely
    assert np.abs(gap).max() < 0.25, gap  # weak signals: ~130 held-out cells per fold give noisy estimates
    assert -0.1 < gap.mean() < 0.03  # no systematic over-statement
    assert np.corrcoef(model.reliability_[proteins], heldout[proteins])[0, 1] > 0.8


def test_choice_and_cv_correlations_are_recorded(trained):
    _, model = trained
    assert list(model.cv_pearson_.columns) == ["linear", "mean", "network"]
    assert list(model.cv_pearson_.index) == model.protein_names_
    for protein, predictor in zip(model.protein_names_, model.predictor_, strict=True):
        row = model.cv_pearson_.loc[protein]
        assert row[predictor] == pytest.approx(row.max())  # the best candidate on held-out cells
    proteins = ~model.is_isotype_
    chosen = model.cv_pearson_.to_numpy()[
        np.arange(13), [["linear", "mean", "network"].index(p) for p in model.predictor_]
    ]
    np.testing.assert_allclose(model.reliability_[proteins], np.clip(chosen[proteins], 0, 1))
    share = model.module.network_share.numpy()
    np.testing.assert_array_equal(share, [{"linear": 0, "mean": 0.5, "network": 1}[p] for p in model.predictor_])


def test_log1p_query_gives_the_same_answer_as_counts(trained):
    _, model = trained
    query = _reference(n_cells=50, seed=2)["rna"]
    logged = query.copy()
    X = logged.X.toarray()
    logged.X = np.log1p(X / X.sum(1, keepdims=True) * 1e4)
    np.testing.assert_allclose(model.predict(query).to_numpy(), model.predict(logged).to_numpy(), atol=1e-4)


def test_save_and_load_without_the_reference_reproduce_predictions(trained, tmp_path):
    _, model = trained
    model.save(tmp_path / "translator", overwrite=True)
    loaded = ProteinTranslator.load(tmp_path / "translator")
    query = _reference(n_cells=40, seed=3)["rna"]
    np.testing.assert_allclose(loaded.predict(query).to_numpy(), model.predict(query).to_numpy(), atol=1e-5)
    np.testing.assert_array_equal(loaded.reliability_, model.reliability_)
    np.testing.assert_array_equal(loaded.predictor_, model.predictor_)
    pd.testing.assert_frame_equal(loaded.cv_pearson_, model.cv_pearson_)
    np.testing.assert_array_equal(loaded.component_variance_, model.component_variance_)
    for name in ("projection", "gene_mean", "linear_weight", "linear_bias", "network_share"):
        np.testing.assert_array_equal(getattr(loaded.module, name).numpy(), getattr(model.module, name).numpy())
    assert float(loaded.module.linear_weight.abs().sum()) > 0  # the ridge coefficients travelled


def test_a_translator_file_of_the_old_state_is_refused(trained, tmp_path):
    import hashlib
    import json

    from sxdiff.model._safe_io import ModelFileError

    _, model = trained
    path = tmp_path / "old"
    model.save(path)
    attributes = json.loads((path / "attributes.json").read_text())
    del attributes["translator_version_"]  # as written before the state had a linear map
    (path / "attributes.json").write_text(json.dumps(attributes))
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["sha256"]["attributes.json"] = hashlib.sha256((path / "attributes.json").read_bytes()).hexdigest()
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="retrain the translator"):
        ProteinTranslator.load(path)


def test_linear_predictor_recovers_a_linear_protein_signal_without_training_a_network():
    """CLR of P1 is linear in the cells' programme: the ridge map on components recovers it."""
    mdata = _reference(n_cells=300, seed=11)
    ProteinTranslator.setup_mudata(mdata)
    model = ProteinTranslator(mdata, n_genes=200)
    model.train(predictor="linear", n_folds=5)
    assert set(model.predictor_) == {"linear"}
    assert not model.module.network_share.any()
    assert model.cv_pearson_[["mean", "network"]].isna().all().all()
    assert model.reliability_[0] > 0.85
    assert model.reliability_[1] > 0.85
    assert np.all(np.isfinite(model.ridge_alpha_))
    assert np.all(model.ridge_alpha_ > 0)
    fresh = _reference(n_cells=300, seed=12)
    predicted = model.predict(fresh["rna"])
    measured = clr(fresh["prot"].X)
    for k in (0, 1):
        heldout = np.corrcoef(predicted.iloc[:, k], measured[:, k])[0, 1]
        assert heldout > 0.85
        assert abs(heldout - model.reliability_[k]) < 0.05


def test_train_refuses_unknown_predictor_and_too_few_cells():
    mdata = _reference(n_cells=30)
    ProteinTranslator.setup_mudata(mdata)
    model = ProteinTranslator(mdata, n_genes=50)
    with pytest.raises(ValueError, match="Unknown predictor"):
        model.train(predictor="forest")
    with pytest.raises(ValueError, match="n_folds=20 with 30 reference cells"):
        model.train(n_folds=20)


def test_ridge_fit_recovers_coefficients_and_shrinks_noise():
    from sxdiff.model._translator_linear import ridge_fit

    rng = np.random.default_rng(0)
    design = rng.normal(size=(500, 5))
    truth = np.array([1.0, -2.0, 0.0, 0.5, 0.0])
    targets = np.stack([design @ truth + 3 + 0.1 * rng.normal(size=500), rng.normal(size=500)], axis=1)
    weight, bias, alpha = ridge_fit(design, targets)
    np.testing.assert_allclose(weight[:, 0], truth, atol=0.03)
    assert bias[0] == pytest.approx(3, abs=0.03)
    assert alpha[1] > 10 * alpha[0]  # pure noise: the leave-one-out error asks for strong shrinkage
    assert np.abs(weight[:, 1]).max() < 0.05


def test_principal_components_match_svd_and_pad_when_cells_are_few():
    from sxdiff.model._translator_linear import principal_components

    rng = np.random.default_rng(0)
    values = rng.normal(size=(50, 8)) @ rng.normal(size=(8, 20))
    mean, components, variance = principal_components(sp.csr_matrix(values), 5)
    centred = values - values.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(variance, s[:5] ** 2 / 50, rtol=1e-6)
    np.testing.assert_allclose(np.abs(components.T @ vt[:5].T), np.eye(5), atol=1e-6)
    np.testing.assert_allclose(mean, values.mean(axis=0))
    _, few, few_variance = principal_components(values[:4], 6)  # 4 cells: 3 components, then zero columns
    assert few.shape == (20, 6)
    assert not few[:, 3:].any()
    assert not few_variance[3:].any()


def test_query_with_too_few_genes_is_refused(trained, caplog):
    _, model = trained
    query = _reference(n_cells=10, seed=4)["rna"]
    query = query[:, : int(0.3 * query.n_vars)].copy()
    with pytest.raises(ValueError, match=r"shares only .* at least 50% needed"):
        model.predict(query)


def test_reference_without_protein_modality():
    mdata = md.MuData({"rna": _reference()["rna"]})
    with pytest.raises(KeyError, match="has no 'prot' modality"):
        ProteinTranslator.setup_mudata(mdata)


def test_reference_with_nan_or_all_zero_protein():
    mdata = _reference(n_cells=50)
    mdata["prot"].X[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ProteinTranslator.setup_mudata(mdata)
    zero = _reference(n_cells=50)
    zero["prot"].X[:] = 0
    with pytest.raises(ValueError, match="zero in every cell for every protein"):
        ProteinTranslator.setup_mudata(zero)


def test_one_silent_protein_is_a_warning(caplog):
    mdata = _reference(n_cells=50)
    mdata["prot"].X[:, 2] = 0  # IgG1
    ProteinTranslator.setup_mudata(mdata)
    assert "IgG1" in caplog.text
    assert "reliability is 0" in caplog.text


def test_setup_anndata_explains_the_mudata_path():
    with pytest.raises(TypeError, match="setup_mudata"):
        ProteinTranslator.setup_anndata(_reference()["rna"])


def test_protein_context_with_translator_writes_obsm_and_uns(trained):
    _, model = trained
    adata = _reference(n_cells=30, seed=5)["rna"]
    sxdiff.pp.protein_context(adata, translator=model)
    assert adata.obsm["sxdiff_protein"].shape == (30, 12)  # the isotype control is not protein context
    assert adata.uns["sxdiff_protein"]["names"][:3] == ["P1", "P2", "N0"]
    keep = ~model.is_isotype_
    np.testing.assert_array_equal(adata.uns["sxdiff_protein"]["reliability"], model.reliability_[keep])
    np.testing.assert_allclose(adata.obsm["sxdiff_protein"], model.predict(adata).to_numpy()[:, keep], atol=1e-6)
    assert adata.uns["sxdiff_protein"]["source"] == "translator"


def test_protein_context_on_mudata_adds_a_modality(trained):
    _, model = trained
    mdata = md.MuData({"rna": _reference(n_cells=30, seed=6)["rna"]})
    sxdiff.pp.protein_context(mdata, translator=model, key_added="prot_estimate")
    assert mdata["prot_estimate"].shape == (30, 12)
    assert "IgG1" not in mdata["prot_estimate"].var_names
    assert list(mdata["prot_estimate"].var["reliability"]) == list(model.reliability_[~model.is_isotype_])
    with_measured = _reference(n_cells=30)
    with pytest.raises(ValueError, match="already has a measured 'prot' modality"):
        sxdiff.pp.protein_context(with_measured, translator=model)


def test_training_is_reproducible_whatever_drew_random_numbers_before():
    reliabilities = []
    for draws_before in (0, 1000):
        mdata = _reference()
        ProteinTranslator.setup_mudata(mdata)
        torch.manual_seed(0)
        model = ProteinTranslator(mdata, n_genes=200, n_hidden=32)
        torch.rand(draws_before)  # e.g. another model trained in between, in a notebook
        model.train(max_epochs=5, n_folds=2, enable_progress_bar=False, seed=0)
        reliabilities.append(model.reliability_)
    np.testing.assert_array_equal(reliabilities[0], reliabilities[1])


def test_seeded_split_refuses_sizes_that_do_not_fit():
    from sxdiff.model._translator_reference import _split_indices

    train, validation, test = _split_indices(100, 0.85, 0.15, seed=0)
    assert (len(train), len(validation), len(test)) == (85, 15, 0)
    assert sorted(np.concatenate([train, validation]).tolist()) == list(range(100))
    with pytest.raises(ValueError, match="train_size"):
        _split_indices(100, 0.9, 0.2, seed=0)


def test_knowledge_proxy_never_passes_on_isotype_controls():
    adata = _reference(n_cells=50)["rna"]
    values, reliability = sxdiff.pp.knowledge_proxy(
        adata, ["G1", "Mouse IgG2a isotype"], protein_genes={"G1": ["G1"], "Mouse IgG2a isotype": ["G2"]}
    )
    assert list(values.columns) == ["G1"]
    assert list(reliability.index) == ["G1"]


def test_the_network_is_chosen_where_it_wins_on_held_out_cells():
    """NONLIN falls with |programme 2|, which no linear map of the components can follow; LIN is linear."""
    loadings = np.random.default_rng(0).normal(size=(2, 60)) * 0.8
    rng = np.random.default_rng(1)
    programme = rng.normal(size=(300, 2))
    rna = ad.AnnData(
        sp.csr_matrix(rng.poisson(np.exp(programme @ loadings + 1.0)).astype(np.float32)),
        var=pd.DataFrame(index=[f"G{i}" for i in range(60)]),
    )
    lam = np.stack(
        [np.exp(1.5 + 1.2 * programme[:, 0]), np.exp(3 - 1.5 * np.abs(programme[:, 1])), np.full(300, 20.0)], axis=1
    )
    prot = ad.AnnData(rng.poisson(lam).astype(np.float32), var=pd.DataFrame(index=["LIN", "NONLIN", "OTHER"]))
    rna.obs_names = prot.obs_names = [f"c{i}" for i in range(300)]
    mdata = md.MuData({"rna": rna, "prot": prot})
    ProteinTranslator.setup_mudata(mdata)
    torch.manual_seed(0)
    model = ProteinTranslator(mdata, n_components=8, n_hidden=32)
    model.train(max_epochs=60, n_folds=3, lr=1e-2, weight_decay=1e-3, batch_size=512, enable_progress_bar=False)
    cv = model.cv_pearson_
    assert model.predictor_[1] in ("network", "mean")
    assert cv.loc["NONLIN", "network"] > cv.loc["NONLIN", "linear"] + 0.05
    assert model.reliability_[1] == pytest.approx(cv.loc["NONLIN"].max())
    assert model.reliability_[0] > 0.8
    assert model.module.network_share[1] > 0
