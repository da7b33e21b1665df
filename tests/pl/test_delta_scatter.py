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
