"""The exponential moving average of a module's weights, and swapping it in for the length of a block (sampling)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

__all__ = ["WeightAveraging", "swapped_in"]


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


class WeightAveraging:
    """Exponential moving average of a module's weights (sampling uses the averaged ones).

    The module holds buffers ``ema_weights`` and ``ema_updates``, an ``ema_decay`` and defines which parameters are
    averaged (``_averaged_parameters()``).
    """

    @torch.no_grad()
    def reset_ema(self) -> None:
        """Restart the moving average from the current weights (at the start of the diffusion stage)."""
        self.ema_weights.copy_(parameters_to_vector(self._averaged_parameters()))
        self.ema_updates.zero_()

    @torch.no_grad()
    def update_ema(self) -> None:
        """Exponential moving average of every diffusion-stage weight (drug encoder, composer, denoiser).

        The decay warms up as ``min(ema_decay, (1 + k) / (10 + k))`` after ``k`` updates, so that a short
        training run is not dominated by the initial weights.
        """
        self.ema_updates += 1
        k = float(self.ema_updates)
        decay = min(self.ema_decay, (1 + k) / (10 + k))
        self.ema_weights.lerp_(parameters_to_vector(self._averaged_parameters()), 1 - decay)

    def averaged_weights(self, enabled: bool = True) -> contextlib.AbstractContextManager[None]:
        """Use the averaged weights inside the block (sampling), the live ones again after it."""
        if not enabled or int(self.ema_updates) == 0:
            return contextlib.nullcontext()
        return swapped_in(self.ema_weights, self._averaged_parameters())
