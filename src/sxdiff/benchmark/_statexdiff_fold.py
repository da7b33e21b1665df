"""Train StateXDiff on one fold of a bundled task and return its predictions, scored like the baselines."""

from __future__ import annotations

import logging

from anndata import AnnData

from sxdiff.data._expression import log_normalize

from ._tasks import PROTEIN_PANEL, Fold, Task, ensure_drug_features

__all__ = ["predict_fold_statexdiff", "predict_statexdiff", "train_fold_statexdiff"]

logger = logging.getLogger(__name__)


def _log_normalise(adata: AnnData) -> AnnData:
    out = adata.copy()
    out.X = log_normalize(out.X)
    return out


def train_fold_statexdiff(
    task: Task,
    fold: Fold,
    *,
    epochs: int | None = None,
    seed: int = 0,
    protein_context: bool = True,
    train_kwargs: dict | None = None,
    **model_kwargs,
):
    """Train StateXDiff on the fold's non-test cells as the benchmark does; returns ``(model, adata)``.

    The model trains on counts when the task's data are counts (``layers["counts"]``), otherwise on the
    values. With ``protein_context``, every cell gets the knowledge-proxy protein context of :data:`PROTEIN_PANEL`
    (:func:`sxdiff.pp.protein_context`) before training, computed on the fold's non-test cells only (the proxy
    smooths over neighbours: test cells would leak into it). ``adata`` is the registered copy of those cells.
    """
    import torch

    import sxdiff

    is_test = (fold.adata.obs["sxdiff_split"].astype(str) == "test").to_numpy()
    adata = fold.adata[~is_test].copy()  # the model never sees test cells, not even through protein context
    has_counts = "counts" in adata.layers
    ensure_drug_features(adata)
    protein_key = None
    if protein_context:
        try:
            sxdiff.pp.protein_context(adata, proteins=list(PROTEIN_PANEL))
            protein_key = "sxdiff_protein"
        except ValueError as error:  # no protein of the panel is coded by a gene of this task: RNA only
            if "coding gene" not in str(error):
                raise
            logger.info("%s: no protein context (%s)", task.name, error)
    keys = {
        "perturbation_key": "perturbation",
        "control_value": "control",
        "dose_key": task.dose_key,
        "context_key": task.context_key,
    }
    sxdiff.model.StateXDiff.setup_anndata(
        adata, **keys, layer="counts" if has_counts else None, protein_obsm_key=protein_key
    )
    torch.manual_seed(seed)
    model = sxdiff.model.StateXDiff(adata, **model_kwargs)
    model.train(
        max_epochs=epochs, split_key="sxdiff_split", seed=seed, enable_progress_bar=False, **(train_kwargs or {})
    )
    return model, adata


def predict_statexdiff(
    model, adata: AnnData, conditions, context: str, *, context_key: str, seed: int = 0, n_steps: int = 50
) -> AnnData:
    """Predict ``conditions`` from the registered control cells of ``context``, on the scale the metrics use.

    Predictions on the counts scale are log-normalised (10,000 per cell), like the benchmark's data.
    """
    sources = adata[adata.obs["is_control"].to_numpy() & (adata.obs[context_key].astype(str) == context).to_numpy()]
    sources = sources.copy()
    has_counts = "counts" in adata.layers
    if has_counts:
        sources.X = sources.layers["counts"]
    pred = model.predict(sources, conditions, seed=seed, n_steps=n_steps)
    return _log_normalise(pred) if has_counts else pred


def predict_fold_statexdiff(
    task: Task,
    fold: Fold,
    *,
    epochs: int | None = None,
    seed: int = 0,
    n_steps: int = 50,
    protein_context: bool = True,
    train_kwargs: dict | None = None,
    **model_kwargs,
) -> list[tuple[str, AnnData, AnnData, AnnData]]:
    """Train StateXDiff on a fold (:func:`train_fold_statexdiff`) and predict its test conditions per test context.

    Predictions are on the same scale as the baselines'.

    Returns
    -------
    One ``(context, predicted, true, control)`` tuple per test context, like :func:`predict_fold`.
    """
    model, adata = train_fold_statexdiff(
        task,
        fold,
        epochs=epochs,
        seed=seed,
        protein_context=protein_context,
        train_kwargs=train_kwargs,
        **model_kwargs,
    )
    test = fold.adata[(fold.adata.obs["sxdiff_split"].astype(str) == "test").to_numpy()]
    columns = ["perturbation"] + ([task.dose_key] if task.dose_key else [])
    context = adata.obs[task.context_key].astype(str)
    out = []
    for name in test.obs[task.context_key].astype(str).unique():
        truth = test[(test.obs[task.context_key].astype(str) == name).to_numpy()].copy()
        truth.obs[columns] = truth.obs[columns].astype(str)
        conditions = truth.obs[columns].drop_duplicates().reset_index(drop=True)
        pred = predict_statexdiff(
            model, adata, conditions, name, context_key=task.context_key, seed=seed, n_steps=n_steps
        )
        pred.obs[columns] = pred.obs[columns].astype(str)
        sources = adata.obs_names[adata.obs["is_control"].to_numpy() & (context == name).to_numpy()]
        out.append((name, pred, truth, fold.adata[sources]))
    return out
