"""Samplers for v-prediction models: DDIM (deterministic with ``eta = 0``) and DDPM, with guidance."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._schedule import CosineSchedule, eps_from_v, x0_from_v

__all__ = ["ddim_sample", "ddim_timesteps", "ddpm_sample", "guided_v"]

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``v = f(x_t, t)`` with ``t`` a LongTensor of one step per row."""


def guided_v(v_conditional: torch.Tensor, v_unconditional: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: ``v_u + scale (v_c - v_u)``; ``scale = 1`` is the conditional model.

    Examples
    --------
    >>> import torch
    >>> guided_v(torch.tensor([2.0]), torch.tensor([1.0]), 3.0).item()
    4.0
    """
    return v_unconditional + scale * (v_conditional - v_unconditional)


def ddim_timesteps(n_train_steps: int, n_sample_steps: int) -> list[int]:
    """Evenly spaced steps from ``T - 1`` down to 0 (``n_sample_steps`` of them, distinct).

    Examples
    --------
    >>> ddim_timesteps(1000, 4)
    [999, 666, 333, 0]
    """
    if not 1 <= n_sample_steps <= n_train_steps:
        raise ValueError(f"n_steps must be between 1 and {n_train_steps}, not {n_sample_steps}.")
    if n_sample_steps == 1:
        return [n_train_steps - 1]
    steps = torch.linspace(n_train_steps - 1, 0, n_sample_steps).round().long().tolist()
    return list(dict.fromkeys(steps))


@torch.no_grad()
def ddim_sample(
    velocity: VelocityFn,
    schedule: CosineSchedule,
    noise: torch.Tensor,
    n_steps: int = 50,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """DDIM sampling (Song et al. 2021) from ``x_T = noise`` to ``x_0`` in ``n_steps`` steps.

    Parameters
    ----------
    velocity
        The (possibly guided) v-prediction ``f(x_t, t)``.
    schedule
        The training noise schedule.
    noise
        Starting Gaussian noise, shape ``(n, ...)``.
    n_steps
        Number of sampling steps.
    eta
        0 for deterministic DDIM; 1 approaches DDPM's stochasticity.
    generator
        Random generator for the ``eta > 0`` noise.

    Returns
    -------
    The sample ``x_0``.
    """
    x = noise
    steps = ddim_timesteps(schedule.n_steps, n_steps)
    for i, step in enumerate(steps):
        t = torch.full((x.shape[0],), step, dtype=torch.long, device=x.device)
        v = velocity(x, t)
        x0 = x0_from_v(schedule, x, v, t)
        eps = eps_from_v(schedule, x, v, t)
        if i == len(steps) - 1:
            return x0
        alpha_bar = schedule.alpha_bar.to(x.device)
        a_t, a_next = alpha_bar[step], alpha_bar[steps[i + 1]]
        sigma = eta * torch.sqrt((1 - a_next) / (1 - a_t) * (1 - a_t / a_next)) if eta > 0 else torch.zeros(())
        direction = torch.sqrt((1 - a_next - sigma**2).clamp(min=0.0)) * eps
        x = a_next.sqrt() * x0 + direction
        if eta > 0:
            x = x + sigma * torch.randn(x.shape, generator=generator, device=x.device)
    return x


@torch.no_grad()
def ddpm_sample(
    velocity: VelocityFn,
    schedule: CosineSchedule,
    noise: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Ancestral DDPM sampling (Ho et al. 2020) through all ``T`` steps, posterior variance ``beta~``."""
    x = noise
    alpha_bar = schedule.alpha_bar.to(x.device)
    for step in range(schedule.n_steps - 1, -1, -1):
        t = torch.full((x.shape[0],), step, dtype=torch.long, device=x.device)
        v = velocity(x, t)
        x0 = x0_from_v(schedule, x, v, t)
        if step == 0:
            return x0
        a_t, a_prev = alpha_bar[step], alpha_bar[step - 1]
        beta = 1 - a_t / a_prev
        mean = (a_prev.sqrt() * beta / (1 - a_t)) * x0 + ((1 - beta).sqrt() * (1 - a_prev) / (1 - a_t)) * x
        variance = beta * (1 - a_prev) / (1 - a_t)
        x = mean + variance.sqrt() * torch.randn(x.shape, generator=generator, device=x.device)
    return x
