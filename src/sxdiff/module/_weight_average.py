"""Swapping averaged weights into a set of parameters for the length of a block (sampling with the EMA)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

__all__ = ["swapped_in"]


@contextlib.contextmanager
def swapped_in(weights: torch.Tensor, parameters: Sequence[nn.Parameter]) -> Iterator[None]:
    """Give ``parameters`` the flat vector ``weights`` inside the block, and their own values back after it.

    Examples
    --------
    >>> layer = nn.Linear(2, 1)
    >>> with swapped_in(torch.zeros(3), list(layer.parameters())):
    ...     float(layer.weight.abs().sum())
    0.0
    >>> float(layer.weight.abs().sum()) > 0
    True
    """
    with torch.no_grad():
        live = parameters_to_vector(parameters).clone()
        vector_to_parameters(weights, parameters)
    try:
        yield
    finally:
        with torch.no_grad():
            vector_to_parameters(live, parameters)
