"""Our metrics against the reference implementations: pertpy's Distance and cell-eval's pearson_delta.

Both extras are installed by `make test` (the CI command); the tests are skipped only where they are not.
"""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from sxdiff.metrics import energy_distance, evaluate, mmd


@pytest.fixture(scope="module")
def two_sets():
    rng = np.random.default_rng(0)
    return rng.normal(size=(80, 50)), rng.normal(size=(120, 50)) * 1.3 + 0.4


def test_energy_distance_matches_pertpy(two_sets):
    pertpy_distance = pytest.importorskip("pertpy.tools").Distance
    X, Y = two_sets
    expected = pertpy_distance(metric="edistance")(X, Y)
    assert energy_distance(X, Y, max_cells=None) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(("kernel", "gamma"), [("linear", 1.0), ("rbf", 0.01), ("rbf", 0.2)])
def test_mmd_matches_pertpy(two_sets, kernel, gamma):
    pertpy_distance = pytest.importorskip("pertpy.tools").Distance
    X, Y = two_sets
    expected = pertpy_distance(metric="mmd")(X, Y, kernel=kernel, gamma=gamma)
    assert mmd(X, Y, kernel=kernel, gamma=gamma, max_cells=None) == pytest.approx(expected, rel=1e-8, abs=1e-12)


def test_pearson_delta_matches_cell_eval():
    """cell-eval subtracts the control mean of each object from that object's perturbed mean.

    sxdiff subtracts the *real* control mean from both; the two agree exactly when the predicted object's
    controls are the real controls (as here), which is how sxdiff's predictions are made.
    """
    cell_eval_types = pytest.importorskip("cell_eval._types")
    cell_eval_metrics = pytest.importorskip("cell_eval.metrics._anndata")
    rng = np.random.default_rng(1)
    n_genes = 60
    effects = {"A": rng.normal(0, 1, n_genes), "B": rng.normal(0, 1, n_genes)}

    def cells(label, n, shift, noise_seed):
        noise = np.random.default_rng(noise_seed).normal(0, 0.5, (n, n_genes))
        obs = pd.DataFrame({"perturbation": [label] * n}, index=[f"{label}{noise_seed}_{i}" for i in range(n)])
        return ad.AnnData(2.0 + shift + noise, obs=obs)

    control = cells("control", 40, 0.0, 10)
    real = ad.concat([control, cells("A", 30, effects["A"], 11), cells("B", 30, effects["B"], 12)])
    predicted = ad.concat([cells("A", 25, 0.6 * effects["A"], 13), cells("B", 25, -0.2 * effects["B"], 14)])
    pair = cell_eval_types.PerturbationAnndataPair(
        real=real, pred=ad.concat([control, predicted]), pert_col="perturbation", control_pert="control"
    )
    expected = cell_eval_metrics.pearson_delta(pair)
    ours = evaluate(predicted, real[real.obs["perturbation"] != "control"], control, top_k=(), distances=False)
    ours = ours[ours["metric"] == "pearson_delta"].set_index("condition")["value"]
    assert set(expected) == {"A", "B"}
    for label in ("A", "B"):
        assert ours[label] == pytest.approx(expected[label], rel=1e-9)
    assert ours["A"] > 0.5 > ours["B"]
