"""Run methods on out-of-distribution tasks and collect tidy metrics."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import pandas as pd
from anndata import AnnData

from sxdiff.metrics import evaluate
from sxdiff.model import (
    AdditiveBaseline,
    ControlBaseline,
    LinearEmbeddingBaseline,
    MeanShiftBaseline,
    NearestDrugBaseline,
    PerturbedMeanBaseline,
    RidgeBaseline,
    StateMatchedBaseline,
)

from ._tasks import TASKS, Fold, Task, ensure_drug_features

__all__ = ["METHODS", "MethodName", "predict_fold", "run_fold", "run_tasks", "summarize"]

logger = logging.getLogger(__name__)

MethodName = Literal[
    "control", "perturbed_mean", "mean_shift", "nearest_drug", "ridge", "additive", "linear_embedding", "state_matched"
]
METHODS = {
    "control": ControlBaseline,
    "perturbed_mean": PerturbedMeanBaseline,
    "mean_shift": MeanShiftBaseline,
    "nearest_drug": NearestDrugBaseline,
    "ridge": RidgeBaseline,
    "additive": AdditiveBaseline,
    "linear_embedding": LinearEmbeddingBaseline,
    "state_matched": StateMatchedBaseline,
}


def predict_fold(task: Task, fold: Fold, method: MethodName) -> list[tuple[str, AnnData, AnnData, AnnData]]:
    """Fit ``method`` on the fold's training cells and predict its test conditions in each test context.

    Returns
    -------
    One ``(context, predicted, true, control)`` tuple per test context; condition columns are strings.
    """
    adata = fold.adata
    if method in ("nearest_drug", "ridge"):
        ensure_drug_features(adata)
    split = adata.obs["sxdiff_split"].astype(str)
    train = adata[split != "test"]
    test = adata[split == "test"]
    context = adata.obs[task.context_key].astype(str)
    test_contexts = test.obs[task.context_key].astype(str).unique()
    model = METHODS[method](dose_key=task.dose_key, context_key=task.context_key).fit(train)
    keys = ["perturbation"] + ([task.dose_key] if task.dose_key else [])
    conditions = test.obs[keys].astype(str).drop_duplicates().reset_index(drop=True)
    out = []
    for name in test_contexts:
        source = adata[adata.obs["is_control"].to_numpy() & (context == name).to_numpy()]
        truth = test[test.obs[task.context_key].astype(str) == name].copy()
        truth.obs[keys] = truth.obs[keys].astype(str)
        out.append((name, model.predict(source, conditions), truth, source))
    return out


def run_fold(task: Task, fold: Fold, method: MethodName) -> pd.DataFrame:
    """Fit ``method`` on the fold's training cells, predict its test conditions, return tidy metrics."""
    tables = [
        evaluate(pred, truth, source, dose_key=task.dose_key, context_key=task.context_key)
        for _, pred, truth, source in predict_fold(task, fold, method)
    ]
    table = pd.concat(tables, ignore_index=True)
    table.insert(0, "method", method)
    table.insert(0, "fold", fold.name)
    table.insert(0, "task", task.name)
    return table


def run_tasks(
    tasks: Sequence[str] = tuple(TASKS),
    methods: Sequence[MethodName] = ("control", "mean_shift"),
    seed: int = 0,
) -> pd.DataFrame:
    """Run every method on every fold of every task; one tidy row per (fold, method, condition, metric).

    Examples
    --------
    >>> table = run_tasks(["norman_unseen_combinations"])  # doctest: +SKIP
    """
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"Unknown task(s) {unknown}; choose from {list(TASKS)}.")
    tables = []
    for name in tasks:
        task = TASKS[name]
        for fold in task.folds(seed=seed):
            for method in methods:
                logger.info("task %s, fold %s, method %s", name, fold.name, method)
                tables.append(run_fold(task, fold, method))
    return pd.concat(tables, ignore_index=True)


def summarize(table: pd.DataFrame, metrics: Sequence[str] = ("pearson_delta", "pearson_delta_top50")) -> pd.DataFrame:
    """Mean and standard deviation over conditions (and folds) per task, method and metric."""
    chosen = table[table["metric"].isin(metrics)]
    summary = chosen.groupby(["task", "metric", "method"], sort=True)["value"].agg(["mean", "std", "count"])
    return summary.reset_index()
