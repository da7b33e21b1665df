"""Interaction residual, skill over additive, and the residual's ceiling, floor and strength."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from sxdiff.metrics import interaction_limits, interaction_metrics, interaction_scores, interaction_stratum

N_GENES = 60


def _cells(interaction: np.ndarray, seed: int = 0, n: int = 60, noise: float = 0.3) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    a = np.r_[np.full(10, 1.0), np.zeros(N_GENES - 10)]
    b = np.r_[np.zeros(10), np.full(10, -1.0), np.zeros(N_GENES - 20)]
    means = {"control": np.zeros(N_GENES), "A": a, "B": b, "A+B": a + b + interaction}
    labels = [k for k in means for _ in range(n)]
    X = np.vstack([means[k] + rng.normal(0, noise, N_GENES) for k in labels])
    obs = pd.DataFrame({"perturbation": labels, "context": "c"}, index=[f"cell{i}" for i in range(len(labels))])
    return ad.AnnData(X, obs=obs)


def test_interaction_scores_known_answers():
    rng = np.random.default_rng(0)
    control, a, b = np.zeros(N_GENES), rng.normal(size=N_GENES), rng.normal(size=N_GENES)
    residual = rng.normal(size=N_GENES)
    true = a + b + residual
    additive = interaction_scores(a + b, true, [a, b], control)
    assert additive == {"residual_pearson": 0.0, "residual_pearson_top50": 0.0, "additive_skill": 0.0}
    perfect = interaction_scores(true, true, [a, b], control)
    assert perfect["residual_pearson"] == pytest.approx(1.0)
    assert perfect["additive_skill"] == 1.0
    rounded = (a + b).astype(np.float32).astype(float) + 1e-7  # additive in float32: still no interaction
    assert interaction_scores(rounded, true, [a, b], control)["residual_pearson"] == 0.0
    doubled = interaction_scores(a + b + 2 * residual, true, [a, b], control)  # right direction, twice too big
    assert doubled["residual_pearson"] == pytest.approx(1.0)
    assert doubled["additive_skill"] == pytest.approx(0.0, abs=1e-12)
    half = interaction_scores(a + b + 0.5 * residual, true, [a, b], control)
    assert half["additive_skill"] == pytest.approx(0.75)


def test_interaction_metrics_on_cells_match_the_scores_of_the_means():
    cells = _cells(np.r_[np.zeros(40), np.full(20, 1.5)])
    truth = cells[(cells.obs["perturbation"] == "A+B").to_numpy()]
    controls = cells[(cells.obs["perturbation"] == "control").to_numpy()]
    table = interaction_metrics(truth, truth, cells, controls, context_key="context").set_index("metric")["value"]
    assert table["residual_pearson"] == pytest.approx(1.0)
    assert table["additive_skill"] == 1.0
    singles_only = cells[cells.obs["perturbation"].isin(["control", "A"]).to_numpy()]  # B never measured alone
    assert interaction_metrics(truth, truth, singles_only, controls, context_key="context").empty


@pytest.mark.parametrize(("size", "stratum"), [(0.0, "none"), (1.5, "strong")])
def test_interaction_strength_and_limits(size, stratum):
    cells = _cells(np.r_[np.zeros(40), np.full(20, size)], seed=1)
    truth = cells[(cells.obs["perturbation"] == "A+B").to_numpy()]
    controls = cells[(cells.obs["perturbation"] == "control").to_numpy()]
    ceiling, floor, strength = interaction_limits(truth, cells, controls, context_key="context", n_repeats=5)
    snr = strength.set_index("metric")["value"]["interaction_snr"]
    assert interaction_stratum(snr) == stratum
    up = ceiling.set_index("metric")["value"]
    down = floor.set_index("metric")["value"]
    if size == 0:
        assert abs(snr) < 0.3
        assert strength.set_index("metric")["value"]["interaction_fraction"] < 0.05
        # nothing to find beyond noise: the ceiling is the floor's construction, and so is its value
        assert up["residual_pearson"] == pytest.approx(down["residual_pearson"], abs=0.1)
    else:
        assert snr > 10
        # the floor is high: the true and a knows-nothing residual share the noise of both singles and the
        # controls (halves of 30 pair cells, 60 cells per single and control: 0.15 / (0.15 + 0.1) = 0.6);
        # the skill's floor is the additive 0
        assert down["residual_pearson"] == pytest.approx(0.6, abs=0.1)
        assert down["additive_skill"] == 0.0
        assert up["residual_pearson_top50"] > 0.9
        assert up["residual_pearson_top50"] > down["residual_pearson_top50"] + 0.1
        assert up["additive_skill"] > down["additive_skill"] + 0.2
