"""True against predicted changes of the top differentially expressed genes, as a heatmap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from anndata import AnnData

from sxdiff.metrics import mean_deltas, top_deg_indices

from ._utils import finish, new_axes

__all__ = ["deg_heatmap"]


def deg_heatmap(
    adata_pred: AnnData,
    adata_true: AnnData,
    adata_control: AnnData,
    *,
    n_genes: int = 20,
    layer: str | None = None,
    cmap: str = "RdBu_r",
    title: str | None = None,
    ax=None,
    show: bool | None = None,
    save: str | Path | None = None,
):
    """Heatmap of the true and the predicted change from control for the top ``n_genes`` DEGs.

    Rows: true, predicted; columns: the genes with the largest absolute true change, ordered by it. The
    colour scale is symmetric around zero (shared by both rows).

    Parameters
    ----------
    adata_pred, adata_true, adata_control
        Predicted and true cells of one condition and the real control cells of their context.
    n_genes
        Number of DEGs to show.
    layer
        Layer with log-normalised values (``None``: ``X``).
    cmap
        Diverging colormap.
    title
        Axes title (default: none).
    ax, show, save
        As in scanpy: axes to draw into, show the figure, file to save it to.

    Returns
    -------
    The matplotlib ``Axes``.

    Examples
    --------
    >>> import sxdiff
    >>> adata = sxdiff.datasets.norman_crispra()
    >>> ctrl = adata[adata.obs["is_control"]]
    >>> true = adata[adata.obs["perturbation"] == "KLF1"]
    >>> ax = sxdiff.pl.deg_heatmap(true, true, ctrl, n_genes=10, show=False)
    """
    pred_delta, true_delta = mean_deltas(adata_pred, adata_true, adata_control, layer)
    genes = top_deg_indices(true_delta, n_genes)[:n_genes]
    values = np.vstack([true_delta[genes], pred_delta[genes]])
    limit = float(np.abs(values).max()) or 1.0
    ax, created = new_axes(ax, (max(4.0, 0.32 * len(genes) + 1.5), 2.2))
    image = ax.imshow(values, cmap=cmap, vmin=-limit, vmax=limit, aspect="auto")
    ax.set_yticks([0, 1], ["true", "predicted"])
    ax.set_xticks(range(len(genes)), [str(g) for g in adata_true.var_names[genes]], rotation=90, fontsize=7)
    ax.figure.colorbar(image, ax=ax, label="change from control", fraction=0.04, pad=0.02)
    if title is not None:
        ax.set_title(title)
    return finish(ax, created=created, show=show, save=save)
