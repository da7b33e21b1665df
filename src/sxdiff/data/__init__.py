"""The perturbation data contract: validation, perturbation sets and doses, control matching."""

from ._control_matcher import ControlMatcher
from ._expression import ExpressionScale, detect_expression_scale, log_normalize, mean_expression
from ._perturbation_sets import encode_perturbation_sets, parse_conditions, parse_doses, parse_perturbations
from ._protein import clr, coding_genes, is_isotype_control
from ._validation import PerturbationData, validate_perturbation_data

__all__ = [
    "ControlMatcher",
    "ExpressionScale",
    "PerturbationData",
    "clr",
    "coding_genes",
    "detect_expression_scale",
    "encode_perturbation_sets",
    "is_isotype_control",
    "log_normalize",
    "mean_expression",
    "parse_conditions",
    "parse_doses",
    "parse_perturbations",
    "validate_perturbation_data",
]
