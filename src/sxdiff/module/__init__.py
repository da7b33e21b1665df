"""Torch modules: tensors and losses only, no AnnData."""

from ._composition import Composed, Composition, PerturbationComposer, masked_sum
from ._denoiser import Condition, DiTDenoiser, MLPDenoiser, timestep_embedding
from ._drug_encoder import DrugEncoder
from ._statexdiff import StateXDiffModule
from ._vmcs import VMCS, VMCSState, batch_pearson, cross_correlation, negative_binomial_log_prob

__all__ = [
    "VMCS",
    "Composed",
    "Composition",
    "Condition",
    "DiTDenoiser",
    "DrugEncoder",
    "MLPDenoiser",
    "PerturbationComposer",
    "StateXDiffModule",
    "VMCSState",
    "batch_pearson",
    "cross_correlation",
    "masked_sum",
    "negative_binomial_log_prob",
    "timestep_embedding",
]
