"""Tidy evaluation of predicted cells against true cells, per (context, condition)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from sxdiff.data._expression import get_expression, mean_expression
from sxdiff.data._on_disk import check_finite
from sxdiff.data._validation import resolve_obs_column

from ._challenge_metrics import discrimination_scores
from ._distances import PCASpace
from ._scores import score_condition

__all__ = ["evaluate", "pca_space"]


def condition_labels(adata: AnnData, perturbation_key: str, dose_key: str | None) -> np.ndarray:
    """One label per cell: the perturbation, or ``"perturbation @ dose"`` with a dose column."""
    labels = resolve_obs_column(adata, perturbation_key).astype(str)
    if dose_key is not None:
        labels = labels + " @ " + resolve_obs_column(adata, dose_key).astype(str)
    return labels.to_numpy()


def context_labels(adata: AnnData, context_key: str | None) -> np.ndarray:
    """One context per cell (``"all"`` without a context column)."""
    if context_key is None:
        return np.full(adata.n_obs, "all", dtype=object)
    return resolve_obs_column(adata, context_key).astype(str).to_numpy()


def checked_expression(adata: AnnData, layer: str | None, name: str):
    """The expression matrix (CSR when sparse, for row selection), refusing NaN/inf with the object's name."""
    matrix = get_expression(adata, layer)
    check_finite(matrix, where=f"{name}.{'X' if layer is None else f'layers[{layer!r}]'}")
    return matrix.tocsr() if sp.issparse(matrix) else np.asarray(matrix)


def target_gene_indices(adata: AnnData, perturbation_key: str, rows: np.ndarray, delimiter: str = "+") -> list[int]:
    """Indices of the genes named by the members of the perturbation of ``adata.obs`` row ``rows[0]``."""
    label = str(resolve_obs_column(adata, perturbation_key).iloc[int(rows[0])])
    members = {m.strip() for m in label.split(delimiter)}
    return [i for i, gene in enumerate(adata.var_names) if gene in members]


def perturbed_means(X_true, contexts: np.ndarray, conditions: np.ndarray) -> dict[str, np.ndarray | None]:
    """Mean of all perturbed (true) cells of each context: the reference of perturbation-centred deltas.

    ``None`` for a context with a single condition, where a centred delta says nothing.
    """
    out: dict[str, np.ndarray | None] = {}
    for context in pd.unique(contexts):
        rows = np.flatnonzero(contexts == context)
        out[context] = mean_expression(X_true[rows]) if pd.unique(conditions[rows]).size > 1 else None
    return out


def discrimination_records(blocks: dict[str, list[tuple]], n_true: dict) -> list[tuple]:
    """``discrimination_score_l1`` rows of each context from its ``(condition, pred, true, excluded)`` tuples."""
    records = []
    for context, rows in blocks.items():
        if len(rows) < 2:
            continue
        conditions, preds, trues, excluded = zip(*rows, strict=True)
        scores = discrimination_scores(np.vstack(preds), np.vstack(trues), excluded)
        records += [
            (context, c, "discrimination_score_l1", float(v), n_true[(context, c)])
            for c, v in zip(conditions, scores, strict=True)
        ]
    return records


def _dense(matrix) -> np.ndarray:
    return matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)


def pca_space(reference: AnnData | PCASpace, layer: str | None = None, n_comps: int = 50) -> PCASpace:
    """A :class:`PCASpace` fitted on ``reference`` cells (log-normalised), or ``reference`` itself."""
    if isinstance(reference, PCASpace):
        return reference
    return PCASpace.fit(checked_expression(reference, layer, "pca_reference"), n_comps=n_comps)


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
    pca_reference: AnnData | PCASpace | None = None,
    distances: bool = True,
    max_cells: int | None = 1000,
    seed: int = 0,
    de: bool = True,
    delimiter: str = "+",
) -> pd.DataFrame:
    """Score predicted cells against true cells for every (context, condition) they share.

    Every metric compares means against the real control cells of the same context
    (``adata_control``), never against predicted controls. Values should be log-normalised.

    A *delta* is a mean expression profile minus the mean of the context's real control cells; the
    predicted and the true delta subtract the same control mean (so they share its noise: see
    :func:`null_floor`). DEGs are the genes with the largest absolute true delta. Metrics (``metric``):

    - ``pearson_delta``: Pearson correlation of predicted and true deltas, all genes;
    - ``pearson_delta_top{k}``: the same over the top-k DEGs (0 for a constant prediction such as "no change");
    - ``mse_delta``: mean squared error of the deltas (equals the MSE of the means), all genes;
    - ``r2_mean``, ``r2_mean_top50``: R² (coefficient of determination) of the true mean expression by the
      predicted mean, all genes / top-50 DEGs (:func:`r2_means`);
    - ``deg_direction_top50``: fraction of the top-50 DEGs whose predicted change has the right sign;
    - ``energy_distance``, ``mmd``: distribution distances between the predicted and the true *cells* in a
      50-component PCA space fitted on ``pca_reference`` (:func:`energy_distance`; :func:`mmd` with an RBF
      kernel whose bandwidth is fixed by the space). Lower is better. Controls play no part in them;
    - ``pearson_delta_pert``, ``pearson_delta_pert_top{k}``: perturbation-centred Pearson (Systema, Viñas
      Torné et al. 2025): the deltas are taken from the mean of *all perturbed cells* of the context in
      ``adata_true`` instead of the controls (top-k genes by the largest absolute centred true delta), so
      that the change every perturbation shares earns nothing. Left out for a context with one condition;
    - ``mae``: mean absolute error of the mean expression (cell-eval's ``mae``);
    - ``de_overlap``: overlap of the predicted and true DE genes against the controls, as cell-eval's
      ``overlap_at_N`` (:func:`de_overlap`; NaN when the truth has no significant gene);
    - ``discrimination_score_l1``: rank of the true condition among all the context's evaluated conditions
      by L1 distance of the predicted to the true means, as cell-eval's ``discrimination_score_l1``
      (:func:`discrimination_scores`; genes targeted by the perturbation left out; only for contexts with
      at least 2 conditions; chance is ``(n + 1) / (2n)``).

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
    pca_reference
        Cells to fit the PCA space of the distances on — the benchmark passes the *training* cells — or a
        fitted :class:`PCASpace` (reuse it to score several methods in one space). ``None`` fits it on
        ``adata_control`` and ``adata_true`` together.
    distances
        Compute ``energy_distance`` and ``mmd`` (quadratic in cells; see ``max_cells``).
    max_cells, seed
        Predicted and true cells are subsampled to at most ``max_cells`` each (``seed``) for the distances.
    de
        Compute ``de_overlap`` (Wilcoxon tests of every gene; the slowest metric after the distances).
    delimiter
        Separator of combination members in perturbation labels (for the target genes left out of the
        discrimination score).

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
    >>> evaluate(true, true, ctrl, top_k=(), de=False).set_index("metric")["value"].round(3).to_dict()
    {'pearson_delta': 1.0, 'mse_delta': 0.0, 'r2_mean': 1.0, 'r2_mean_top50': 1.0, 'deg_direction_top50': 1.0, \
'mae': 0.0, 'energy_distance': 0.0, 'mmd': 0.0}
    """
    for name, other in (("adata_pred", adata_pred), ("adata_control", adata_control)):
        if list(other.var_names) != list(adata_true.var_names):
            missing = sorted(set(adata_true.var_names) - set(other.var_names))[:10]
            raise ValueError(
                f"{name} and adata_true have different genes (or gene order); e.g. missing in {name}: "
                f"{missing}. Subset both to the same genes in the same order: `{name}[:, adata_true.var_names]`."
            )
    pred_conditions = condition_labels(adata_pred, perturbation_key, dose_key)
    true_conditions = condition_labels(adata_true, perturbation_key, dose_key)
    pred_ctx, true_ctx = context_labels(adata_pred, context_key), context_labels(adata_true, context_key)
    ctrl_ctx = context_labels(adata_control, context_key)
    X_pred = checked_expression(adata_pred, layer, "adata_pred")
    X_true = checked_expression(adata_true, layer, "adata_true")
    X_ctrl = checked_expression(adata_control, layer, "adata_control")
    space = None
    if distances:
        if pca_reference is None:
            space = PCASpace.fit(np.vstack([_dense(X_ctrl), _dense(X_true)]))
        else:
            space = pca_space(pca_reference, layer)
    records = []
    centres = perturbed_means(X_true, true_ctx, true_conditions)
    blocks: dict[str, list[tuple]] = {}
    n_true = {}
    pairs = pd.DataFrame({"context": true_ctx, "condition": true_conditions}).drop_duplicates()
    for context, condition in pairs.itertuples(index=False):
        in_pred = (pred_ctx == context) & (pred_conditions == condition)
        in_ctrl = ctrl_ctx == context
        if not in_pred.any() or not in_ctrl.any():
            continue
        in_true = (true_ctx == context) & (true_conditions == condition)
        n_true[(context, condition)] = int(in_true.sum())
        values = score_condition(
            X_pred[in_pred],
            X_true[in_true],
            X_ctrl[in_ctrl],
            top_k=top_k,
            space=space,
            max_cells=max_cells,
            seed=seed,
            perturbed_mean=centres[context],
            de=de,
        )
        for metric, value in values.items():
            records.append((context, condition, metric, value, int(in_true.sum())))
        excluded = target_gene_indices(adata_true, perturbation_key, np.flatnonzero(in_true), delimiter)
        blocks.setdefault(context, []).append(
            (condition, mean_expression(X_pred[in_pred]), mean_expression(X_true[in_true]), excluded)
        )
    records += discrimination_records(blocks, n_true)
    if not records:
        raise ValueError(
            "No (context, condition) of adata_true has both predicted cells and control cells. Check that "
            f"{perturbation_key!r}{'/' + dose_key if dose_key else ''} labels and contexts match."
        )
    return pd.DataFrame(records, columns=["context", "condition", "metric", "value", "n_true_cells"])
