"""The training history of a model trained in stages: one table per logged metric, a ``stage`` column."""

from __future__ import annotations

import pandas as pd

__all__ = ["merge_history"]


def merge_history(history: dict, stage_history: dict, stage: str) -> dict:
    """Append one stage's logged metrics to the model's history (new metric names included).

    Examples
    --------
    >>> first = merge_history({}, {"loss": pd.DataFrame({"loss": [2.0, 1.0]})}, "state")
    >>> merged = merge_history(first, {"loss": pd.DataFrame({"loss": [0.5]})}, "diffusion")
    >>> merged["loss"]["stage"].tolist()
    ['state', 'state', 'diffusion']
    """
    merged = dict(history)
    for key, frame in stage_history.items():
        frame = frame.copy()
        frame["stage"] = stage
        merged[key] = (
            pd.concat([merged[key], frame], ignore_index=True) if key in merged else frame.reset_index(drop=True)
        )
    return merged
