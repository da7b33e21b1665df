"""Tidy evaluation of predicted cells against true cells, per (context, condition)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from sxdiff.data._expression import check_finite, get_expression, mean_expression
from sxdiff.data._validation import resolve_obs_column

from ._delta_metrics import mse_delta, pearson_delta

__all__ = ["evaluate"]


def _condition_labels(adata: AnnData, perturbation_key: str, dose_key: str | None) -> pd.Series:
    labels = resolve_obs_column(adata, perturbation_key).astype(str)
    if dose_key is None:
        return labels
    doses = resolve_obs_column(adata, dose_key).astype(str)
    return labels + " @ " + doses


def evaluate(
    adata_pred: AnnData,
    adata_true: AnnData,
    adata_control: AnnData,
    *,
    perturbation_key: str = "perturbation",
    dose_key: str | None = None,
    context_key: str | None = None,
    layer: str | None = None,
    top_k: Sequence[int] = (20, 50),
) -> pd.DataFrame:
    """Score predicted cells against true cells for every (context, condition) they share.

    Every metric compares means against the real control cells of the same context
    (``adata_control``), never against predicted controls. Values should be log-normalised.

    Metrics (``metric`` column):

    - ``pearson_delta``: Pearson correlation of predicted and true deltas from the control mean, all genes;
    - ``pearson_delta_top{k}``: the same over the top-k genes by absolute true delta;
    - ``mse_delta``: mean squared error of the deltas over all genes.

    Parameters
    ----------
    adata_pred
        Predicted cells, with the perturbation (and dose, context) columns.
    adata_true
        Real perturbed cells.
    adata_control
        Real control cells of the evaluated contexts.
    perturbation_key, dose_key, context_key
        ``obs`` columns identifying conditions and contexts (same names in all three objects).
    layer
        Layer with log-normalised values (``None``: ``X``), in all three objects.
    top_k
        DEG set sizes for ``pearson_delta_top{k}``.

    Returns
    -------
    Tidy DataFrame with columns ``context``, ``condition``, ``metric``, ``value``, ``n_true_cells``.

    Raises
    ------
    ValueError
        When the genes of the objects differ, values are NaN/inf, or no condition is shared.

    Examples
    --------
    >>> import anndata as ad, numpy as np, pandas as pd
    >>> X = np.array([[0.0, 0.0, 0.0], [2.0, 1.0, 0.0]])
    >>> ctrl = ad.AnnData(X[:1], obs=pd.DataFrame({"perturbation": ["control"]}, index=["c"]))
    >>> true = ad.AnnData(X[1:], obs=pd.DataFrame({"perturbation": ["A"]}, index=["t"]))
    >>> evaluate(true, true, ctrl, top_k=()).set_index("metric")["value"].round(3).to_dict()
    {'pearson_delta': 1.0, 'mse_delta': 0.0}
    """
    for name, other in (("adata_pred", adata_pred), ("adata_control", adata_control)):
        if list(other.var_names) != list(adata_true.var_names):
            missing = sorted(set(adata_true.var_names) - set(other.var_names))[:10]
            raise ValueError(
                f"{name} and adata_true have different genes (or gene order); e.g. missing in {name}: "
                f"{missing}. Subset both to the same genes in the same order: `{name}[:, adata_true.var_names]`."
            )
    pred_conditions = _condition_labels(adata_pred, perturbation_key, dose_key)
    true_conditions = _condition_labels(adata_true, perturbation_key, dose_key)

    def contexts_of(adata: AnnData) -> np.ndarray:
        if context_key is None:
            return np.full(adata.n_obs, "all", dtype=object)
        return resolve_obs_column(adata, context_key).astype(str).to_numpy()

    pred_ctx, true_ctx, ctrl_ctx = contexts_of(adata_pred), contexts_of(adata_true), contexts_of(adata_control)
    X_pred = get_expression(adata_pred, layer)
    X_true = get_expression(adata_true, layer)
    X_ctrl = get_expression(adata_control, layer)
    for name, matrix in (("adata_pred", X_pred), ("adata_true", X_true), ("adata_control", X_ctrl)):
        check_finite(matrix, where=f"{name}.{'X' if layer is None else f'layers[{layer!r}]'}")
    records = []
    pairs = pd.DataFrame({"context": true_ctx, "condition": true_conditions.to_numpy()}).drop_duplicates()
    for context, condition in pairs.itertuples(index=False):
        in_pred = (pred_ctx == context) & (pred_conditions.to_numpy() == condition)
        in_ctrl = ctrl_ctx == context
        if not in_pred.any() or not in_ctrl.any():
            continue
        in_true = (true_ctx == context) & (true_conditions.to_numpy() == condition)
        pred_mean, true_mean = mean_expression(X_pred[in_pred]), mean_expression(X_true[in_true])
        control_mean = mean_expression(X_ctrl[in_ctrl])
        values = {"pearson_delta": pearson_delta(pred_mean, true_mean, control_mean)}
        for k in top_k:
            values[f"pearson_delta_top{k}"] = pearson_delta(pred_mean, true_mean, control_mean, top_k=k)
        values["mse_delta"] = mse_delta(pred_mean, true_mean, control_mean)
        for metric, value in values.items():
            records.append((context, condition, metric, value, int(in_true.sum())))
    if not records:
        raise ValueError(
            "No (context, condition) of adata_true has both predicted cells and control cells. Check that "
            f"{perturbation_key!r}{'/' + dose_key if dose_key else ''} labels and contexts match."
        )
    return pd.DataFrame(records, columns=["context", "condition", "metric", "value", "n_true_cells"])
