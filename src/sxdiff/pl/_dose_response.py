"""Predicted dose-response curves per gene, with the observed means at the measured doses."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from sxdiff.data._expression import get_expression, mean_expression
from sxdiff.data._validation import resolve_obs_column

from ._utils import finish, new_axes

__all__ = ["dose_response"]


def dose_response(
    curves: pd.DataFrame,
    genes: Sequence[str],
    *,
    adata_observed: AnnData | None = None,
    dose_key: str = "dose",
    layer: str | None = None,
    log_dose: bool = True,
    title: str | None = None,
    ax=None,
    show: bool | None = None,
    save: str | Path | None = None,
):
    """One line per gene through the predicted mean expression at each dose; observed means as points.

    Parameters
    ----------
    curves
        Doses x genes mean predicted expression, e.g. :meth:`sxdiff.model.StateXDiff.dose_response`.
    genes
        Genes to draw (columns of ``curves``).
    adata_observed
        Measured cells of the same perturbation and context; their mean per dose is drawn as points in the
        colour of the gene's line.
    dose_key
        ``obs`` column of doses in ``adata_observed``.
    layer
        Layer of ``adata_observed`` on the scale of ``curves`` (``None``: ``X``).
    log_dose
        Logarithmic dose axis.
    title, ax, show, save
        As in scanpy.

    Returns
    -------
    The matplotlib ``Axes``.

    Examples
    --------
    >>> import pandas as pd, sxdiff
    >>> curves = pd.DataFrame({"A": [0.1, 0.5, 0.9]}, index=[0.1, 1.0, 10.0])
    >>> ax = sxdiff.pl.dose_response(curves, ["A"], show=False)
    >>> len(ax.lines)
    1
    """
    missing = [g for g in genes if g not in curves.columns]
    if missing:
        raise KeyError(f"Genes {missing} are not columns of `curves` (first columns: {list(curves.columns[:5])}).")
    doses = np.asarray(curves.index, dtype=float)
    ax, created = new_axes(ax, (4.8, 3.6))
    observed = None
    if adata_observed is not None:
        values = get_expression(adata_observed, layer)
        cell_doses = pd.to_numeric(resolve_obs_column(adata_observed, dose_key), errors="raise").to_numpy()
        observed = {
            dose: mean_expression(values[cell_doses == dose]) for dose in np.unique(cell_doses[np.isfinite(cell_doses)])
        }
    for gene in genes:
        (line,) = ax.plot(doses, curves[gene].to_numpy(), marker=None, label=str(gene))
        if observed:
            column = list(adata_observed.var_names).index(gene)
            x = np.array(sorted(observed))
            ax.scatter(x, [observed[d][column] for d in x], color=line.get_color(), s=18, zorder=3)
    if log_dose:
        ax.set_xscale("log")
    ax.set_xlabel(dose_key)
    ax.set_ylabel("mean expression")
    ax.legend(fontsize=7, frameon=False)
    if title is not None:
        ax.set_title(title)
    return finish(ax, created=created, show=show, save=save)
