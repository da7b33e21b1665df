import anndata as ad
import numpy as np
import pandas as pd
import pytest

import sxdiff
from tests.conftest import assert_adata_unchanged


def _cells(n=300, seed=0):
    """Genes A, B, C form an active complex (co-vary); D and E are independent noise genes."""
    rng = np.random.default_rng(seed)
    activity = rng.normal(size=n)
    rates = np.stack(
        [
            np.exp(1.5 + activity),
            np.exp(1.5 + activity),
            np.exp(1.5 + activity),
            np.full(n, np.exp(1.5)),
            np.full(n, np.exp(1.5)),
        ],
        axis=1,
    )
    background = rng.poisson(5, size=(n, 40))
    counts = np.hstack([rng.poisson(rates), background]).astype(np.float32)
    var = pd.DataFrame(index=["A", "B", "C", "D", "E"] + [f"bg{i}" for i in range(40)])
    return ad.AnnData(counts, var=var), activity


def test_coherent_complex_is_reliable_and_tracks_activity():
    adata, activity = _cells()
    values, reliability = sxdiff.pp.knowledge_proxy(
        adata, complexes={"active": ["A", "B", "C"], "noise": ["D", "E"], "absent": ["X", "Y"]}, n_neighbors=10
    )
    assert list(values.columns) == ["active", "noise"]
    assert reliability["active"] > 0.5 > reliability["noise"]
    assert np.corrcoef(values["active"], activity)[0, 1] > 0.8


def test_protein_proxy_uses_coding_genes():
    adata, activity = _cells()
    values, reliability = sxdiff.pp.knowledge_proxy(adata, ["A", "ZZZ"], protein_genes={"A": ["A", "B"]})
    assert list(values.columns) == ["A"]
    assert 0 <= reliability["A"] <= 1
    assert np.corrcoef(values["A"], activity)[0, 1] > 0.7


def test_protein_context_refuses_without_features_and_leaves_data_unchanged():
    adata, _ = _cells()
    before = adata.copy()
    with pytest.raises(ValueError, match="None of the proteins"):
        sxdiff.pp.protein_context(adata, proteins=["NOT_A_GENE"])
    assert_adata_unchanged(before, adata)
    with pytest.raises(ValueError, match="needs a trained"):
        sxdiff.pp.protein_context(adata, method="translator")
    with pytest.raises(ValueError, match="Give `proteins`"):
        sxdiff.pp.knowledge_proxy(adata)


def test_protein_context_knowledge_copy():
    adata, _ = _cells()
    out = sxdiff.pp.protein_context(adata, complexes={"active": ["A", "B", "C"]}, copy=True)
    assert "sxdiff_protein" not in adata.obsm
    assert out.obsm["sxdiff_protein"].shape == (300, 1)
    assert out.uns["sxdiff_protein"]["source"] == "knowledge"


def _states(n=600, seed=0):
    """40 genes follow three cell-state programmes (Poisson counts); 40 are Poisson noise with a constant share
    of the cell's transcripts (so that normalising by library size leaves them pure noise).
    """
    rng = np.random.default_rng(seed)
    programmes = rng.normal(size=(n, 3))
    rates = np.exp(1.5 + programmes @ rng.normal(size=(3, 40)) * 0.5)
    size = rates.sum(axis=1, keepdims=True) / rates.sum(axis=1).mean()
    noise = rng.poisson(np.exp(1.5) * size * np.ones((n, 40)))
    var = pd.DataFrame(index=[f"S{i}" for i in range(40)] + [f"N{i}" for i in range(40)])
    return ad.AnnData(np.hstack([rng.poisson(rates), noise]).astype(np.float32), var=var)


@pytest.mark.parametrize("seed", [0, 1])
def test_protein_reliability_is_held_out_noise_near_zero_structure_high(seed):
    """Smoothed noise looks smooth (the old raw-vs-smoothed correlation gave noise genes about 0.8), but the
    neighbours (the cell itself left out, found without the gene) do not predict it; a state-following gene is.
    """
    adata = _states(seed=seed)
    noise = [f"N{i}" for i in range(10)]
    proteins = ["S0", *noise, "Mouse IgG1 isotype"]
    values, reliability = sxdiff.pp.knowledge_proxy(
        adata, proteins, protein_genes={"Mouse IgG1 isotype": ["S2"]}, n_neighbors=15
    )
    assert list(reliability.index) == ["S0", *noise]  # the isotype control is never protein context
    assert "Mouse IgG1 isotype" not in values.columns
    assert reliability["N0"] < 0.1
    assert reliability[noise].mean() < 0.05
    assert reliability[noise].max() < 0.15
    assert reliability["S0"] > 0.5


def test_protein_reliability_on_a_subset_of_cells_for_large_data(monkeypatch):
    monkeypatch.setattr("sxdiff.pp._protein_context._MAX_RELIABILITY_CELLS", 300)
    _, reliability = sxdiff.pp.knowledge_proxy(_states(), ["S0", "N0"])
    assert reliability["N0"] < 0.1
    assert reliability["S0"] > 0.5
