"""Out-of-distribution tasks on the bundled datasets: the data, its natural split and its folds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scanpy as sc
from anndata import AnnData

from sxdiff import datasets
from sxdiff.pp import ood_split

__all__ = ["TASKS", "Fold", "Task", "TaskName", "ensure_drug_features", "log_normalized", "training_pca_space"]

TaskName = Literal["glioblastoma_unseen_patient", "l1000_unseen_drugs", "norman_unseen_combinations"]


@dataclass(frozen=True)
class Fold:
    """One train/test division of a task's data (split column ``sxdiff_split``)."""

    name: str
    adata: AnnData
    holdout: list[str]


@dataclass(frozen=True)
class Task:
    """A bundled dataset, how to prepare it, and its out-of-distribution folds."""

    name: TaskName
    load: Callable[[], AnnData]
    kind: str
    dose_key: str | None
    context_key: str = "context"
    fold_holdouts: Callable[[AnnData], list[list[str]]] = field(default=lambda adata: [[]])

    def folds(self, seed: int = 0) -> Iterator[Fold]:
        """Yield the folds: the prepared data with the split written to ``obs["sxdiff_split"]``."""
        adata = log_normalized(self.load())
        for holdout in self.fold_holdouts(adata):
            fold = ood_split(
                adata,
                kind=self.kind,  # type: ignore[arg-type]
                holdout=holdout or None,
                context_key=self.context_key,
                dose_key=self.dose_key,
                validation_fraction=0.0,
                seed=seed,
                copy=True,
            )
            yield Fold(name="+".join(fold.uns["sxdiff_split"]["holdout"]), adata=fold, holdout=holdout)


def log_normalized(adata: AnnData, target_sum: float = 1e4) -> AnnData:
    """Return ``adata`` with log-normalised ``X`` when it holds counts (as recorded in ``uns["sxdiff"]``).

    Other scales (log1p, L1000 log2 intensities) are returned unchanged. The raw counts are kept in
    ``layers["counts"]``.
    """
    if adata.uns.get("sxdiff", {}).get("expression_scale") != "counts":
        return adata
    adata = adata.copy()
    adata.layers["counts"] = adata.X.copy()
    sc.pp.normalize_total(adata, target_sum=target_sum)
    sc.pp.log1p(adata)
    adata.uns["sxdiff"] = {**adata.uns["sxdiff"], "expression_scale": "log1p"}
    return adata


def ensure_drug_features(adata: AnnData) -> None:
    """Describe the perturbations once (``uns["sxdiff_drugs"]``) for every method that needs drug features."""
    if "sxdiff_drugs" not in adata.uns:
        from sxdiff.pp import drug_features

        drug_features(adata, drug_key="perturbation", allow_structure_free=True)


def training_pca_space(fold: Fold):
    """The PCA space of a fold's training cells, in which every method's distances are computed."""
    from sxdiff.metrics import PCASpace

    return PCASpace.fit(fold.adata[(fold.adata.obs["sxdiff_split"].astype(str) != "test").to_numpy()].X)


def _each_patient(adata: AnnData) -> list[list[str]]:
    return [[p] for p in sorted(adata.obs["context"].astype(str).unique())]


def _ten_compounds_with_smiles(adata: AnnData, n_sets: int = 3, n_drugs: int = 10) -> list[list[str]]:
    has_smiles = adata.obs.loc[~adata.obs["is_control"] & adata.obs["smiles"].notna(), "perturbation"]
    compounds = sorted(has_smiles.astype(str).unique())
    rng = np.random.default_rng(0)
    return [sorted(rng.choice(compounds, size=n_drugs, replace=False).tolist()) for _ in range(n_sets)]


def _combinations_with_both_singles(adata: AnnData) -> list[list[str]]:
    labels = adata.obs["perturbation"].astype(str).unique()
    singles = {label for label in labels if "+" not in label}
    combos = sorted(label for label in labels if "+" in label and all(m in singles for m in label.split("+")))
    return [combos]


TASKS: dict[str, Task] = {
    "glioblastoma_unseen_patient": Task(
        name="glioblastoma_unseen_patient",
        load=datasets.glioblastoma_panobinostat,
        kind="unseen_context",
        dose_key="dose",
        fold_holdouts=_each_patient,
    ),
    "l1000_unseen_drugs": Task(
        name="l1000_unseen_drugs",
        load=datasets.l1000_kinase_inhibitors,
        kind="unseen_drug",
        dose_key="dose",
        fold_holdouts=_ten_compounds_with_smiles,
    ),
    "norman_unseen_combinations": Task(
        name="norman_unseen_combinations",
        load=datasets.norman_crispra,
        kind="unseen_combination",
        dose_key="dose",
        fold_holdouts=_combinations_with_both_singles,
    ),
}
