"""Distribution distances, R² of means, DEG direction, the split-half ceiling and the null floor."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from sxdiff.metrics import (
    PCASpace,
    ceiling,
    deg_direction_agreement,
    energy_distance,
    evaluate,
    mmd,
    null_floor,
    r2_means,
)


def _cells(n_control=60, n_treated=60, effect=2.0, n_genes=100, seed=0):
    """Controls and treated cells whose first 50 genes rise by ``effect`` (log-like scale)."""
    rng = np.random.default_rng(seed)
    shift = np.zeros(n_genes)
    shift[:50] = effect * np.linspace(0.2, 1.5, 50)
    X = np.vstack([rng.normal(1.0, 0.5, (n_control, n_genes)), rng.normal(1.0, 0.5, (n_treated, n_genes)) + shift])
    labels = ["control"] * n_control + ["A"] * n_treated
    obs = pd.DataFrame({"perturbation": labels}, index=[f"c{i}" for i in range(len(labels))])
    cells = ad.AnnData(X, obs=obs)
    return cells[:n_control].copy(), cells[n_control:].copy()


def test_energy_distance_grows_with_the_shift_and_is_symmetric():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 5))
    near, far = rng.normal(size=(200, 5)) + 0.5, rng.normal(size=(200, 5)) + 3.0
    assert energy_distance(X, X) == pytest.approx(0.0, abs=1e-12)
    assert energy_distance(X, near) < energy_distance(X, far)
    assert energy_distance(X, far) == pytest.approx(energy_distance(far, X))
    # two samples of one distribution are close to 0 relative to a real shift
    assert energy_distance(X, rng.normal(size=(200, 5))) < 0.1 * energy_distance(X, far)


def test_mmd_linear_is_the_squared_distance_of_means_and_rbf_is_bounded():
    rng = np.random.default_rng(2)
    X, Y = rng.normal(size=(50, 4)), rng.normal(size=(70, 4)) + 1.0
    assert mmd(X, Y, kernel="linear") == pytest.approx(np.sum((X.mean(0) - Y.mean(0)) ** 2))
    assert 0.0 < mmd(X, Y, gamma=0.1) <= 2.0
    with pytest.raises(ValueError, match="Unknown kernel"):
        mmd(X, Y, kernel="cosine")


def test_pca_space_keeps_the_main_axis_and_fixes_one_bandwidth():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 10)) * np.r_[5.0, np.full(9, 0.1)]
    space = PCASpace.fit(X, n_comps=3)
    assert abs(space.components[0, 0]) > 0.99
    assert space.gamma > 0
    with pytest.raises(ValueError, match="fitted on 10 genes"):
        space.transform(np.zeros((2, 11)))


def test_r2_and_direction_on_known_values():
    control = np.zeros(4)
    true = np.array([3.0, -2.0, 1.0, 0.5])
    assert r2_means(true, true, control) == 1.0
    assert r2_means(np.full(4, true.mean()), true, control) == pytest.approx(0.0)
    assert deg_direction_agreement(-true, true, control, top_k=4) == 0.0
    assert deg_direction_agreement(true * 0.1, true, control, top_k=2) == 1.0
    assert deg_direction_agreement(control, true, control, top_k=4) == 0.0


def test_evaluate_ranks_a_good_prediction_above_no_change_on_every_metric():
    control, truth = _cells()
    good = _cells(seed=5)[1]
    evaluation = {}
    for name, pred in {"good": good, "no_change": control.copy()}.items():
        pred.obs["perturbation"] = "A"
        table = evaluate(pred, truth, control, pca_reference=ad.concat([control, truth]))
        evaluation[name] = table.set_index("metric")["value"]
    good, none = evaluation["good"], evaluation["no_change"]
    assert set(good.index) >= {"pearson_delta_top50", "r2_mean_top50", "deg_direction_top50", "energy_distance", "mmd"}
    for metric in ("pearson_delta", "pearson_delta_top20", "r2_mean", "deg_direction_top50"):
        assert good[metric] > none[metric] + 0.3, metric
    for metric in ("mse_delta", "energy_distance", "mmd"):
        assert good[metric] < 0.5 * none[metric], metric


def test_ceiling_is_near_perfect_for_a_strong_effect_and_low_for_noise():
    control, truth = _cells(effect=2.0)
    strong = ceiling(truth, control, n_repeats=3).set_index("metric")["value"]
    assert strong["pearson_delta_top20"] > 0.5
    assert strong["deg_direction_top50"] > 0.9
    assert strong["energy_distance"] < 0.5
    control, truth = _cells(effect=0.0)
    weak = ceiling(truth, control, n_repeats=3, distances=False).set_index("metric")["value"]
    assert weak["pearson_delta_top20"] < strong["pearson_delta_top20"] - 0.3


def test_ceiling_averages_over_random_halves_deterministically():
    control, truth = _cells()
    a = ceiling(truth, control, n_repeats=4, seed=7, distances=False)
    b = ceiling(truth, control, n_repeats=4, seed=7, distances=False)
    pd.testing.assert_frame_equal(a, b)
    c = ceiling(truth, control, n_repeats=4, seed=8, distances=False)
    assert not np.allclose(a["value"], c["value"])
    with pytest.raises(ValueError, match="n_repeats"):
        ceiling(truth, control, n_repeats=0)


def test_null_floor_is_positive_for_pearson_and_below_the_ceiling():
    control, truth = _cells(n_control=150)
    floor = null_floor(control, n_repeats=5, distances=False).set_index("metric")["value"]
    top = ceiling(truth, control, n_repeats=3, distances=False).set_index("metric")["value"]
    # shared control noise makes the Pearson of deltas of unrelated "predictions" positive
    assert 0.2 < floor["pearson_delta"] < 0.8
    assert floor["pearson_delta_top20"] < top["pearson_delta_top20"]
    with pytest.raises(ValueError, match="at least 3 control cells"):
        null_floor(control[:2])


def test_pca_space_with_many_genes_matches_the_exact_axes():
    rng = np.random.default_rng(4)
    signal = rng.normal(size=(400, 3)) * [6.0, 4.0, 2.0]
    X = signal @ rng.normal(size=(3, 2500)) / 10 + rng.normal(0, 0.1, (400, 2500))
    space = PCASpace.fit(X, n_comps=3)
    exact = np.linalg.svd(X - X.mean(0), full_matrices=False)[2][:3]
    overlap = np.abs(np.sum(space.components * exact, axis=1))
    assert (overlap > 0.99).all()
