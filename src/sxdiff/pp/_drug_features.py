"""Featurise the perturbations of an AnnData: structure, mechanism templates, stored in ``uns``."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from sxdiff.data._perturbation_sets import parse_perturbations
from sxdiff.data._validation import check_control_spacing, resolve_obs_column
from sxdiff.drugs._features import DrugFeatures
from sxdiff.drugs._knowledge import read_corum, read_gmt
from sxdiff.drugs._structure import StructureFeaturizer
from sxdiff.drugs._table import DrugTable

__all__ = ["PerturbationType", "drug_features"]

logger = logging.getLogger(__name__)

PerturbationType = Literal["drug", "CRISPRa", "CRISPRi", "knockout", "overexpression"]


def _as_gene_sets(gene_sets) -> dict[str, list[str]]:
    if gene_sets is None:
        return {}
    if isinstance(gene_sets, str | Path):
        path = Path(gene_sets)
        return read_gmt(path) if path.suffix.lower() == ".gmt" else read_corum(path)
    return {str(k): [str(g) for g in v] for k, v in gene_sets.items()}


def _smiles_from_obs(adata: AnnData, sets: list[tuple[str, ...]], smiles_key: str) -> DrugTable:
    smiles = resolve_obs_column(adata, smiles_key)
    rows = [
        (members[0], s)
        for members, s in zip(sets, smiles, strict=True)
        if len(members) == 1 and isinstance(s, str) and s.strip()
    ]
    frame = pd.DataFrame(rows, columns=["drug", "smiles"]).drop_duplicates()
    return DrugTable.from_dataframe(frame, name_col="drug", smiles_col="smiles", source=f"obs[{smiles_key!r}]")


def _protein_names(adata) -> list[str] | None:
    mods = getattr(adata, "mod", None)
    if mods is not None and "prot" in mods:
        return [str(p) for p in mods["prot"].var_names]
    if "sxdiff_protein" in getattr(adata, "obsm", {}):
        value = adata.obsm["sxdiff_protein"]
        if isinstance(value, pd.DataFrame):
            return [str(c) for c in value.columns]
        names = adata.uns.get("sxdiff_protein", {}).get("names")
        if names is not None:
            return [str(n) for n in names]
    return None


def _infer_perturbation_type(adata: AnnData, sets) -> str:
    """The perturbation type recorded in ``obs["perturbation_type"]`` (one value among perturbed cells), or "drug"."""
    if "perturbation_type" not in adata.obs:
        return "drug"
    perturbed = np.array([len(s) > 0 for s in sets])
    values = pd.unique(adata.obs["perturbation_type"].astype(str).to_numpy()[perturbed])
    allowed = set(PerturbationType.__args__)  # type: ignore[attr-defined]
    if len(values) == 1 and values[0] in allowed:
        logger.info("Perturbation type %r, from obs['perturbation_type'].", values[0])
        return str(values[0])
    return "drug"


def drug_features(
    adata: AnnData,
    drug_key: str = "perturbation",
    *,
    smiles_key: str | None = None,
    drug_table: DrugTable | pd.DataFrame | None = None,
    control_value: str = "control",
    delimiter: str = "+",
    perturbation_type: PerturbationType | None = None,
    use_bundled_tables: bool = True,
    gene_sets: Mapping[str, Sequence[str]] | str | Path | None = None,
    propagation: float = 0.5,
    protein_genes: Mapping[str, Sequence[str]] | None = None,
    radius: int = 2,
    n_bits: int = 1024,
    descriptors: bool = True,
    allow_structure_free: bool = False,
    key_added: str = "sxdiff_drugs",
    copy: bool = False,
) -> AnnData | None:
    """Describe every perturbation by its structure and mechanism, once, in ``adata.uns[key_added]``.

    Drugs get RDKit features of their canonical SMILES (Morgan count fingerprints and standardised 2D
    descriptors) and a signed target template over the genes of ``adata`` (inhibitor -1, activator +1,
    propagated one step through ``gene_sets``). Genetic perturbations (``perturbation_type="CRISPRa"``,
    ...) have no structure and one target gene, the perturbation's name. Combinations (``"A+B"``) are
    featurised member by member: the features of a combination are the *set* of its members' rows.
    Nothing is stored per cell.

    Where information comes from, in order of priority: ``drug_table``, then the ``smiles_key`` column,
    then the tables bundled with sxdiff (chemCPA sci-Plex3 SMILES, DrugCentral targets and SMILES, LINCS
    compound SMILES; see :meth:`sxdiff.drugs.DrugTable.bundled`). Names are matched after normalisation
    (case, punctuation, salt words).

    Parameters
    ----------
    adata
        Annotated data (AnnData or MuData).
    drug_key
        ``obs`` column of perturbation labels.
    smiles_key
        Optional ``obs`` column with each cell's SMILES (single perturbations only).
    drug_table
        A :class:`~sxdiff.drugs.DrugTable`, or a DataFrame with columns ``drug`` and any of ``smiles``,
        ``targets`` (``|``-separated genes), ``action`` (``INHIBITOR``, ``agonist``, ... or -1/0/1), ``moa``.
    control_value
        Label of control cells (no features).
    delimiter
        Separator of combination members.
    perturbation_type
        ``"drug"``, or a genetic modality: ``"CRISPRa"``/``"overexpression"`` (+1), ``"CRISPRi"``/``"knockout"`` (-1).
        ``None`` (default): the single value of ``obs["perturbation_type"]`` among perturbed cells when the
        data has that column (the sxdiff schema of the bundled and downloaded datasets), otherwise ``"drug"``.
    use_bundled_tables
        Fill missing SMILES and targets from the bundled tables.
    gene_sets
        Protein complexes or gene sets for one-step propagation: a mapping, a GMT file or a CORUM table
        (see :func:`sxdiff.drugs.download_corum`).
    propagation
        Weight of propagated template entries.
    protein_genes
        Coding genes of protein features (when proteins are present), for the protein template.
    radius, n_bits
        Morgan fingerprint radius and length.
    descriptors
        Whether to add RDKit 2D descriptors.
    allow_structure_free
        Accept perturbations with neither SMILES nor targets (zero features; they can be learnt when
        seen in training but not predicted when unseen).
    key_added
        ``uns`` key to write.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None`` (or the copy), with ``adata.uns[key_added]`` holding ``names``, the drug ``table``,
    ``structure``, ``template``, ``template_unsigned``, ``has_structure``, ``has_targets``, ``genes``,
    the fitted ``featurizer`` statistics, the ``gene_sets``, and ``protein_template`` / ``proteins``
    when protein features are present. Read it back with
    ``sxdiff.drugs.DrugFeatures.from_dict(adata.uns[key_added])``.

    Raises
    ------
    ValueError
        Invalid SMILES (each failing drug and its SMILES listed), a perturbation with neither SMILES nor
        targets, one drug given two different molecules.

    Examples
    --------
    >>> import sxdiff
    >>> adata = sxdiff.datasets.glioblastoma_panobinostat()
    >>> sxdiff.pp.drug_features(adata, drug_key="perturbation")
    >>> features = sxdiff.drugs.DrugFeatures.from_dict(adata.uns["sxdiff_drugs"])
    >>> features.names, bool(features.has_structure[0]), features.template.shape
    (['panobinostat'], True, (1, 311))
    """
    labels = resolve_obs_column(adata, drug_key)
    if labels.isna().any():
        raise ValueError(f"Column {drug_key!r} has {int(labels.isna().sum())} missing value(s); label every cell.")
    check_control_spacing(labels, control_value, drug_key)
    sets = parse_perturbations(labels, control_value=control_value, delimiter=delimiter, column=drug_key)
    names = sorted({m for s in sets for m in s})
    if not names:
        raise ValueError(f"Column {drug_key!r} holds only the control value {control_value!r}; nothing to featurise.")
    if perturbation_type is None:
        perturbation_type = _infer_perturbation_type(adata, sets)
    sets_for_propagation = _as_gene_sets(gene_sets)
    genes = [str(g) for g in (adata.mod["rna"].var_names if hasattr(adata, "mod") else adata.var_names)]

    table = DrugTable.resolve(
        names,
        drug_table,
        perturbation_type=perturbation_type,
        use_bundled_tables=use_bundled_tables,
        extra=_smiles_from_obs(adata, sets, smiles_key)
        if smiles_key is not None and perturbation_type == "drug"
        else None,
    )
    featurizer = StructureFeaturizer(radius=radius, n_bits=n_bits, use_descriptors=descriptors)
    features = DrugFeatures.build(
        table,
        names,
        genes,
        gene_sets=sets_for_propagation,
        propagation=propagation,
        featurizer=featurizer,
        allow_structure_free=allow_structure_free,
    )
    n_without_targets = int((~features.has_targets).sum())
    undescribed = ~features.has_targets & ~features.has_structure
    if undescribed.all() and len(names) > 1:
        logger.warning(
            "None of the %d perturbations has SMILES or targets: they all get the same representation and a model "
            "cannot tell them apart. Pass `drug_table=` or `smiles_key=`, or `perturbation_type=` for genetic "
            "perturbations.",
            len(names),
        )
    elif n_without_targets:
        logger.info("%d of %d perturbations have no target in the genes or gene sets.", n_without_targets, len(names))
    state = features.to_dict()
    state["params"] = {
        "drug_key": drug_key,
        "control_value": control_value,
        "delimiter": delimiter,
        "perturbation_type": perturbation_type,
        "use_bundled_tables": use_bundled_tables,
        "radius": radius,
        "n_bits": n_bits,
        "descriptors": descriptors,
    }
    proteins = _protein_names(adata)
    if proteins:
        from sxdiff.drugs._template import protein_template

        state["proteins"] = proteins
        state["protein_template"] = protein_template(
            features.table, proteins, protein_genes, sets_for_propagation, propagation=propagation, names=names
        )
    target = adata.copy() if copy else adata
    target.uns[key_added] = state
    logger.info(
        "drug_features: %d perturbations, %d with structure, %d with targets -> uns[%r]",
        len(names),
        int(features.has_structure.sum()),
        int(features.has_targets.sum()),
        key_added,
    )
    return target if copy else None
