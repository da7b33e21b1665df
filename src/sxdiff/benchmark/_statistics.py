"""Summaries with error bars and paired tests over conditions (Wilcoxon signed-rank, Holm-corrected)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sxdiff.metrics._scores import is_lower_better

__all__ = ["holm", "paired_tests", "per_condition", "summary_table"]

CONDITION = ["task", "fold", "context", "condition"]


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN and does not count as a test).

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def per_condition(scores: pd.DataFrame) -> pd.DataFrame:
    """Average over seeds: one value per (task, fold, context, condition, method, metric)."""
    return scores.groupby([*CONDITION, "method", "metric"], sort=True, observed=True)["value"].mean().reset_index()


def summary_table(scores: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Mean over conditions per seed, then mean and sd across seeds, per task, method and metric.

    Returns
    -------
    Columns ``task``, ``method``, ``metric``, ``mean``, ``sd`` (across seeds; 0 for one seed or a
    deterministic method), ``sd_conditions`` (across conditions, seed-averaged), ``n_conditions``,
    ``n_seeds``.
    """
    chosen = scores[scores["metric"].isin(metrics)]
    per_seed = chosen.groupby(["task", "method", "metric", "seed"], observed=True)["value"].mean().reset_index()
    across_seeds = per_seed.groupby(["task", "method", "metric"], observed=True)["value"].agg(
        mean="mean", sd=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, n_seeds="count"
    )
    conditions = per_condition(chosen).groupby(["task", "method", "metric"], observed=True)["value"]
    across_conditions = conditions.agg(sd_conditions="std", n_conditions="count")
    return across_seeds.join(across_conditions).reset_index()


def paired_tests(scores: pd.DataFrame, reference: str, others: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Wilcoxon signed-rank tests of ``reference`` against each other method, paired by condition.

    Values are first averaged over seeds. For each task and metric, the differences are oriented so that a
    positive difference means the reference is better (lower is better for ``mse_delta``, the distances);
    p-values are two-sided and Holm-corrected over the comparisons of one task and metric.

    Returns
    -------
    Columns ``task``, ``metric``, ``method``, ``n``, ``mean_difference``, ``reference_better`` (count),
    ``p_value``, ``p_holm``.
    """
    from scipy.stats import wilcoxon

    table = per_condition(scores[scores["metric"].isin(metrics)])
    rows = []
    for (task, metric), group in table.groupby(["task", "metric"], sort=True, observed=True):
        wide = group.pivot_table(index=CONDITION, columns="method", values="value", observed=True)
        if reference not in wide:
            continue
        block = []
        for other in others:
            if other not in wide or other == reference:
                continue
            pair = wide[[reference, other]].dropna()
            difference = pair[reference] - pair[other]
            if is_lower_better(metric):
                difference = -difference
            nonzero = difference[difference != 0]
            p_value = float(wilcoxon(nonzero).pvalue) if len(nonzero) >= 2 else float("nan")
            block.append(
                {
                    "task": task,
                    "metric": metric,
                    "method": other,
                    "n": len(pair),
                    "mean_difference": float(difference.mean()) if len(pair) else float("nan"),
                    "reference_better": int((difference > 0).sum()),
                    "p_value": p_value,
                }
            )
        adjusted = holm([row["p_value"] for row in block])
        for row, p_holm in zip(block, adjusted, strict=True):
            row["p_holm"] = float(p_holm)
        rows += block
    columns = ["task", "metric", "method", "n", "mean_difference", "reference_better", "p_value", "p_holm"]
    return pd.DataFrame(rows, columns=columns)
