"""Models: StateXDiff and ProteinTranslator (scvi-tools), and baselines with the same fit/predict interface.

scvi-tools models are imported on first use, so that ``sxdiff.model.MeanShiftBaseline`` stays light.
"""

from __future__ import annotations

import importlib

from ._baselines import ControlBaseline, MeanShiftBaseline
from ._baselines_drug import AdditiveBaseline, NearestDrugBaseline, RidgeBaseline
from ._baselines_literature import LinearEmbeddingBaseline, PerturbedMeanBaseline
from ._baselines_state import StateMatchedBaseline

_LAZY = {"ProteinTranslator": "._protein_translator", "StateXDiff": "._statexdiff"}

__all__ = [
    "AdditiveBaseline",
    "ControlBaseline",
    "LinearEmbeddingBaseline",
    "MeanShiftBaseline",
    "NearestDrugBaseline",
    "PerturbedMeanBaseline",
    "ProteinTranslator",
    "RidgeBaseline",
    "StateMatchedBaseline",
    "StateXDiff",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sxdiff.model' has no attribute {name!r}")
