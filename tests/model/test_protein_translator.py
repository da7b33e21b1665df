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
    torch.manual_seed(0)  # initial weights: without it the isotype's reliability varies around the 0.3 bar
    model = ProteinTranslator(mdata, n_genes=200, n_hidden=32)
    model.train(max_epochs=60, enable_progress_bar=False)
    return mdata, model


def test_translator_learns_proteins_that_rna_predicts_and_flags_isotypes(trained):
    _mdata, model = trained
    summary = model.reliability_summary()
    assert summary.loc["P1", "reliability"] > 0.6
    assert summary.loc["P2", "reliability"] > 0.6
    assert summary.loc["IgG1", "reliability"] < 0.3
    assert bool(summary.loc["IgG1", "is_isotype"])
    assert not summary.loc["P1", "is_isotype"]
    non_isotype = summary.loc[~summary["is_isotype"], "reliability"]
    assert summary.attrs["median"] == pytest.approx(np.median(non_isotype))
    assert np.all((model.reliability_ >= 0) & (model.reliability_ <= 1))
    fresh = _reference(n_cells=200, seed=1)
    predicted = model.predict(fresh["rna"])
    measured = clr(fresh["prot"].X)
    assert list(predicted.columns[:3]) == ["P1", "P2", "IgG1"]
    assert list(predicted.index) == list(fresh["rna"].obs_names)
    assert np.corrcoef(predicted["P1"], measured[:, 0])[0, 1] > 0.6


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
    np.testing.assert_allclose(loaded.predict(query).to_numpy(), model.predict(query).to_numpy(), atol=1e-6)
    np.testing.assert_array_equal(loaded.reliability_, model.reliability_)


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
    assert adata.obsm["sxdiff_protein"].shape == (30, 13)
    assert adata.uns["sxdiff_protein"]["names"][:3] == ["P1", "P2", "IgG1"]
    np.testing.assert_array_equal(adata.uns["sxdiff_protein"]["reliability"], model.reliability_)
    assert adata.uns["sxdiff_protein"]["source"] == "translator"


def test_protein_context_on_mudata_adds_a_modality(trained):
    _, model = trained
    mdata = md.MuData({"rna": _reference(n_cells=30, seed=6)["rna"]})
    sxdiff.pp.protein_context(mdata, translator=model, key_added="prot_estimate")
    assert mdata["prot_estimate"].shape == (30, 13)
    assert list(mdata["prot_estimate"].var["reliability"]) == list(model.reliability_)
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
        model.train(max_epochs=5, enable_progress_bar=False, seed=0)
        reliabilities.append(model.reliability_)
    np.testing.assert_array_equal(reliabilities[0], reliabilities[1])


def test_seeded_split_refuses_sizes_that_do_not_fit():
    from sxdiff.model._protein_translator import _split_indices

    train, validation, test = _split_indices(100, 0.85, 0.15, seed=0)
    assert (len(train), len(validation), len(test)) == (85, 15, 0)
    assert sorted(np.concatenate([train, validation]).tolist()) == list(range(100))
    with pytest.raises(ValueError, match="train_size"):
        _split_indices(100, 0.9, 0.2, seed=0)
