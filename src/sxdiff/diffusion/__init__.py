"""Diffusion maths: cosine schedule, v-parameterisation, DDIM/DDPM samplers, classifier-free guidance."""

from ._sampling import ddim_sample, ddim_timesteps, ddpm_sample, guided_v
from ._schedule import CosineSchedule, eps_from_v, min_snr_weight, v_target, x0_from_v

__all__ = [
    "CosineSchedule",
    "ddim_sample",
    "ddim_timesteps",
    "ddpm_sample",
    "eps_from_v",
    "guided_v",
    "min_snr_weight",
    "v_target",
    "x0_from_v",
]
