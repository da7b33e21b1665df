"""What the data allow: the split-half ceiling and the null floor of every metric."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from ._distances import PCASpace
from ._evaluate import _dense, checked_expression, condition_labels, context_labels, pca_space
from ._scores import finite_mean, score_condition

__all__ = ["ceiling", "null_floor"]

logger = logging.getLogger(__name__)

_COLUMNS = ["context", "condition", "metric", "value", "n_true_cells"]


def _space(reference, layer: str | None, *matrices) -> PCASpace:
    if reference is not None:
        return pca_space(reference, layer)
    return PCASpace.fit(np.vstack([_dense(m) for m in matrices]))


def _average(repeats: list[dict[str, float]]) -> dict[str, float]:
    return {metric: finite_mean([r[metric] for r in repeats]) for metric in repeats[0]}


def ceiling(
    adata_true: AnnData,
    adata_control: AnnData,
    *,
    perturbation_key: str = "perturbation",
    dose_key: str | None = None,
    context_key: str | None = None,
    layer: str | None = None,
    top_k: Sequence[int] = (20, 50),
    n_repeats: int = 5,
    pca_reference: AnnData | PCASpace | None = None,
    distances: bool = True,
    max_cells: int | None = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Split-half ceiling: how well one half of the true cells predicts the other half.

    For every (context, condition) of ``adata_true``, the true cells are split at random into two halves;
    the first half is scored as the "prediction" of the second with exactly the metrics of
    :func:`evaluate` (against the same real controls of the context), and the scores are averaged over
    ``n_repeats`` random splits. No model can be expected to beat the agreement of two halves of the same
    measurement by more than sampling noise; a method's score divided by the ceiling is its "fraction of
    the ceiling". The halves have half the cells, so the ceiling is slightly pessimistic for small
    conditions. Conditions with fewer than 2 true cells are skipped (logged).

    Parameters
    ----------
    adata_true, adata_control
        Real perturbed cells and the real control cells of their contexts (log-normalised).
    perturbation_key, dose_key, context_key, layer, top_k, pca_reference, distances, max_cells
        As in :func:`evaluate`.
    n_repeats
        Random splits per condition.
    seed
        Seed of the splits.

    Returns
    -------
    Tidy DataFrame with the columns of :func:`evaluate`.

    Examples
    --------
    >>> import anndata as ad, numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 30)) + np.r_[np.zeros(20), np.ones(40)][:, None] * np.linspace(0, 3, 30)
    >>> obs = pd.DataFrame({"perturbation": ["control"] * 20 + ["A"] * 40}, index=[str(i) for i in range(60)])
    >>> cells = ad.AnnData(X, obs=obs)
    >>> table = ceiling(cells[20:], cells[:20], distances=False)
    >>> bool(table.query("metric == 'pearson_delta'")["value"].iloc[0] > 0.9)
    True
    """
    if n_repeats < 1:
        raise ValueError(f"n_repeats must be at least 1; got {n_repeats}.")
    X_true = checked_expression(adata_true, layer, "adata_true")
    X_ctrl = checked_expression(adata_control, layer, "adata_control")
    conditions = condition_labels(adata_true, perturbation_key, dose_key)
    true_ctx, ctrl_ctx = context_labels(adata_true, context_key), context_labels(adata_control, context_key)
    space = _space(pca_reference, layer, X_ctrl, X_true) if distances else None
    rng = np.random.default_rng(seed)
    records, too_small = [], []
    pairs = pd.DataFrame({"context": true_ctx, "condition": conditions}).drop_duplicates()
    for context, condition in pairs.itertuples(index=False):
        rows = np.flatnonzero((true_ctx == context) & (conditions == condition))
        in_ctrl = ctrl_ctx == context
        if rows.size < 2 or not in_ctrl.any():
            too_small.append(f"{context}/{condition}")
            continue
        repeats = []
        for _ in range(n_repeats):
            order = rng.permutation(rows)
            half = rows.size // 2
            repeats.append(
                score_condition(
                    X_true[np.sort(order[:half])],
                    X_true[np.sort(order[half:])],
                    X_ctrl[in_ctrl],
                    top_k=top_k,
                    space=space,
                    max_cells=max_cells,
                    seed=seed,
                )
            )
        records += [(context, condition, m, v, int(rows.size)) for m, v in _average(repeats).items()]
    if too_small:
        logger.info("ceiling: skipped %d condition(s) with < 2 cells or no controls: %s", len(too_small), too_small[:5])
    if not records:
        raise ValueError("No condition of adata_true has at least 2 cells and control cells in its context.")
    return pd.DataFrame(records, columns=_COLUMNS)


def null_floor(
    adata_control: AnnData,
    *,
    context_key: str | None = None,
    layer: str | None = None,
    top_k: Sequence[int] = (20, 50),
    n_repeats: int = 5,
    pca_reference: AnnData | PCASpace | None = None,
    distances: bool = True,
    max_cells: int | None = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Null floor: the scores of a "prediction" that knows nothing, for a "treatment" that does nothing.

    The control cells of each context are split at random into three parts: a fake treatment, a fake
    prediction and the controls. The prediction is scored against the treatment with the metrics of
    :func:`evaluate`. Because the predicted and the true delta subtract the same control mean, they share
    its noise and the Pearson of deltas is above zero even here; read a method's scores between this
    floor and the :func:`ceiling`. Contexts with fewer than 3 control cells are skipped.

    Parameters
    ----------
    adata_control
        Real control cells (log-normalised).
    context_key, layer, top_k, n_repeats, pca_reference, distances, max_cells, seed
        As in :func:`ceiling`.

    Returns
    -------
    Tidy DataFrame like :func:`evaluate`'s, with ``condition == "null"``.

    Examples
    --------
    >>> import anndata as ad, numpy as np, pandas as pd
    >>> X = np.random.default_rng(0).poisson(2.0, size=(90, 40)).astype(float)
    >>> controls = ad.AnnData(np.log1p(X), obs=pd.DataFrame(index=[str(i) for i in range(90)]))
    >>> floor = null_floor(controls, distances=False).set_index("metric")["value"]
    >>> bool(0.2 < floor["pearson_delta"] < 0.8)
    True
    """
    if n_repeats < 1:
        raise ValueError(f"n_repeats must be at least 1; got {n_repeats}.")
    X_ctrl = checked_expression(adata_control, layer, "adata_control")
    contexts = context_labels(adata_control, context_key)
    space = _space(pca_reference, layer, X_ctrl) if distances else None
    rng = np.random.default_rng(seed)
    records = []
    for context in pd.unique(contexts):
        rows = np.flatnonzero(contexts == context)
        if rows.size < 3:
            logger.info("null_floor: context %r has %d control cells (< 3); skipped.", context, rows.size)
            continue
        repeats = []
        for _ in range(n_repeats):
            parts = np.array_split(rng.permutation(rows), 3)
            pred, truth, controls = (X_ctrl[np.sort(part)] for part in parts)
            repeats.append(
                score_condition(pred, truth, controls, top_k=top_k, space=space, max_cells=max_cells, seed=seed)
            )
        records += [(context, "null", m, v, int(rows.size)) for m, v in _average(repeats).items()]
    if not records:
        raise ValueError("No context has at least 3 control cells; the null floor needs three random parts.")
    return pd.DataFrame(records, columns=_COLUMNS)
