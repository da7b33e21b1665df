"""Each plot renders headlessly and draws what it says: bars, lines, points, labels, matrix values."""

import matplotlib

matplotlib.use("Agg")

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from matplotlib.container import ErrorbarContainer

import sxdiff


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def norman():
    adata = sxdiff.datasets.norman_crispra()
    ctrl = adata[adata.obs["is_control"].to_numpy()]
    true = adata[(adata.obs["perturbation"] == "KLF1").to_numpy()]
    return adata, ctrl, true


def test_deg_heatmap_shows_true_and_predicted_changes_of_the_top_degs(norman, tmp_path):
    adata, ctrl, true = norman
    dense = ctrl.X.toarray() if sp.issparse(ctrl.X) else np.asarray(ctrl.X)
    half = ad.AnnData(dense + 0.5 * (np.asarray(true.X.mean(0)) - dense.mean(0)), var=ctrl.var)  # half the change
    ax = sxdiff.pl.deg_heatmap(half, true, ctrl, n_genes=8, show=False, save=tmp_path / "heat.png")
    values = ax.images[0].get_array()
    assert values.shape == (2, 8)
    np.testing.assert_allclose(values[1], 0.5 * values[0], atol=1e-5)
    delta = np.asarray(true.X.mean(0)).ravel() - np.asarray(ctrl.X.mean(0)).ravel()
    expected = list(adata.var_names[np.argsort(-np.abs(delta), kind="stable")[:8]])
    assert [t.get_text() for t in ax.get_xticklabels()] == expected
    assert [t.get_text() for t in ax.get_yticklabels()] == ["true", "predicted"]
    assert (tmp_path / "heat.png").stat().st_size > 0


def test_dose_response_draws_one_curve_per_gene_and_the_observed_means():
    doses = [0.1, 1.0, 10.0]
    curves = pd.DataFrame({"g0": [0.0, 0.5, 1.0], "g1": [1.0, 0.6, 0.2]}, index=doses)
    X = np.repeat(np.array([[0.1, 0.9], [0.4, 0.7], [1.1, 0.1]]), 4, axis=0)
    obs = pd.DataFrame({"dose": np.repeat(doses, 4)}, index=[f"c{i}" for i in range(12)])
    observed = ad.AnnData(X, obs=obs, var=pd.DataFrame(index=["g0", "g1"]))
    ax = sxdiff.pl.dose_response(curves, ["g0", "g1"], adata_observed=observed, show=False)
    assert len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [1.0, 0.6, 0.2])
    points = [c.get_offsets() for c in ax.collections]
    assert len(points) == 2
    np.testing.assert_allclose(points[0], [[0.1, 0.1], [1.0, 0.4], [10.0, 1.1]])
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["g0", "g1"]
    with pytest.raises(KeyError, match="g9"):
        sxdiff.pl.dose_response(curves, ["g9"], show=False)


def test_metric_summary_bars_error_bars_and_ceiling():
    rows = []
    for seed, shift in ((0, 0.0), (1, 0.2)):
        rows += [("StateXDiff", seed, f"c{i}", 0.4 + shift) for i in range(3)]
    rows += [("mean_shift", "-", f"c{i}", 0.5) for i in range(3)]
    rows += [("ceiling", "-", f"c{i}", 0.9) for i in range(3)] + [("null_floor", "-", "null", 0.3)]
    scores = pd.DataFrame(rows, columns=["method", "seed", "condition", "value"]).assign(metric="top50", task="t")
    ax = sxdiff.pl.metric_summary(scores, "top50", show=False)
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, [0.5, 0.5])  # StateXDiff: mean over seeds of 0.4 and 0.6
    assert [t.get_text() for t in ax.get_xticklabels()] == ["StateXDiff", "mean_shift"]
    errorbar = next(c for c in ax.containers if isinstance(c, ErrorbarContainer))
    segments = errorbar.lines[2][0].get_segments()
    np.testing.assert_allclose(segments[0][:, 1], [0.5 - np.sqrt(0.02), 0.5 + np.sqrt(0.02)])
    horizontal = [line.get_ydata()[0] for line in ax.lines if len(set(line.get_ydata())) == 1]
    assert 0.9 in horizontal
    assert 0.3 in horizontal
    with pytest.raises(ValueError, match="several tasks"):
        sxdiff.pl.metric_summary(pd.concat([scores, scores.assign(task="u")]), "top50", show=False)


def test_training_history_one_line_per_loss_and_stage_boundary():
    history = {
        "train_loss_epoch": pd.DataFrame(
            {"train_loss_epoch": [5.0, 4.0, 1.0, 0.5], "stage": ["state"] * 2 + ["diffusion"] * 2}
        ),
        "validation_loss": pd.DataFrame(
            {"validation_loss": [6.0, 5.0, 2.0, 1.0], "stage": ["state"] * 2 + ["diffusion"] * 2}
        ),
        "lr": pd.DataFrame({"lr": [1e-3] * 4}),
    }
    ax = sxdiff.pl.training_history(history, show=False)
    curves = [line for line in ax.lines if len(line.get_xdata()) == 4]
    assert len(curves) == 2
    np.testing.assert_allclose(curves[0].get_ydata(), [5.0, 4.0, 1.0, 0.5])
    boundaries = [line.get_xdata()[0] for line in ax.lines if len(line.get_xdata()) == 2]
    assert boundaries == [2.5]
    with pytest.raises(ValueError, match="train the model first"):
        sxdiff.pl.training_history({}, show=False)
    with pytest.raises(KeyError, match="available"):
        sxdiff.pl.training_history(history, keys=["kl"], show=False)
