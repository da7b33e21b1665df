"""The challenge's perturbed-mean baseline and the linear gene-embedding model, on data with known answers."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from sxdiff.model import LinearEmbeddingBaseline, PerturbedMeanBaseline


def _noise_free(effects: dict[str, np.ndarray], n_cells: dict[str, int] | None = None, base: float = 5.0) -> ad.AnnData:
    """Control cells at ``base`` and, per label, identical cells at ``base + effect``."""
    n_genes = len(next(iter(effects.values())))
    labels, rows = ["control"] * 3, [np.full(n_genes, base)] * 3
    for label, effect in effects.items():
        n = (n_cells or {}).get(label, 2)
        labels += [label] * n
        rows += [base + effect] * n
    obs = pd.DataFrame({"perturbation": labels, "context": "c"}, index=[f"cell{i}" for i in range(len(labels))])
    return ad.AnnData(np.vstack(rows), obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]))


def _predicted_delta(model, adata, label: str) -> np.ndarray:
    sources = adata[(adata.obs["perturbation"] == "control").to_numpy()]
    pred = model.predict(sources, [label])
    return np.asarray(pred.X[0] - sources.X[0], dtype=float)


def test_perturbed_mean_averages_conditions_not_cells():
    effects = {"A": np.array([1.0, 0.0, 0.0]), "B": np.array([0.0, 3.0, 0.0])}
    adata = _noise_free(effects, n_cells={"A": 10, "B": 30})
    model = PerturbedMeanBaseline(context_key="context").fit(adata)
    for label in ("A", "B", "never_seen"):  # one answer for every condition
        np.testing.assert_allclose(_predicted_delta(model, adata, label), [0.5, 1.5, 0.0], atol=1e-5)


def test_linear_gene_embedding_recovers_an_unseen_perturbation_of_a_low_rank_model():
    """Y = G S G[targets]ᵀ with the training targets' rows summing to zero: the held-out gene is exact."""
    rng = np.random.default_rng(0)
    n_genes = 12
    embedding = rng.normal(size=(n_genes, 2))
    train = [0, 1, 2, 3, 4, 5]
    embedding[train[-1]] = -embedding[train[:-1]].sum(axis=0)  # training rows sum to zero: no intercept
    S = np.diag([2.0, 0.5])
    effect = {g: 0.2 * embedding @ S @ embedding[g] for g in range(n_genes)}
    adata = _noise_free({f"g{g}": effect[g] for g in train})
    model = LinearEmbeddingBaseline(context_key="context", ridge=1e-9).fit(adata)
    assert model.embedding_ == "gene"
    assert model.gene_embedding_.shape == (n_genes, 2)
    np.testing.assert_allclose(_predicted_delta(model, adata, "g9"), effect[9], atol=1e-4)
    np.testing.assert_allclose(_predicted_delta(model, adata, "g2"), effect[2], atol=1e-4)
    default = LinearEmbeddingBaseline(context_key="context").fit(adata)  # the paper's ridge 0.1 shrinks a little
    assert np.corrcoef(_predicted_delta(default, adata, "g9"), effect[9])[0, 1] > 0.99


def test_linear_training_embedding_learns_how_pairs_depart_from_additivity():
    """Every training pair is half the sum of its singles: an unseen pair of seen singles is predicted so."""
    rng = np.random.default_rng(1)
    basis = rng.normal(size=(30, 2))
    singles = {name: basis @ rng.normal(size=2) for name in "ABCDEF"}
    pairs = {f"{a}+{b}": 0.5 * (singles[a] + singles[b]) for a, b in ["AB", "CD", "AE", "BF", "DE"]}
    adata = _noise_free({**singles, **pairs})
    model = LinearEmbeddingBaseline(context_key="context", ridge=1e-9).fit(adata)
    assert model.embedding_ == "training"
    np.testing.assert_allclose(_predicted_delta(model, adata, "C+F"), 0.5 * (singles["C"] + singles["F"]), atol=1e-4)
    np.testing.assert_allclose(_predicted_delta(model, adata, "A"), singles["A"], atol=1e-4)  # singles: measured


def test_linear_embedding_without_training_pairs_is_the_mean_shift():
    singles = {name: np.random.default_rng(2).normal(size=8) for name in "AB"}
    adata = _noise_free(singles)
    model = LinearEmbeddingBaseline(context_key="context").fit(adata)
    assert model.weights_ is None
    np.testing.assert_allclose(_predicted_delta(model, adata, "A"), singles["A"], atol=1e-5)
    with pytest.raises(ValueError, match="embedding must be"):
        LinearEmbeddingBaseline(embedding="pca")
