"""Preprocessing: out-of-distribution splits, drug features, SMILES look-up, protein context."""

from ._annotate_smiles import annotate_smiles
from ._drug_features import drug_features
from ._ood_split import ood_split
from ._protein_context import knowledge_proxy, protein_context

__all__ = ["annotate_smiles", "drug_features", "knowledge_proxy", "ood_split", "protein_context"]
