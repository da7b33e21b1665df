"""All features of a set of drugs in one object: structure, templates and the state to extend them."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ._structure import StructureFeaturizer
from ._table import DrugTable
from ._template import target_template

__all__ = ["DrugFeatures"]

logger = logging.getLogger(__name__)


@dataclass
class DrugFeatures:
    """Features of named perturbations, with everything needed to featurise unseen ones identically.

    Attributes
    ----------
    names
        Perturbation names (row order of every matrix), as written in ``obs``.
    table
        Drug table restricted to ``names`` (row keys are the names).
    structure
        ``(n, n_structure)`` log Morgan counts + standardised RDKit descriptors; zeros where a drug has
        no SMILES (see ``has_structure``).
    template, template_unsigned
        ``(n, len(genes) + len(extra_genes))`` signed and unsigned target templates over ``genes``
        followed by ``extra_genes``.
    has_structure, has_targets
        Which perturbations have SMILES / targets among ``genes`` or gene sets.
    genes
        Expression genes of the model (first template columns; their embeddings are tied to the decoder).
    extra_genes
        Target genes that are not expression genes (e.g. BRAF among the L1000 landmark genes, or a
        CRISPRa target outside the highly variable genes): they get template columns of their own so
        that drugs sharing such a target still share a template entry.
    featurizer
        Fitted :class:`StructureFeaturizer` (training statistics).
    gene_sets
        Gene sets / complexes used for propagation, and ``propagation`` its weight.
    """

    names: list[str]
    table: DrugTable
    structure: np.ndarray
    template: np.ndarray
    template_unsigned: np.ndarray
    has_structure: np.ndarray
    has_targets: np.ndarray
    genes: list[str]
    featurizer: StructureFeaturizer
    extra_genes: list[str] = field(default_factory=list)
    gene_sets: dict[str, list[str]] = field(default_factory=dict)
    propagation: float = 0.5

    @classmethod
    def build(
        cls,
        table: DrugTable,
        names: Sequence[str],
        genes: Sequence[str],
        *,
        gene_sets: Mapping[str, Sequence[str]] | None = None,
        propagation: float = 0.5,
        featurizer: StructureFeaturizer | None = None,
        allow_structure_free: bool = False,
        extra_genes: Sequence[str] | None = None,
    ) -> DrugFeatures:
        """Featurise ``names`` (looked up in ``table``); fits ``featurizer`` on them unless already fitted.

        ``extra_genes=None`` adds a template column for every target gene that is not among ``genes``
        (with a warning that counts them); a list fixes those columns (used when extending).

        Raises
        ------
        ValueError
            Perturbations that are not in the table, or that have neither SMILES nor targets (unless
            ``allow_structure_free=True``: they then get zero features and the model knows them only by
            the ones it learns from their training cells, so they cannot be predicted when unseen).
        """
        names = [str(n) for n in names]
        missing = [n for n in names if n not in table]
        described = [n for n in names if n in table and (table[n]["smiles"] is not None or len(table[n]["targets"]))]
        undescribed = [n for n in names if n not in described]
        if undescribed and not allow_structure_free:
            raise ValueError(
                f"{len(undescribed)} perturbation(s) have neither SMILES nor targets: {undescribed[:20]}"
                f"{' ...' if len(undescribed) > 20 else ''}"
                f"{f' ({len(missing)} are in no drug table)' if missing else ''}. Give them in `drug_table=` (a "
                "DataFrame with columns drug, smiles, targets, action) or an obs column of SMILES (`smiles_key=`), "
                "look SMILES up with `sxdiff.pp.annotate_smiles`, or pass `allow_structure_free=True` to train "
                "them as identity-only perturbations (not predictable when unseen)."
            )
        present = [n for n in names if n in table]
        restricted = table.rename({n: n for n in present})
        if missing:
            placeholder = DrugTable._from_records(
                {n: {"name": n, "smiles": None, "targets": [], "signs": [], "moa": None} for n in missing},
                kind="drug",
                source="structure-free",
            )
            restricted = restricted.merge(placeholder)
        restricted = restricted.subset(names)
        sets = {k: list(v) for k, v in (gene_sets or {}).items()}
        featurizer = featurizer or StructureFeaturizer()
        smiles = [restricted[n]["smiles"] for n in names]
        has_structure = np.array([s is not None for s in smiles])
        if featurizer.descriptor_mean_ is None:
            featurizer.fit([s for s in smiles if s is not None])
        structure = np.zeros((len(names), featurizer.n_features), dtype=np.float32)
        if has_structure.any():
            structure[has_structure] = featurizer.transform([s for s in smiles if s is not None])
        targets = sorted({t for n in names for t in restricted[n]["targets"]})
        absent = [t for t in targets if t not in set(genes)]
        if extra_genes is None:
            extra_genes = absent
            if absent:
                logger.warning(
                    "%d of %d target genes are not in the expression matrix (e.g. %s); each gets a template "
                    "column of its own.",
                    len(absent),
                    len(targets),
                    absent[:5],
                )
        else:
            dropped = [t for t in absent if t not in set(extra_genes)]
            if dropped:
                logger.warning(
                    "%d target gene(s) of the new perturbations were never seen in training and are ignored in "
                    "their templates: %s",
                    len(dropped),
                    dropped[:10],
                )
        columns = list(genes) + list(extra_genes)
        template, unsigned = target_template(restricted, columns, sets, propagation=propagation, names=names)
        return cls(
            names=names,
            table=restricted,
            structure=structure,
            template=template,
            template_unsigned=unsigned,
            has_structure=has_structure,
            has_targets=unsigned.any(axis=1),
            genes=[str(g) for g in genes],
            featurizer=featurizer,
            extra_genes=[str(g) for g in extra_genes],
            gene_sets=sets,
            propagation=float(propagation),
        )

    def extend(self, table: DrugTable, names: Sequence[str], *, allow_structure_free: bool = False) -> DrugFeatures:
        """Add perturbations (e.g. drugs never seen in training) using the *stored* statistics and gene sets."""
        new = [str(n) for n in names if str(n) not in self.names]
        if not new:
            return self
        added = DrugFeatures.build(
            table,
            new,
            self.genes,
            gene_sets=self.gene_sets,
            propagation=self.propagation,
            featurizer=self.featurizer,
            allow_structure_free=allow_structure_free,
            extra_genes=self.extra_genes,
        )
        return DrugFeatures(
            names=self.names + added.names,
            table=self.table.merge(added.table),
            structure=np.vstack([self.structure, added.structure]),
            template=np.vstack([self.template, added.template]),
            template_unsigned=np.vstack([self.template_unsigned, added.template_unsigned]),
            has_structure=np.concatenate([self.has_structure, added.has_structure]),
            has_targets=np.concatenate([self.has_targets, added.has_targets]),
            genes=self.genes,
            featurizer=self.featurizer,
            extra_genes=self.extra_genes,
            gene_sets=self.gene_sets,
            propagation=self.propagation,
        )

    def index(self, name: str) -> int:
        """Row of a perturbation name."""
        try:
            return self.names.index(str(name))
        except ValueError:
            raise KeyError(f"Perturbation {name!r} has no features; add it with `.extend(table, [name])`.") from None

    def set_features(self, perturbation_sets: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Structure features of each perturbation set, as a set: one ``(len(set), n_features)`` array each."""
        width = self.structure.shape[1]
        return [
            self.structure[[self.index(m) for m in members]] if members else np.zeros((0, width), np.float32)
            for members in perturbation_sets
        ]

    def to_dict(self) -> dict:
        """Plain data (strings, numbers, arrays) for ``adata.uns`` and saved models."""
        return {
            "names": list(self.names),
            "table": self.table.to_dict(),
            "structure": self.structure,
            "template": self.template,
            "template_unsigned": self.template_unsigned,
            "has_structure": self.has_structure,
            "has_targets": self.has_targets,
            "genes": list(self.genes),
            "featurizer": self.featurizer.to_dict(),
            "extra_genes": list(self.extra_genes),
            "gene_sets": {k: "|".join(v) for k, v in self.gene_sets.items()},
            "propagation": self.propagation,
        }

    @classmethod
    def from_dict(cls, state: Mapping) -> DrugFeatures:
        """Inverse of :meth:`to_dict` (also after an h5ad round trip of ``adata.uns``)."""
        return cls(
            names=[str(n) for n in state["names"]],
            table=DrugTable.from_dict(state["table"]),
            structure=np.asarray(state["structure"], dtype=np.float32),
            template=np.asarray(state["template"], dtype=np.float32),
            template_unsigned=np.asarray(state["template_unsigned"], dtype=np.float32),
            has_structure=np.asarray(state["has_structure"], dtype=bool),
            has_targets=np.asarray(state["has_targets"], dtype=bool),
            genes=[str(g) for g in state["genes"]],
            featurizer=StructureFeaturizer.from_dict(state["featurizer"]),
            extra_genes=[str(g) for g in state.get("extra_genes", [])],
            gene_sets={str(k): [g for g in str(v).split("|") if g] for k, v in dict(state["gene_sets"]).items()},
            propagation=float(state["propagation"]),
        )
