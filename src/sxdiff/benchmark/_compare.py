"""StateXDiff next to the baselines on one held-out fold: the scores and the figure of ``sxdiff demo``."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from sxdiff.metrics import evaluate, mean_deltas

from ._run import predict_fold
from ._statexdiff_fold import predict_fold_statexdiff
from ._tasks import TASKS, training_pca_space

__all__ = ["compare_on_fold"]


def compare_on_fold(
    task_name: str = "glioblastoma_unseen_patient",
    holdout: tuple[str, ...] = ("PW034",),
    *,
    epochs: int | None = None,
    seed: int = 0,
    figure: str | Path | None = None,
    train_kwargs: dict | None = None,
    **model_kwargs,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Score control, mean shift and StateXDiff on one fold; optionally draw predicted vs true changes.

    Returns
    -------
    ``(scores, seconds)``: metrics x methods for the first test context, and the StateXDiff training-plus-
    prediction time.
    """
    task = TASKS[task_name]
    fold = next(f for f in task.folds(seed=seed) if f.holdout == list(holdout))
    results = {method: predict_fold(task, fold, method)[0] for method in ("control", "mean_shift")}
    start = time.perf_counter()
    results["StateXDiff"] = predict_fold_statexdiff(
        task, fold, epochs=epochs, seed=seed, train_kwargs=train_kwargs, **model_kwargs
    )[0]
    seconds = {"StateXDiff (train + predict)": time.perf_counter() - start}
    space = training_pca_space(fold)  # the benchmark's distance space, shared by the methods
    keys = {"dose_key": task.dose_key, "context_key": task.context_key, "pca_reference": space}
    scores = {
        method: evaluate(pred, truth, source, **keys).set_index("metric")["value"]
        for method, (_, pred, truth, source) in results.items()
    }
    if figure is not None:
        _draw(results, figure, title=f"Unseen {task.context_key} {'+'.join(holdout)} ({task_name})")
    return pd.DataFrame(scores), seconds


def _draw(results: dict, path: str | Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sxdiff.pl import delta_scatter

    fig, axes = plt.subplots(1, len(results), figsize=(4.4 * len(results), 4.5), sharex=True, sharey=True)
    # Limits and layout first: the labels are moved apart in screen space, so the panels must not rescale or move
    # after they are placed (a later panel's wider range would squeeze an earlier panel's labels together).
    values = np.concatenate([np.concatenate(mean_deltas(p, t, s)) for _, p, t, s in results.values()])
    low, high = float(values.min()), float(values.max())
    margin = 0.05 * (high - low)
    for ax, method in zip(axes, results, strict=True):
        ax.set_xlim(low - margin, high + margin)
        ax.set_ylim(low - margin, high + margin)
        ax.set_title(f"{method}: Pearson r = 0.00")  # reserves the title's space
        ax.set_xlabel("true change from control")
        ax.set_ylabel("predicted change from control")
    fig.suptitle(title)
    fig.tight_layout()
    for ax, (method, (_, pred, truth, source)) in zip(axes, results.items(), strict=True):
        delta_scatter(pred, truth, source, ax=ax, show=False)
        ax.set_title(f"{method}: {ax.get_title()}")
    fig.savefig(path, dpi=130)
    plt.close(fig)
