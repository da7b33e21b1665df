"""What the data allow: the split-half ceiling and the null floor of every metric."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from sxdiff.data._expression import mean_expression

from ._challenge_metrics import discrimination_chance, discrimination_scores
from ._distances import PCASpace
from ._evaluate import (
    _dense,
    checked_expression,
    condition_labels,
    context_labels,
    pca_space,
    perturbed_means,
    target_gene_indices,
)
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


def _half_discrimination(halves: dict, n_repeats: int, n_true: dict) -> list[tuple]:
    """Discrimination of each context's conditions by one half of their cells, averaged over the splits."""
    by_context: dict[str, list] = {}
    for (context, condition), value in halves.items():
        by_context.setdefault(context, []).append((condition, value))
    records = []
    for context, rows in by_context.items():
        if len(rows) < 2:
            continue
        conditions = [c for c, _ in rows]
        excluded = [v["excluded"] for _, v in rows]
        scores = [
            discrimination_scores(
                np.vstack([v["first"][r] for _, v in rows]), np.vstack([v["second"][r] for _, v in rows]), excluded
            )
            for r in range(n_repeats)
        ]
        mean = np.mean(scores, axis=0)
        records += [
            (context, c, "discrimination_score_l1", float(v), n_true[(context, c)])
            for c, v in zip(conditions, mean, strict=True)
        ]
    return records


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
    de: bool = True,
) -> pd.DataFrame:
    """Split-half ceiling: how well one half of the true cells predicts the other half.

    For every (context, condition) of ``adata_true``, the true cells are split at random into two halves;
    the first half is scored as the "prediction" of the second with exactly the metrics of
    :func:`evaluate` (against the same real controls of the context), and the scores are averaged over
    ``n_repeats`` random splits. No model can be expected to beat the agreement of two halves of the same
    measurement by more than sampling noise; a method's score divided by the ceiling is its "fraction of
    the ceiling". The halves have half the cells, so the ceiling is slightly pessimistic for small
    conditions. Conditions with fewer than 2 true cells are skipped (logged). The discrimination score's
    ceiling ranks each condition's first half among the second halves of all conditions of the context;
    the perturbation-centred deltas are taken from the mean of all true cells of the context.

    Parameters
    ----------
    adata_true, adata_control
        Real perturbed cells and the real control cells of their contexts (log-normalised).
    perturbation_key, dose_key, context_key, layer, top_k, pca_reference, distances, max_cells, de
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
    centres = perturbed_means(X_true, true_ctx, conditions)
    halves: dict[tuple[str, str], dict] = {}
    n_true = {}
    pairs = pd.DataFrame({"context": true_ctx, "condition": conditions}).drop_duplicates()
    for context, condition in pairs.itertuples(index=False):
        rows = np.flatnonzero((true_ctx == context) & (conditions == condition))
        in_ctrl = ctrl_ctx == context
        if rows.size < 2 or not in_ctrl.any():
            too_small.append(f"{context}/{condition}")
            continue
        repeats = []
        kept = {"first": [], "second": [], "excluded": target_gene_indices(adata_true, perturbation_key, rows)}
        for _ in range(n_repeats):
            order = rng.permutation(rows)
            half = rows.size // 2
            first, second = X_true[np.sort(order[:half])], X_true[np.sort(order[half:])]
            kept["first"].append(mean_expression(first))
            kept["second"].append(mean_expression(second))
            repeats.append(
                score_condition(
                    first,
                    second,
                    X_ctrl[in_ctrl],
                    top_k=top_k,
                    space=space,
                    max_cells=max_cells,
                    seed=seed,
                    perturbed_mean=centres[context],
                    de=de,
                )
            )
        halves[(context, condition)] = kept
        n_true[(context, condition)] = int(rows.size)
        records += [(context, condition, m, v, int(rows.size)) for m, v in _average(repeats).items()]
    records += _half_discrimination(halves, n_repeats, n_true)
    if too_small:
        logger.info("ceiling: skipped %d condition(s) with < 2 cells or no controls: %s", len(too_small), too_small[:5])
    if not records:
        raise ValueError("No condition of adata_true has at least 2 cells and control cells in its context.")
    return pd.DataFrame(records, columns=_COLUMNS)


def _per_context(value: int | Mapping[str, int] | None, context: str) -> float | None:
    if isinstance(value, Mapping):
        return value.get(context)
    return value


def _part_sizes(n_controls: int, n_pred: float | None, n_true: float | None) -> tuple[int, int, int]:
    """Disjoint part sizes (prediction, truth, controls), in the proportions ``n_pred : n_true/2 : n_controls``.

    ``n_pred`` defaults to ``n_true / 2``; without ``n_true``, equal thirds.
    """
    if n_true is None:
        weights = np.array([n_controls if n_pred is None else n_pred, n_controls, n_controls], dtype=float)
    else:
        weights = np.array([n_true / 2 if n_pred is None else n_pred, n_true / 2, n_controls], dtype=float)
    sizes = np.maximum(1, np.floor(n_controls * weights / weights.sum()).astype(int))
    sizes[1] = min(sizes[1], n_controls - sizes[0] - 1)  # at least one control cell
    sizes[2] = n_controls - sizes[0] - sizes[1]
    return int(sizes[0]), int(sizes[1]), int(sizes[2])


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
    n_true_cells: int | Mapping[str, int] | None = None,
    n_pred_cells: int | Mapping[str, int] | None = None,
    n_conditions: int | Mapping[str, int] | None = None,
    de: bool = True,
) -> pd.DataFrame:
    """Null floor: the scores of a "prediction" that knows nothing, for a "treatment" that does nothing.

    The control cells of each context are split at random into three disjoint parts: a fake prediction,
    a fake treatment and the controls. The prediction is scored against the treatment with the metrics of
    :func:`evaluate`. Because the predicted and the true delta subtract the same control mean, they share
    its noise and the Pearson of deltas is above zero even here; read a method's scores between this
    floor and the :func:`ceiling`. Contexts with fewer than 3 control cells are skipped.

    **Part sizes.** How much noise the three means share depends on the *proportions* of their cell
    numbers: per gene, the expected null correlation of the deltas is
    ``(1/n_c) / sqrt((1/n_p + 1/n_c) (1/n_t + 1/n_c))``, unchanged when all three numbers are scaled
    together (so are the Pearson correlations and the top-k selection). Given ``n_true_cells``, the parts
    are sized like the :func:`ceiling`'s: a fake prediction and a fake treatment of half the true cells
    each against all the context's controls, in the proportions ``n_true/2 : n_true/2 : n_controls``,
    using all the controls available. The floor is then the ceiling's construction without a
    perturbation (same shared noise, no signal), so the ceiling lies above it in expectation. Equal
    thirds (the default without ``n_true_cells``) share more noise than the ceiling does whenever the
    context has more control cells than half a condition; the floor could then exceed the ceiling (it
    did on the McFaline-Figueroa cell lines). Error-type metrics (``mse_delta``, ``mae``) and distances
    scale with ``1/n`` and are those of the smaller parts.

    Parameters
    ----------
    adata_control
        Real control cells (log-normalised).
    context_key, layer, top_k, n_repeats, pca_reference, distances, max_cells, seed, de
        As in :func:`ceiling`.
    n_true_cells
        True cells per condition in the real evaluation (one number, or one per context, e.g. the median
        over the context's conditions): the fake treatment gets half of them, as the ceiling's halves;
        ``None``: equal thirds.
    n_pred_cells
        Weight of the fake prediction's part; ``None``: half the true cells (the ceiling's prediction), or
        a third of the controls without ``n_true_cells``.
    n_conditions
        Conditions per context in the real evaluation: adds the chance level of the discrimination score,
        ``(n + 1) / (2n)``, as ``discrimination_score_l1`` (contexts with at least 2 conditions).

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
    >>> floor = null_floor(controls, distances=False, n_true_cells=20, de=False).set_index("metric")["value"]
    >>> bool(floor["pearson_delta"] < 0.4)
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
        sizes = _part_sizes(rows.size, _per_context(n_pred_cells, context), _per_context(n_true_cells, context))
        repeats = []
        for _ in range(n_repeats):
            order = rng.permutation(rows)
            pred, truth, controls = (X_ctrl[np.sort(part)] for part in np.split(order, np.cumsum(sizes)[:2]))
            repeats.append(
                score_condition(pred, truth, controls, top_k=top_k, space=space, max_cells=max_cells, seed=seed, de=de)
            )
        values = _average(repeats)
        n = _per_context(n_conditions, context)
        if n is not None and n >= 2:
            values["discrimination_score_l1"] = discrimination_chance(int(n))
        records += [(context, "null", m, v, int(rows.size)) for m, v in values.items()]
    if not records:
        raise ValueError("No context has at least 3 control cells; the null floor needs three random parts.")
    return pd.DataFrame(records, columns=_COLUMNS)
