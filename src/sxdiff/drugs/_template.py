"""Mechanism templates: signed vectors over genes (and proteins) from a drug's targets.

For drug ``d`` with targets ``k`` of sign ``s_k`` (inhibitor -1, activator +1, unknown 0), the template
over genes ``g`` is

    T[d, g] = s_g                                                    if g is a target,
    T[d, g] = w * mean over (target k, set S with k, g in S) of s_k  otherwise,

i.e. targets keep their sign and the other members of the protein complexes / gene sets that contain a
target receive the target's sign scaled by the propagation weight ``w`` (one step of propagation).
A second, unsigned template marks the same genes with magnitudes only, so targets of unknown action
still say *which* genes a drug touches.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from ._table import DrugTable

__all__ = ["protein_template", "target_template"]

logger = logging.getLogger(__name__)


def target_template(
    table: DrugTable,
    genes: Sequence[str],
    gene_sets: Mapping[str, Sequence[str]] | None = None,
    *,
    propagation: float = 0.5,
    names: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Signed and unsigned target templates over ``genes`` for the drugs of a table.

    Parameters
    ----------
    table
        Drug table with targets and signs.
    genes
        Gene symbols of the template columns (e.g. ``adata.var_names``); targets not among them only act
        through their gene sets.
    gene_sets
        Protein complexes or gene sets (e.g. :func:`read_corum`, :func:`read_gmt`) through which targets
        are propagated one step; ``None`` for no propagation.
    propagation
        Weight ``w`` of propagated entries (0 disables propagation).
    names
        Drugs to include, in this order (default: all rows of ``table``).

    Returns
    -------
    ``(signed, unsigned)``, each of shape ``(n_drugs, n_genes)``, float32, values in [-1, 1] / [0, 1].

    Examples
    --------
    >>> table = DrugTable.genetic(["KLF1"], modality="CRISPRa")
    >>> signed, unsigned = target_template(table, ["KLF1", "GATA1", "ACTB"], {"erythroid": ["KLF1", "GATA1"]})
    >>> signed.tolist()
    [[1.0, 0.5, 0.0]]
    """
    names = list(table.frame.index) if names is None else list(names)
    position = {g: i for i, g in enumerate(genes)}
    sets_of_gene: dict[str, list[list[str]]] = {}
    if gene_sets and propagation:
        for members in gene_sets.values():
            members = list(dict.fromkeys(members))
            for gene in members:
                sets_of_gene.setdefault(gene, []).append(members)
    signed = np.zeros((len(names), len(genes)), dtype=np.float32)
    unsigned = np.zeros_like(signed)
    for row, name in enumerate(names):
        entry = table[name]
        sums: dict[int, float] = {}
        counts: dict[int, int] = {}
        for target, sign in zip(entry["targets"], entry["signs"], strict=True):
            for members in sets_of_gene.get(target, []):
                for gene in members:
                    if gene != target and gene in position:
                        j = position[gene]
                        sums[j] = sums.get(j, 0.0) + sign
                        counts[j] = counts.get(j, 0) + 1
        for j, total in sums.items():
            signed[row, j] = propagation * total / counts[j]
            unsigned[row, j] = propagation
        for target, sign in zip(entry["targets"], entry["signs"], strict=True):
            if target in position:
                signed[row, position[target]] = sign
                unsigned[row, position[target]] = 1.0
    return np.clip(signed, -1.0, 1.0), unsigned


def protein_template(
    table: DrugTable,
    proteins: Sequence[str],
    protein_genes: Mapping[str, Sequence[str]] | None = None,
    gene_sets: Mapping[str, Sequence[str]] | None = None,
    *,
    propagation: float = 0.5,
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """Signed template over protein features: the mean gene template of each protein's coding genes.

    Parameters
    ----------
    table
        Drug table.
    proteins
        Protein feature names (e.g. CITE-seq antibodies ``"CD3"``).
    protein_genes
        Coding genes of each protein (``{"CD3": ["CD3D", "CD3E", "CD3G"]}``); a protein without an entry
        is taken to be coded by the gene of the same name.
    gene_sets, propagation, names
        As in :func:`target_template`.

    Returns
    -------
    Array ``(n_drugs, n_proteins)``.

    Examples
    --------
    >>> table = DrugTable.genetic(["CD3E"], modality="CRISPRi")
    >>> print(protein_template(table, ["CD3", "CD4"], {"CD3": ["CD3D", "CD3E", "CD3G"]}).round(3))
    [[-0.333  0.   ]]
    """
    protein_genes = dict(protein_genes or {})
    coding = {p: list(protein_genes.get(p, [p])) for p in proteins}
    genes = sorted({g for members in coding.values() for g in members})
    signed, _ = target_template(table, genes, gene_sets, propagation=propagation, names=names)
    position = {g: i for i, g in enumerate(genes)}
    columns = [signed[:, [position[g] for g in coding[p]]].mean(axis=1) for p in proteins]
    return np.stack(columns, axis=1) if columns else np.zeros((signed.shape[0], 0), dtype=np.float32)
