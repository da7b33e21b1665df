"""Out-of-distribution tasks on the bundled datasets: the data, its natural split and its folds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import scanpy as sc
from anndata import AnnData

from sxdiff import datasets
from sxdiff.pp import ood_split

__all__ = [
    "PROTEIN_PANEL",
    "TASKS",
    "TASK_GROUPS",
    "Fold",
    "Task",
    "TaskName",
    "ensure_drug_features",
    "log_normalized",
    "training_pca_space",
]

TaskName = Literal[
    "glioblastoma_unseen_patient",
    "l1000_unseen_drugs",
    "norman_unseen_combinations",
    "mcfaline23_unseen_cell_line",
    "glioblastoma_unseen_patient_lognorm",
    "synthetic_sparse_unseen_context",
]


@dataclass(frozen=True)
class Fold:
    """One train/test division of a task's data (split column ``sxdiff_split``)."""

    name: str
    adata: AnnData
    holdout: list[str]


@dataclass(frozen=True)
class Task:
    """A bundled dataset, how to prepare it, and its out-of-distribution folds.

    Attributes
    ----------
    name
        Key in :data:`TASKS`.
    load
        Returns the task's data in the standard schema.
    kind
        Split kind of :func:`sxdiff.pp.ood_split`.
    dose_key, context_key
        ``obs`` columns of doses and contexts.
    fold_holdouts
        The held-out values of each fold, from the prepared data.
    keep_counts
        Keep raw counts in ``layers["counts"]`` (count data only), so that a model can train on them;
        ``False``: the folds carry log-normalised values only (see :meth:`without_counts`).
    """

    name: TaskName
    load: Callable[[], AnnData]
    kind: str
    dose_key: str | None
    context_key: str = "context"
    fold_holdouts: Callable[[AnnData], list[list[str]]] = field(default=lambda adata: [[]])
    keep_counts: bool = True

    def folds(self, seed: int = 0) -> Iterator[Fold]:
        """Yield the folds: the prepared data with the split written to ``obs["sxdiff_split"]``."""
        adata = log_normalized(self.load())
        if not self.keep_counts and "counts" in adata.layers:
            del adata.layers["counts"]
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

    def without_counts(self) -> Task:
        """The same task run from log-normalised values only: its folds have no ``layers["counts"]``.

        A model then trains on the log1p values in ``X`` (the shape of most public data) instead of
        counts. Tasks whose data are not counts are unchanged apart from the name (``<name>_lognorm``).

        Examples
        --------
        >>> from sxdiff.benchmark import TASKS
        >>> task = TASKS["glioblastoma_unseen_patient"].without_counts()
        >>> task.name
        'glioblastoma_unseen_patient_lognorm'
        >>> "counts" in next(task.folds()).adata.layers
        False
        """
        return replace(self, name=f"{self.name}_lognorm", keep_counts=False)


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


def _each_context(adata: AnnData) -> list[list[str]]:
    """Leave one context (patient, cell line) out per fold."""
    return [[c] for c in sorted(adata.obs["context"].astype(str).unique())]


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


# Proteins of the knowledge-proxy protein context in the benchmark: common CITE-seq antibody targets and
# proteins of proliferation, stress and drug-response programmes; those without a coding gene among a
# dataset's genes are dropped (L1000 landmark genes keep a handful).
PROTEIN_PANEL = (
    "CD3", "CD4", "CD8", "CD14", "CD19", "CD44", "CD45", "CD74", "CD56", "CD69", "HLA-DR", "EPCAM", "EGFR",
    "VIM", "MKI67", "TOP2A", "CDK1", "CCNB1", "CCND1", "CDKN1A", "MYC", "TP53", "MDM2", "HDAC1", "HDAC2",
    "JUN", "FOS", "HSPA1A", "GAPDH", "STAT1", "IRF1", "BCL2", "BAX", "PCNA", "SOX2", "NES", "GFAP", "KLF1",
    "GATA1", "HBG1", "TFRC", "ATF4",
)  # fmt: skip


def _sparse_state_response_with_panel_genes() -> AnnData:
    """The many-gene sparse task, with the coding genes of the benchmark's protein panel among its genes.

    Half of them mark a cell state, the other half are genes nothing affects, so the knowledge-proxy protein
    context that StateXDiff gets in the benchmark carries state information for some proteins and noise for
    the others (ablation ``no_protein`` runs without it).
    """
    from sxdiff.data import coding_genes

    symbols = list(dict.fromkeys(gene for protein in PROTEIN_PANEL for gene in coding_genes(protein)))
    return datasets.synthetic.sparse_state_response(gene_symbols=symbols)


_GLIOBLASTOMA = Task(
    name="glioblastoma_unseen_patient",
    load=datasets.glioblastoma_panobinostat,
    kind="unseen_context",
    dose_key="dose",
    fold_holdouts=_each_context,
)

TASKS: dict[str, Task] = {
    "glioblastoma_unseen_patient": _GLIOBLASTOMA,
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
    "mcfaline23_unseen_cell_line": Task(
        name="mcfaline23_unseen_cell_line",
        load=datasets.mcfaline23_crispri,
        kind="unseen_context",
        dose_key="dose",
        fold_holdouts=_each_context,
    ),
    "glioblastoma_unseen_patient_lognorm": _GLIOBLASTOMA.without_counts(),
    "synthetic_sparse_unseen_context": Task(
        name="synthetic_sparse_unseen_context",
        load=_sparse_state_response_with_panel_genes,
        kind="unseen_context",
        dose_key="dose",
        fold_holdouts=_each_context,
    ),
}

#: Named lists of tasks: ``core`` (the original three, run by the quick profile and ``sxdiff demo``),
#: ``unseen_cell_line`` (a real genetic screen in held-out cell lines) and ``shape_robustness`` (the
#: same kind of task from log-normalised values without counts, and over many sparse genes).
TASK_GROUPS: dict[str, tuple[str, ...]] = {
    "core": ("glioblastoma_unseen_patient", "l1000_unseen_drugs", "norman_unseen_combinations"),
    "unseen_cell_line": ("mcfaline23_unseen_cell_line",),
    "shape_robustness": ("glioblastoma_unseen_patient_lognorm", "synthetic_sparse_unseen_context"),
}
