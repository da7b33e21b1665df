import numpy as np
import pandas as pd
import pytest

from sxdiff.datasets.synthetic import expected_log_mean, perturbation_data
from sxdiff.metrics import pearson_delta
from sxdiff.model import ControlBaseline, MeanShiftBaseline


@pytest.fixture(scope="module")
def logged():
    adata = perturbation_data(
        n_genes=80, n_contexts=3, n_drugs=4, n_combinations=1, n_cells_per_condition=100, n_control_cells=200, seed=2
    )
    X = adata.X.toarray()
    adata.X = np.log1p(X / X.sum(1, keepdims=True) * 1e4)
    adata.obs["dose"] = adata.obs["dose"].astype(str)
    return adata


def test_mean_shift_recovers_a_seen_drug_in_an_unseen_context(logged):
    train = logged[logged.obs["context"].astype(str) != "context_2"]
    target = logged[logged.obs["context"].astype(str) == "context_2"]
    model = MeanShiftBaseline(dose_key="dose", context_key="context").fit(train)
    sources = target[target.obs["is_control"].to_numpy()]
    pred = model.predict(sources, pd.DataFrame({"perturbation": ["drug_1"], "dose": ["10.0"]}))
    assert pred.n_obs == sources.n_obs
    assert list(pred.obs["source_cell"]) == list(sources.obs_names)
    true = target[(target.obs["perturbation"] == "drug_1").to_numpy() & (target.obs["dose"] == "10.0").to_numpy()]
    score = pearson_delta(pred.X.mean(0), true.X.mean(0), sources.X.mean(0))
    assert score > 0.9
    truth = logged.uns["synthetic_truth"]
    expected = expected_log_mean(truth, "context_2", ["drug_1"], [10.0]) - expected_log_mean(truth, "context_2", [], [])
    assert np.corrcoef(pred.X.mean(0) - sources.X.mean(0), expected)[0, 1] > 0.8


def test_mean_shift_falls_back_to_same_dose_for_unseen_drug(logged):
    train = logged[logged.obs["perturbation"].astype(str) != "drug_0"]
    model = MeanShiftBaseline(dose_key="dose", context_key="context").fit(train)
    sources = logged[logged.obs["is_control"].to_numpy()][:5]
    pred = model.predict(sources, pd.DataFrame({"perturbation": ["drug_0"], "dose": ["1.0"]}))
    delta, values = model.dose_deltas_["1"], np.asarray(sources.X)
    # the mean moves by the fallback delta wherever the sources allow it: genes every source expresses, and
    # decreases no larger than the mean; values stay non-negative and zeros stay zeros under a decrease
    everywhere = (values > 0).all(axis=0) | ((delta < 0) & (-delta <= values.mean(axis=0)))
    assert everywhere.sum() >= 10
    change = np.asarray(pred.X).mean(axis=0) - values.mean(axis=0)
    np.testing.assert_allclose(change[everywhere], delta[everywhere], atol=1e-5)
    assert np.asarray(pred.X).min() >= 0
    assert np.all(np.asarray(pred.X)[:, delta < 0][values[:, delta < 0] == 0] == 0)


def test_changes_keep_zeros_and_reach_the_predicted_mean():
    """A gene 0 in every source is not turned into a constant in every cell (DE tests would call it significant
    with an infinite fold change): its increase lands on a few cells at a typical expressed value; a sparse gene's
    increase goes to its expressing cells; means move by exactly the change; z-scores get the change added."""
    rng = np.random.default_rng(0)
    n = 200
    values = np.zeros((n, 4), dtype=np.float32)
    values[:, 1] = rng.gamma(4.0, 0.5, n)  # always expressed
    values[:, 2] = rng.binomial(1, 0.5, n) * rng.gamma(4.0, 0.5, n)  # half the cells
    values[:, 3] = rng.gamma(4.0, 0.5, n)
    model = MeanShiftBaseline()
    model.nonnegative_ = True
    contexts = np.zeros(n)
    change = np.array([0.05, 0.3, 0.3, -0.5])
    out = model._shifted(values, change, contexts)
    np.testing.assert_allclose(out.mean(axis=0) - values.mean(axis=0), change, atol=1e-4)
    assert 1 <= (out[:, 0] > 0).sum() <= 10  # a small increase of a silent gene: a few cells, not all 200
    np.testing.assert_allclose(out[:, 1], values[:, 1] + 0.3, atol=1e-5)
    assert np.all(out[:, 2][values[:, 2] == 0] == 0)
    assert out.min() >= 0
    out = model._shifted(values, np.array([1.5, 0.0, 0.0, 0.0]), contexts)
    np.testing.assert_allclose(out[:, 0].mean(), 1.5, atol=1e-4)  # a large one reaches as many cells as it needs
    assert 20 < (out[:, 0] > 0).sum() < n
    model.nonnegative_ = False
    signed = rng.normal(size=(n, 4)).astype(np.float32)
    np.testing.assert_allclose(model._shifted(signed, np.full(4, -0.7), contexts), signed - 0.7, atol=1e-6)


def test_control_baseline_returns_the_sources(logged):
    sources = logged[logged.obs["is_control"].to_numpy()][:7]
    pred = ControlBaseline(context_key="context").fit(logged).predict(sources, ["drug_1", "drug_2"])
    assert pred.n_obs == 14
    np.testing.assert_array_equal(pred.X[:7], sources.X)
    assert list(pred.obs["perturbation"].unique()) == ["drug_1", "drug_2"]


def test_predict_refuses_non_control_sources_and_unfitted(logged):
    with pytest.raises(RuntimeError, match="not fitted"):
        MeanShiftBaseline().predict(logged, ["drug_1"])
    model = MeanShiftBaseline(dose_key="dose").fit(logged)
    with pytest.raises(ValueError, match="holds non-control cells"):
        model.predict(logged[:300], pd.DataFrame({"perturbation": ["drug_1"], "dose": ["1.0"]}))
    with pytest.raises(KeyError, match="with columns 'perturbation' and 'dose'"):
        model.predict(logged[logged.obs["is_control"].to_numpy()], ["drug_1"])
