"""Torch modules: tensors and losses only, no AnnData."""

from ._vmcs import VMCS, VMCSState, batch_pearson, cross_correlation, negative_binomial_log_prob

__all__ = ["VMCS", "VMCSState", "batch_pearson", "cross_correlation", "negative_binomial_log_prob"]
