"""Noise schedule and v-parameterisation (Salimans & Ho 2022), independent of any network.

With ``alpha_bar_t`` from the cosine schedule (Nichol & Dhariwal 2021), ``alpha_t = sqrt(alpha_bar_t)``
and ``sigma_t = sqrt(1 - alpha_bar_t)``:

- forward process ``x_t = alpha_t x_0 + sigma_t eps``;
- velocity ``v_t = alpha_t eps - sigma_t x_0``;
- inversions ``x_0 = alpha_t x_t - sigma_t v``, ``eps = sigma_t x_t + alpha_t v``.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "CosineSchedule",
    "eps_from_v",
    "min_snr_weight",
    "v_target",
    "x0_from_v",
]


class CosineSchedule:
    """Cosine schedule of ``T`` discrete steps: ``alpha_bar(t) = cos^2(((t/T + s)/(1 + s)) pi/2)``, normalised.

    Parameters
    ----------
    n_steps
        Number of diffusion steps ``T``.
    offset
        The small offset ``s`` that keeps ``beta`` finite near ``t = 0``.

    Examples
    --------
    >>> schedule = CosineSchedule(1000)
    >>> round(float(schedule.alpha_bar[0]), 4), float(schedule.alpha_bar[-1]) < 1e-4
    (1.0, True)
    """

    def __init__(self, n_steps: int = 1000, offset: float = 0.008) -> None:
        self.n_steps = n_steps
        steps = torch.arange(n_steps + 1, dtype=torch.float64) / n_steps
        f = torch.cos((steps + offset) / (1 + offset) * math.pi / 2) ** 2
        alpha_bar = (f / f[0]).clamp(min=1e-12)
        betas = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
        self.alpha_bar = torch.cumprod(1 - betas, dim=0).float()

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(alpha_t, sigma_t)`` for integer steps ``t`` (any shape), on ``t``'s device."""
        alpha_bar = self.alpha_bar.to(t.device)[t]
        return alpha_bar.sqrt(), (1 - alpha_bar).sqrt()

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio ``alpha_t^2 / sigma_t^2``."""
        alpha, sigma = self.alpha_sigma(t)
        return alpha**2 / sigma**2

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Noised sample ``x_t = alpha_t x_0 + sigma_t eps`` (``t`` has one entry per row)."""
        alpha, sigma = (v.view(-1, *([1] * (x0.dim() - 1))) for v in self.alpha_sigma(t))
        return alpha * x0 + sigma * noise


def _expand(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (like.dim() - 1)))


def v_target(schedule: CosineSchedule, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Velocity ``v_t = alpha_t eps - sigma_t x_0``."""
    alpha, sigma = schedule.alpha_sigma(t)
    return _expand(alpha, x0) * noise - _expand(sigma, x0) * x0


def x0_from_v(schedule: CosineSchedule, x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Clean sample ``x_0 = alpha_t x_t - sigma_t v``."""
    alpha, sigma = schedule.alpha_sigma(t)
    return _expand(alpha, x_t) * x_t - _expand(sigma, x_t) * v


def eps_from_v(schedule: CosineSchedule, x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Noise ``eps = sigma_t x_t + alpha_t v``."""
    alpha, sigma = schedule.alpha_sigma(t)
    return _expand(sigma, x_t) * x_t + _expand(alpha, x_t) * v


def min_snr_weight(schedule: CosineSchedule, t: torch.Tensor, gamma: float = 5.0) -> torch.Tensor:
    """Min-SNR-gamma loss weight for v-prediction (Hang et al. 2023): ``min(SNR, gamma) / (SNR + 1)``."""
    snr = schedule.snr(t)
    return torch.minimum(snr, torch.full_like(snr, gamma)) / (snr + 1)
