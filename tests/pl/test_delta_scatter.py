import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

import sxdiff


def test_delta_scatter_draws_one_point_per_gene_and_labels_top_degs(tmp_path):
    adata = sxdiff.datasets.norman_crispra()
    ctrl = adata[adata.obs["is_control"].to_numpy()]
    true = adata[(adata.obs["perturbation"] == "KLF1").to_numpy()]
    ax = sxdiff.pl.delta_scatter(true, true, ctrl, n_labels=5, show=False, save=tmp_path / "f.png")
    offsets = ax.collections[0].get_offsets()
    assert offsets.shape == (adata.n_vars, 2)
    np.testing.assert_allclose(offsets[:, 0], offsets[:, 1])  # perfect prediction lies on the diagonal
    labels = [t.get_text() for t in ax.texts]
    delta = np.asarray(true.X.mean(0)).ravel() - np.asarray(ctrl.X.mean(0)).ravel()
    assert labels == list(adata.var_names[np.argsort(-np.abs(delta), kind="stable")[:5]])
    assert ax.get_title() == "Pearson r = 1.00"
    assert (tmp_path / "f.png").stat().st_size > 0
    plt.close("all")


def _overlapping_label_pairs(ax) -> int:
    ax.figure.canvas.draw()
    renderer = ax.figure.canvas.get_renderer()
    boxes = [text.get_window_extent(renderer) for text in ax.texts]
    return sum(boxes[i].overlaps(boxes[j]) for i in range(len(boxes)) for j in range(i + 1, len(boxes)))


def test_labels_of_genes_with_almost_equal_changes_do_not_overlap():
    import anndata as ad

    overlaps = 0
    for seed in range(4):
        rng = np.random.default_rng(seed)
        true_delta = rng.normal(0, 0.5, 300)
        pred_delta = 0.6 * true_delta + rng.normal(0, 0.4, 300)
        top = np.argsort(-np.abs(true_delta))[:2]
        true_delta[top[1]], pred_delta[top[1]] = true_delta[top[0]] * 0.999, pred_delta[top[0]]  # same place
        control = ad.AnnData(np.full((2, 300), 5.0, dtype=np.float32))
        truth = ad.AnnData((5.0 + true_delta)[None, :].astype(np.float32))
        pred = ad.AnnData((5.0 + pred_delta)[None, :].astype(np.float32))
        fig, ax = plt.subplots(figsize=(4.4, 4.5))
        sxdiff.pl.delta_scatter(pred, truth, control, ax=ax, n_labels=10, show=False)
        overlaps += _overlapping_label_pairs(ax)
        plt.close(fig)
    assert overlaps == 0
