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
