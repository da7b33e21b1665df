"""Torch modules: tensors and losses only, no AnnData."""

from ._denoiser import Condition, DiTDenoiser, MLPDenoiser, timestep_embedding
from ._drug_encoder import DrugEncoder
from ._vmcs import VMCS, VMCSState, batch_pearson, cross_correlation, negative_binomial_log_prob

__all__ = [
    "VMCS",
    "Condition",
    "DiTDenoiser",
    "DrugEncoder",
    "MLPDenoiser",
    "VMCSState",
    "batch_pearson",
    "cross_correlation",
    "negative_binomial_log_prob",
    "timestep_embedding",
]
