"""Torch modules: tensors and losses only, no AnnData."""

from ._composition import Composed, Composition, PerturbationComposer, masked_sum
from ._decoding import apply_log_change
from ._denoiser import Condition, DiTDenoiser, MLPDenoiser, timestep_embedding
from ._drug_encoder import DrugEncoder
from ._state_anchors import nearest_anchor, state_anchors
from ._statexdiff import StateXDiffModule
from ._triplet import mismatch_partners, quality_triplet
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
    "apply_log_change",
    "batch_pearson",
    "cross_correlation",
    "masked_sum",
    "mismatch_partners",
    "nearest_anchor",
    "negative_binomial_log_prob",
    "quality_triplet",
    "state_anchors",
    "timestep_embedding",
]
