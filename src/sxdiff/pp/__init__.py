"""Preprocessing: out-of-distribution splits, drug features, SMILES look-up."""

from ._annotate_smiles import annotate_smiles
from ._drug_features import drug_features
from ._ood_split import ood_split

__all__ = ["annotate_smiles", "drug_features", "ood_split"]
