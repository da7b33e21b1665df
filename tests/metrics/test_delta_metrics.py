import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from sxdiff.metrics import evaluate, mean_deltas, mse_delta, pearson_delta, top_deg_indices


def test_pearson_delta_matches_numpy_on_random_data():
    rng = np.random.default_rng(0)
    control, true, pred = rng.normal(size=(3, 200))
    expected = np.corrcoef(pred - control, true - control)[0, 1]
    assert pearson_delta(pred, true, control) == pytest.approx(expected)


def test_pearson_delta_top_k_uses_largest_true_changes():
    control = np.zeros(6)
    true = np.array([5.0, -4.0, 0.1, 0.0, 0.2, 3.0])
    pred = np.array([4.0, -3.0, 9.0, -9.0, 9.0, 2.0])  # wrong only on genes with tiny true change
    np.testing.assert_array_equal(top_deg_indices(true, 3), [0, 1, 5])
    assert pearson_delta(pred, true, control, top_k=3) > 0.99
    assert pearson_delta(pred, true, control) < 0.5


def test_constant_prediction_scores_zero_and_constant_truth_nan():
    control = np.ones(5)
    assert pearson_delta(control.copy(), np.arange(5.0), control) == 0.0
    assert np.isnan(pearson_delta(np.arange(5.0), control.copy(), control))


def test_mse_delta():
    assert mse_delta(np.array([1.0, 3.0]), np.array([1.0, 1.0]), np.array([0.0, 0.0])) == pytest.approx(2.0)


def _cells(values, perturbation, context, prefix):
    values = np.atleast_2d(np.asarray(values, dtype=float))
    obs = pd.DataFrame(
        {"perturbation": perturbation, "context": context}, index=[f"{prefix}{i}" for i in range(values.shape[0])]
    )
    return ad.AnnData(values, obs=obs)


def test_evaluate_per_context_against_that_contexts_controls():
    genes = 4
    ctrl = ad.concat(
        [_cells(np.zeros((2, genes)), "control", "a", "ca"), _cells(np.full((2, genes), 10.0), "control", "b", "cb")]
    )
    true = ad.concat(
        [_cells([[1.0, 2.0, 3.0, 4.0]] * 3, "A", "a", "ta"), _cells([[14.0, 13.0, 12.0, 11.0]] * 3, "A", "b", "tb")]
    )
    pred = ad.concat(
        [_cells([[2.0, 4.0, 6.0, 8.0]], "A", "a", "pa"), _cells([[14.0, 13.0, 12.0, 11.0]], "A", "b", "pb")]
    )
    table = evaluate(pred, true, ctrl, context_key="context", top_k=(2,))
    wide = table.pivot_table(index="context", columns="metric", values="value")
    assert wide.loc["a", "pearson_delta"] == pytest.approx(1.0)
    assert wide.loc["b", "pearson_delta"] == pytest.approx(1.0)
    assert wide.loc["a", "mse_delta"] == pytest.approx(np.mean(np.array([1.0, 2.0, 3.0, 4.0]) ** 2))
    assert wide.loc["b", "mse_delta"] == pytest.approx(0.0)
    assert set(table.columns) == {"context", "condition", "metric", "value", "n_true_cells"}
    assert set(table["n_true_cells"]) == {3}


def test_evaluate_refuses_mismatched_genes():
    a = _cells(np.zeros((1, 3)), "A", "a", "x")
    b = a[:, [2, 1, 0]].copy()
    with pytest.raises(ValueError, match="different genes"):
        evaluate(b, a, a)


def test_evaluate_refuses_no_shared_condition():
    a = _cells(np.zeros((1, 3)), "A", "a", "x")
    b = _cells(np.zeros((1, 3)), "B", "a", "y")
    with pytest.raises(ValueError, match="No \\(context, condition\\)"):
        evaluate(b, a, a)


def test_mean_deltas_read_the_layer_of_sparse_cells_and_feed_the_delta_metrics():
    rng = np.random.default_rng(1)
    cells = [rng.poisson(2.0, size=(n, 8)).astype(float) for n in (5, 7, 9)]
    pred, true, control = (ad.AnnData(np.zeros_like(c), layers={"counts": sp.csr_matrix(c)}) for c in cells)
    pred_delta, true_delta = mean_deltas(pred, true, control, layer="counts")
    means = [c.mean(axis=0) for c in cells]
    np.testing.assert_allclose(pred_delta, means[0] - means[2])
    np.testing.assert_allclose(true_delta, means[1] - means[2])
    assert np.corrcoef(pred_delta, true_delta)[0, 1] == pytest.approx(pearson_delta(*means))
