"""sxdiff: StateXDiff, multimodal latent diffusion for single-cell drug responses out of distribution.

Submodules are imported on first use (``sxdiff.pp``, ``sxdiff.datasets``, ...), so ``import sxdiff``
is cheap and does not import torch or scvi-tools.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sxdiff")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

logging.getLogger(__name__).addHandler(logging.NullHandler())

_SUBMODULES = ("benchmark", "data", "datasets", "diffusion", "drugs", "metrics", "model", "module", "pl", "pp", "train")

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str):
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'sxdiff' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
