"""Predicted against true expression changes, one point per gene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from anndata import AnnData

from sxdiff.metrics import mean_deltas, pearson_delta, top_deg_indices

from ._utils import finish, new_axes

__all__ = ["delta_scatter"]


def delta_scatter(
    adata_pred: AnnData,
    adata_true: AnnData,
    adata_control: AnnData,
    *,
    layer: str | None = None,
    n_labels: int = 10,
    title: str | None = None,
    ax=None,
    show: bool | None = None,
    save: str | Path | None = None,
):
    """Scatter predicted against true mean change from control, one point per gene, top DEGs labelled.

    Parameters
    ----------
    adata_pred
        Predicted cells of one condition.
    adata_true
        True cells of the same condition.
    adata_control
        Real control cells of the same context (the reference of both changes).
    layer
        Layer with log-normalised values (``None``: ``X``).
    n_labels
        Number of genes with the largest absolute true change to label.
    title
        Axes title; by default the Pearson correlation of the changes.
    ax
        Matplotlib axes to draw into; a new figure when ``None``.
    show
        Show the figure (default: when neither ``ax`` nor ``save`` is given).
    save
        File to save the figure to.

    Returns
    -------
    The matplotlib ``Axes``.

    Examples
    --------
    >>> import sxdiff
    >>> adata = sxdiff.datasets.norman_crispra()
    >>> ctrl = adata[adata.obs["is_control"]]
    >>> true = adata[adata.obs["perturbation"] == "KLF1"]
    >>> ax = sxdiff.pl.delta_scatter(true, true, ctrl, show=False)
    """
    pred_delta, true_delta = mean_deltas(adata_pred, adata_true, adata_control, layer)
    ax, created = new_axes(ax, (4.5, 4.5))
    ax.scatter(true_delta, pred_delta, s=8, c="0.4", alpha=0.7, linewidths=0, rasterized=True)
    lo = float(min(true_delta.min(), pred_delta.min()))
    hi = float(max(true_delta.max(), pred_delta.max()))
    ax.plot([lo, hi], [lo, hi], ls="--", c="0.7", lw=1, zorder=0)
    ax.axhline(0, c="0.85", lw=0.8, zorder=0)
    ax.axvline(0, c="0.85", lw=0.8, zorder=0)
    genes = np.asarray(adata_true.var_names)
    labelled = top_deg_indices(true_delta, n_labels)[:n_labels]
    texts = [ax.text(true_delta[i], pred_delta[i], str(genes[i]), fontsize=7) for i in labelled]
    if texts:  # move labels apart (and off the points), with a thin line to their gene
        from adjustText import adjust_text

        adjust_text(
            texts,
            x=true_delta,
            y=pred_delta,
            target_x=true_delta[labelled],
            target_y=pred_delta[labelled],
            ax=ax,
            arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.5},
            # adjustText's defaults (1.05, 1.2) / (0.1, 0.2) leave genes with almost equal changes on top of
            # each other (3 overlapping pairs in 8 random clouds with two coinciding labelled genes; 0 with these)
            expand=(1.3, 1.6),
            force_text=(0.5, 1.0),
        )
    ax.set_xlabel("true change from control")
    ax.set_ylabel("predicted change from control")
    r = pearson_delta(pred_delta, true_delta, np.zeros_like(true_delta))
    ax.set_title(title if title is not None else f"Pearson r = {r:.2f}")
    return finish(ax, created=created, show=show, save=save)
