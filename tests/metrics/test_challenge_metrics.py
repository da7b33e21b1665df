"""cell-eval / Virtual Cell Challenge metrics, perturbation-centred Pearson and the sized null floor.

The cross-checks run cell-eval's own functions (DE through pdex, as cell-eval does) on the same inputs.
"""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from sxdiff.metrics import (
    de_overlap,
    differential_expression,
    discrimination_scores,
    evaluate,
    null_floor,
    pearson_delta,
)

N_GENES = 40


def _cells(label, n, shift, seed):
    rng = np.random.default_rng(seed)
    X = np.log1p(rng.poisson(np.exp(0.5 + shift), size=(n, N_GENES)).astype(float))
    obs = pd.DataFrame({"perturbation": [label] * n}, index=[f"{label}{seed}_{i}" for i in range(n)])
    return ad.AnnData(X, obs=obs)


@pytest.fixture(scope="module")
def pair():
    """Real and predicted cells of four perturbations; D's prediction is C's effect (a confusion)."""
    rng = np.random.default_rng(0)
    effects = {p: rng.normal(0, 0.8, N_GENES) * (rng.random(N_GENES) < 0.3) for p in "ABCD"}
    control = _cells("control", 60, 0.0, 1)
    real = ad.concat([control, *[_cells(p, 50, effects[p], i + 2) for i, p in enumerate("ABCD")]])
    guesses = {p: 0.7 * effects[p] + rng.normal(0, 0.2, N_GENES) * (rng.random(N_GENES) < 0.2) for p in "ABC"}
    guesses["D"] = effects["C"]
    predicted = ad.concat([_cells(p, 50, guesses[p], i + 12) for i, p in enumerate("ABCD")])
    genes = [f"g{i}" for i in range(N_GENES)]
    genes[3] = "A"  # a genetic perturbation's target gene among the measured genes
    for adata in (real, predicted, control):
        adata.var_names = genes
    return real, predicted, control


@pytest.fixture(scope="module")
def cell_eval_pair(pair):
    types = pytest.importorskip("cell_eval._types")
    real, predicted, control = pair
    return types.PerturbationAnndataPair(
        real=real, pred=ad.concat([control, predicted]), pert_col="perturbation", control_pert="control"
    )


@pytest.fixture(scope="module")
def ours(pair):
    real, predicted, control = pair
    table = evaluate(predicted, real[real.obs["perturbation"] != "control"], control, top_k=(), distances=False)
    return table.pivot_table(index="condition", columns="metric", values="value")


def test_de_overlap_matches_cell_eval(cell_eval_pair, ours, pair):
    evaluator = pytest.importorskip("cell_eval._evaluator")
    de_metrics = pytest.importorskip("cell_eval.metrics._de")
    comparison = evaluator._build_de_comparison(anndata_pair=cell_eval_pair)
    expected = de_metrics.de_overlap_metric(comparison, k=None)
    assert set(expected) == set("ABCD")
    for label in "ABCD":
        assert ours.at[label, "de_overlap"] == pytest.approx(expected[label], abs=1e-12)
    assert 0 < expected["A"] < 1  # the check is not vacuous
    assert expected["D"] == 0.0
    # the tests themselves: FDR and log2 fold changes as pdex's
    real, _, control = pair
    frame = comparison.real.data.to_pandas()
    frame = frame[frame["target"] == "B"].set_index("feature").loc[real.var_names]
    fdr, lfc = differential_expression(real[real.obs["perturbation"] == "B"].X, control.X)
    np.testing.assert_allclose(fdr, frame["fdr"].to_numpy(), atol=1e-6)
    np.testing.assert_allclose(lfc, frame["log2_fold_change"].to_numpy(), atol=1e-6)


def test_discrimination_and_mae_match_cell_eval(cell_eval_pair, ours):
    metrics = pytest.importorskip("cell_eval.metrics._anndata")
    discrimination = metrics.discrimination_score(cell_eval_pair)
    absolute = metrics.mae(cell_eval_pair)
    for label in "ABCD":
        assert ours.at[label, "discrimination_score_l1"] == pytest.approx(discrimination[label], abs=1e-12)
        assert ours.at[label, "mae"] == pytest.approx(absolute[label], rel=1e-9)
    assert ours.at["D", "discrimination_score_l1"] < 1.0 == ours.at["A", "discrimination_score_l1"]


def test_discrimination_known_answer_and_target_exclusion():
    true = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [4.0, 4.0, 0.0]])
    pred = np.array([[0.2, 0.0, 0.0], [3.0, 3.0, 0.0], [4.0, 3.5, 0.0]])
    np.testing.assert_allclose(discrimination_scores(pred, true), [1.0, 2 / 3, 1.0])
    # condition 1's prediction is off only on its own target gene (index 2): excluded, it ranks first
    true = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.5, 1.5, 50.0]])
    pred = true.copy()
    pred[1, 2] = 50.0
    assert discrimination_scores(pred, true)[1] == pytest.approx(2 / 3)
    assert discrimination_scores(pred, true, [[], [2], []])[1] == 1.0


def test_de_overlap_known_answers():
    rng = np.random.default_rng(0)
    control = rng.normal(1.0, 0.1, (60, 6))
    true = rng.normal(1.0, 0.1, (60, 6)) + np.array([1.5, 1.0, 0.5, 0.0, 0.0, 0.0])
    assert de_overlap(true, true, control) == 1.0
    assert de_overlap(control[:30], true, control) == 0.0
    assert np.isnan(de_overlap(true, control[:30], control[30:]))  # no true DE gene: undefined (cell-eval: 0)
    shifted = rng.normal(1.0, 0.1, (60, 6)) + np.array([1.5, 0.0, 0.0, 1.0, 0.0, 0.0])
    assert de_overlap(shifted, true, control) == pytest.approx(1 / 3)  # top 3 true {0,1,2} vs pred {0,3} + none
    assert de_overlap(shifted, true, control, k=1) == 1.0


def test_perturbation_centred_pearson_ignores_the_shared_shift():
    """Two conditions share a shift s: predicting s for both scores high against controls, 0 once centred."""
    rng = np.random.default_rng(3)
    control, shared, own = np.zeros(200), rng.normal(0, 2, 200), rng.normal(0, 0.5, 200)
    true_a, true_b = control + shared + own, control + shared - own
    centre = (true_a + true_b) / 2
    assert pearson_delta(control + shared, true_a, control) > 0.9
    assert pearson_delta(control + shared, true_a, centre) == 0.0
    assert pearson_delta(true_a, true_a, centre) == pytest.approx(1.0)
    # evaluate() takes the centre from all true cells of the context
    obs = pd.DataFrame({"perturbation": ["A", "B"]}, index=["a", "b"])
    truth = ad.AnnData(np.vstack([true_a, true_b]), obs=obs)
    controls = ad.AnnData(control[None, :], obs=pd.DataFrame({"perturbation": ["control"]}, index=["c"]))
    guess = ad.AnnData(np.vstack([control + shared] * 2), obs=obs.set_axis(["pa", "pb"]))
    table = evaluate(guess, truth, controls, top_k=(50,), distances=False, de=False).set_index(["condition", "metric"])
    assert table.at[("A", "pearson_delta_pert"), "value"] == 0.0
    assert table.at[("A", "pearson_delta_pert_top50"), "value"] == 0.0
    assert table.at[("A", "pearson_delta"), "value"] > 0.9


def test_null_floor_follows_the_proportions_of_the_ceiling():
    """Gaussian controls: the floor's Pearson matches (1/n_c) / sqrt((1/n_p + 1/n_c)(1/n_t + 1/n_c)).

    With 100 true cells per condition the parts are in the ceiling's proportions 50 : 50 : 900.
    """
    X = np.random.default_rng(0).normal(0, 1, (900, 400))
    controls = ad.AnnData(X, obs=pd.DataFrame(index=[str(i) for i in range(900)]))
    keys = {"distances": False, "de": False, "top_k": (), "n_repeats": 3}
    thirds = null_floor(controls, **keys).set_index("metric")["value"]
    sized = null_floor(controls, n_true_cells=100, n_conditions=4, **keys).set_index("metric")["value"]
    wide = null_floor(controls, n_true_cells=100, n_pred_cells=900, **keys).set_index("metric")["value"]
    n_p, n_t, n_c = 45, 45, 810  # 900 controls in the proportions 50 : 50 : 900
    expected = (1 / n_c) / np.sqrt((1 / n_p + 1 / n_c) * (1 / n_t + 1 / n_c))
    assert thirds["pearson_delta"] == pytest.approx(0.5, abs=0.05)
    assert sized["pearson_delta"] == pytest.approx(expected, abs=0.05)
    n_p, n_t, n_c = 426, 23, 451  # proportions 900 : 50 : 900
    expected = (1 / n_c) / np.sqrt((1 / n_p + 1 / n_c) * (1 / n_t + 1 / n_c))
    assert wide["pearson_delta"] == pytest.approx(expected, abs=0.05)
    assert sized["discrimination_score_l1"] == pytest.approx(5 / 8)
