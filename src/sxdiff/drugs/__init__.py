"""Drugs: tables of structure and mechanism, RDKit features, target templates, knowledge gene sets."""

from ._features import DrugFeatures
from ._knowledge import download_corum, read_corum, read_gmt
from ._names import normalize_drug_name
from ._structure import (
    StructureFeaturizer,
    canonical_smiles,
    morgan_counts,
    rdkit_descriptors,
    tanimoto,
    tanimoto_matrix,
)
from ._table import ACTION_SIGNS, DrugTable, action_sign
from ._template import protein_template, target_template

__all__ = [
    "ACTION_SIGNS",
    "DrugFeatures",
    "DrugTable",
    "StructureFeaturizer",
    "action_sign",
    "canonical_smiles",
    "download_corum",
    "morgan_counts",
    "normalize_drug_name",
    "protein_template",
    "rdkit_descriptors",
    "read_corum",
    "read_gmt",
    "tanimoto",
    "tanimoto_matrix",
    "target_template",
]
