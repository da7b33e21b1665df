"""Losses over epochs of both training stages."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._utils import finish, new_axes

__all__ = ["training_history"]


def training_history(
    model_or_history,
    keys: Sequence[str] | None = None,
    *,
    log_scale: bool = True,
    title: str | None = None,
    ax=None,
    show: bool | None = None,
    save: str | Path | None = None,
):
    """One line per logged loss over the epochs of all stages, with the stage boundaries marked.

    Parameters
    ----------
    model_or_history
        A trained :class:`sxdiff.model.StateXDiff` (its ``history_``) or such a history: metric name ->
        DataFrame with the values in a column of that name and a ``stage`` column.
    keys
        Metrics to draw (default: every metric whose name contains ``"loss"``).
    log_scale
        Logarithmic y axis (losses of the two stages differ by orders of magnitude).
    title, ax, show, save
        As in scanpy.

    Returns
    -------
    The matplotlib ``Axes``.

    Examples
    --------
    >>> import pandas as pd, sxdiff
    >>> history = {"train_loss_epoch": pd.DataFrame({"train_loss_epoch": [3.0, 2.0, 1.0], "stage": ["state"] * 3})}
    >>> ax = sxdiff.pl.training_history(history, show=False)
    >>> len(ax.lines)
    1
    """
    history = getattr(model_or_history, "history_", model_or_history)
    if not history:
        raise ValueError("No training history: train the model first (`model.train()`).")
    keys = list(keys) if keys is not None else sorted(k for k in history if "loss" in k)
    missing = [k for k in keys if k not in history]
    if missing or not keys:
        raise KeyError(f"History metrics {missing or keys} not found; available: {sorted(history)}.")
    ax, created = new_axes(ax, (5.0, 3.4))
    boundaries = None
    for key in keys:
        frame = history[key]
        values = np.asarray(frame[key] if key in frame else frame.iloc[:, 0], dtype=float)
        ax.plot(np.arange(1, len(values) + 1), values, label=key)
        if boundaries is None and "stage" in frame:
            stages = frame["stage"].astype(str).to_numpy()
            boundaries = np.flatnonzero(stages[1:] != stages[:-1]) + 1.5
    for x in boundaries if boundaries is not None else []:
        ax.axvline(x, c="0.7", ls="--", lw=1)
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("epoch (all stages)")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7, frameon=False)
    if title is not None:
        ax.set_title(title)
    return finish(ax, created=created, show=show, save=save)
