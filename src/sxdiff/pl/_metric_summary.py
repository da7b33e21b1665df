"""One bar per method with error bars, between the null floor and the split-half ceiling."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ._utils import finish, new_axes

__all__ = ["metric_summary"]

_LIMITS = ("ceiling", "null_floor")


def metric_summary(
    scores: pd.DataFrame,
    metric: str = "pearson_delta_top50",
    *,
    task: str | None = None,
    methods: Sequence[str] | None = None,
    title: str | None = None,
    ax=None,
    show: bool | None = None,
    save: str | Path | None = None,
):
    """Bar chart of a metric per method, with error bars and the ceiling and null floor as lines.

    Bars are means over conditions (per seed, then averaged over seeds); error bars are the standard deviation
    across seeds when a method has several seeds, otherwise across conditions. The split-half ceiling (dashed)
    and null floor (dotted) are drawn when ``scores`` holds ``"ceiling"`` / ``"null_floor"`` rows.

    Parameters
    ----------
    scores
        Tidy scores with ``method``, ``metric``, ``value`` (and optionally ``task``, ``seed``), e.g.
        :attr:`sxdiff.benchmark.BenchmarkResult.scores` or ``scores.csv`` of ``sxdiff benchmark``.
    metric
        Metric to show.
    task
        Restrict to one task (needed when ``scores`` holds several).
    methods
        Methods in drawing order (default: all but the ceiling and floor, sorted).
    title, ax, show, save
        As in scanpy.

    Returns
    -------
    The matplotlib ``Axes``.

    Examples
    --------
    >>> import pandas as pd, sxdiff
    >>> scores = pd.DataFrame({"method": ["a", "a", "b", "ceiling"], "metric": "r", "value": [0.2, 0.4, 0.5, 0.9]})
    >>> ax = sxdiff.pl.metric_summary(scores, "r", show=False)
    >>> len(ax.patches)
    2
    """
    chosen = scores[scores["metric"] == metric]
    if task is not None:
        chosen = chosen[chosen["task"] == task]
    elif "task" in chosen and chosen["task"].nunique() > 1:
        raise ValueError(f"`scores` holds several tasks {sorted(chosen['task'].unique())}; pass `task=`.")
    if chosen.empty:
        raise ValueError(f"No scores for metric {metric!r}{f' in task {task!r}' if task else ''}.")
    if methods is None:
        methods = sorted(m for m in chosen["method"].unique() if m not in _LIMITS)
    means, errors = [], []
    for method in methods:
        rows = chosen[chosen["method"] == method]
        if rows.empty:
            raise ValueError(f"No scores for method {method!r}; available: {sorted(chosen['method'].unique())}.")
        per_seed = rows.groupby("seed")["value"].mean() if "seed" in rows else rows["value"].agg(["mean"])
        means.append(float(per_seed.mean()))
        spread = per_seed if len(per_seed) > 1 else rows["value"]
        errors.append(float(np.nanstd(spread, ddof=1)) if len(spread) > 1 else 0.0)
    ax, created = new_axes(ax, (max(3.5, 0.7 * len(methods) + 1.5), 3.6))
    positions = np.arange(len(methods))
    ax.bar(positions, means, yerr=errors, color="0.6", capsize=3)
    ax.set_xticks(positions, list(methods), rotation=45, ha="right")
    for name, style in (("ceiling", "--"), ("null_floor", ":")):
        rows = chosen[chosen["method"] == name]
        if not rows.empty:
            ax.axhline(float(rows["value"].mean()), ls=style, c="0.2", lw=1, label=name.replace("_", " "))
    if any(chosen["method"].isin(_LIMITS)):
        ax.legend(fontsize=7, frameon=False)
    ax.set_ylabel(metric)
    if title is not None:
        ax.set_title(title)
    return finish(ax, created=created, show=show, save=save)
