"""Denoisers of latent state changes: a diffusion Transformer with bidirectional cross-attention, and an MLP.

DiT (Peebles & Xie 2023) over latent tokens: the noised change ``x_t`` (``n_state`` numbers) is cut
into ``n_chunks`` tokens. Condition tokens are the control state's chunks, protein tokens (value and
protein identity, gated by reliability) and drug tokens (with a learned null token that is always
present, so classifier-free guidance can drop every real drug token). In each block the latent tokens
self-attend, attend to the condition tokens, and the condition tokens attend back to the latent tokens
(bidirectional cross-attention); the timestep enters through adaLN-Zero modulation, together with the
sum of the drug tokens (as DiT conditions on class labels), which gives the perturbation a direct path
to every block in addition to attention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ._composition import masked_sum

__all__ = ["Condition", "DiTDenoiser", "MLPDenoiser", "timestep_embedding"]


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps, shape ``(len(t), dim)``."""
    half = dim // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float().unsqueeze(-1) * frequencies
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


@dataclass
class Condition:
    """What the denoiser is conditioned on, for a batch.

    Attributes
    ----------
    control_state
        ``(batch, n_state)`` state of the source control cell.
    drug_tokens
        ``(batch, set size, d_model)`` drug tokens (zeros at padding).
    drug_mask
        ``(batch, set size)`` which drug tokens are real.
    protein
        ``(batch, n_proteins)`` protein features of the source cell, or ``None``.
    reliability
        ``(n_proteins,)`` reliabilities gating the protein tokens, or ``None``.
    """

    control_state: torch.Tensor
    drug_tokens: torch.Tensor
    drug_mask: torch.Tensor
    protein: torch.Tensor | None = None
    reliability: torch.Tensor | None = None


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class DiTBlock(nn.Module):
    """Self-attention, latent->condition and condition->latent cross-attention, MLP; adaLN-Zero on latents."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm_self = nn.LayerNorm(d_model, elementwise_affine=False)
        self.norm_cross = nn.LayerNorm(d_model, elementwise_affine=False)
        self.norm_mlp = nn.LayerNorm(d_model, elementwise_affine=False)
        self.norm_cond = nn.LayerNorm(d_model)
        self.norm_back = nn.LayerNorm(d_model)
        self.self_attention = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.cross_attention = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.back_attention = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(d_model, 9 * d_model))
        nn.init.zeros_(self.modulation[-1].weight)
        nn.init.zeros_(self.modulation[-1].bias)

    def forward(
        self, h: torch.Tensor, cond: torch.Tensor, cond_padding: torch.Tensor, c: torch.Tensor, gate: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        s1, sc1, g1, s2, sc2, g2, s3, sc3, g3 = self.modulation(c).chunk(9, dim=-1)
        x = _modulate(self.norm_self(h), s1, sc1)
        h = h + g1.unsqueeze(1) * self.self_attention(x, x, x, need_weights=False)[0]
        x = _modulate(self.norm_cross(h), s2, sc2)
        kv = self.norm_cond(cond) * gate  # reliability gates protein tokens *after* the norm, so it is not undone
        h = h + g2.unsqueeze(1) * self.cross_attention(x, kv, kv, key_padding_mask=cond_padding, need_weights=False)[0]
        back = self.norm_back(h)
        cond = cond + self.back_attention(self.norm_cond(cond), back, back, need_weights=False)[0]
        x = _modulate(self.norm_mlp(h), s3, sc3)
        h = h + g3.unsqueeze(1) * self.mlp(x)
        return h, cond


class DiTDenoiser(nn.Module):
    """Diffusion Transformer predicting ``v`` for the latent change ``x_t`` given a :class:`Condition`.

    Parameters
    ----------
    n_state
        Size of the state (and of the change being denoised).
    n_proteins
        Number of protein features (0: no protein tokens).
    n_chunks
        Number of latent (and control-state) tokens the state is cut into.
    d_model, n_heads, n_blocks, dropout
        Transformer size.
    """

    def __init__(
        self,
        n_state: int,
        n_proteins: int = 0,
        *,
        n_chunks: int = 8,
        d_model: int = 128,
        n_heads: int = 4,
        n_blocks: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_state, self.n_chunks = n_state, n_chunks
        self.chunk = math.ceil(n_state / n_chunks)
        self.d_model = d_model
        self.latent_in = nn.Linear(self.chunk, d_model)
        self.control_in = nn.Linear(self.chunk, d_model)
        self.latent_position = nn.Parameter(torch.randn(n_chunks, d_model) * 0.02)
        self.control_position = nn.Parameter(torch.randn(n_chunks, d_model) * 0.02)
        self.null_drug = nn.Parameter(torch.randn(d_model) * 0.02)
        self.type_embedding = nn.Parameter(torch.randn(3, d_model) * 0.02)  # control, protein, drug
        self.n_proteins = n_proteins
        if n_proteins:
            self.protein_identity = nn.Parameter(torch.randn(n_proteins, d_model) * 0.02)
            self.protein_value = nn.Parameter(torch.randn(d_model) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(d_model, d_model), nn.SiLU(), nn.Linear(d_model, d_model))
        self.drug_pool = nn.Sequential(nn.Linear(d_model, d_model), nn.SiLU(), nn.Linear(d_model, d_model))
        self.blocks = nn.ModuleList(DiTBlock(d_model, n_heads, dropout) for _ in range(n_blocks))
        self.final_norm = nn.LayerNorm(d_model, elementwise_affine=False)
        self.final_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d_model, 2 * d_model))
        self.out = nn.Linear(d_model, self.chunk)
        for layer in (self.final_modulation[-1], self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def _chunks(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.chunk * self.n_chunks - x.shape[1]
        if pad:
            x = nn.functional.pad(x, (0, pad))
        return x.view(x.shape[0], self.n_chunks, self.chunk)

    def condition_tokens(self, condition: Condition, drop_drugs: torch.Tensor | None = None):
        """Condition tokens, their padding mask (True = ignore) and their gates ``(1, tokens, 1)``.

        The gate is the protein's reliability for protein tokens and 1 for the others; the blocks apply it to the
        layer-normalised tokens, so an unreliable protein contributes (close to) nothing to the attention.
        """
        batch = condition.control_state.shape[0]
        control = (
            self.control_in(self._chunks(condition.control_state)) + self.control_position + self.type_embedding[0]
        )
        parts, padding = [control], [torch.zeros(batch, self.n_chunks, dtype=torch.bool, device=control.device)]
        ones = torch.ones(self.n_chunks, device=control.device)
        gates = [ones]
        if self.n_proteins and condition.protein is not None:
            gate = condition.reliability if condition.reliability is not None else torch.ones(self.n_proteins)
            gates.append(gate.to(control.device).float().clamp(0.0, 1.0))
            tokens = condition.protein.unsqueeze(-1) * self.protein_value + self.protein_identity
            parts.append(tokens + self.type_embedding[1])
            padding.append(torch.zeros(batch, self.n_proteins, dtype=torch.bool, device=control.device))
        mask = condition.drug_mask
        if drop_drugs is not None:
            mask = mask & ~drop_drugs.unsqueeze(-1)
        drugs = condition.drug_tokens * mask.unsqueeze(-1) + self.type_embedding[2]
        null = (self.null_drug + self.type_embedding[2]).expand(batch, 1, -1)
        parts += [null, drugs]
        padding += [torch.zeros(batch, 1, dtype=torch.bool, device=control.device), ~mask]
        gates.append(torch.ones(1 + mask.shape[1], device=control.device))
        return torch.cat(parts, dim=1), torch.cat(padding, dim=1), torch.cat(gates).view(1, -1, 1)

    def _pooled_drugs(self, condition: Condition, drop_drugs: torch.Tensor | None) -> torch.Tensor:
        """Sum of the real drug tokens (the null token where there are none), for adaLN conditioning."""
        mask = condition.drug_mask if drop_drugs is None else condition.drug_mask & ~drop_drugs.unsqueeze(-1)
        return masked_sum(condition.drug_tokens, mask) + self.null_drug * (mask.sum(dim=1, keepdim=True) == 0)

    def prepare(self, condition: Condition, drop_drugs: torch.Tensor | None = None) -> tuple:
        """What does not depend on ``x_t`` or ``t``: condition tokens, padding, pooled-drug conditioning.

        Sampling computes it once and reuses it at every step (``forward(..., prepared=...)``).
        """
        cond, padding, gate = self.condition_tokens(condition, drop_drugs)
        return cond, padding, gate, self.drug_pool(self._pooled_drugs(condition, drop_drugs))

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        condition: Condition,
        drop_drugs: torch.Tensor | None = None,
        prepared: tuple | None = None,
    ) -> torch.Tensor:
        """Predicted ``v``, shape ``(batch, n_state)``; ``drop_drugs`` (bool per row) hides the drug tokens."""
        cond, padding, gate, drug_c = prepared if prepared is not None else self.prepare(condition, drop_drugs)
        h = self.latent_in(self._chunks(x_t)) + self.latent_position
        c = self.time_mlp(timestep_embedding(t, self.d_model)) + drug_c
        for block in self.blocks:
            h, cond = block(h, cond, padding, c, gate)
        shift, scale = self.final_modulation(c).chunk(2, dim=-1)
        out = self.out(_modulate(self.final_norm(h), shift, scale))
        return out.reshape(x_t.shape[0], -1)[:, : self.n_state]


class MLPDenoiser(nn.Module):
    """Ablation: an MLP on ``[x_t, control state, mean drug token, protein, time]``."""

    def __init__(self, n_state: int, n_proteins: int = 0, *, d_model: int = 128, n_hidden: int = 512, **_) -> None:
        super().__init__()
        self.n_proteins, self.d_model = n_proteins, d_model
        self.null_drug = nn.Parameter(torch.zeros(d_model))
        width = 2 * n_state + 2 * d_model + n_proteins
        self.network = nn.Sequential(
            nn.Linear(width, n_hidden),
            nn.SiLU(),
            nn.Linear(n_hidden, n_hidden),
            nn.SiLU(),
            nn.Linear(n_hidden, n_state),
        )

    def prepare(self, condition: Condition, drop_drugs: torch.Tensor | None = None) -> None:
        """Nothing to precompute (the interface of :meth:`DiTDenoiser.prepare`)."""
        return None

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        condition: Condition,
        drop_drugs: torch.Tensor | None = None,
        prepared: None = None,
    ) -> torch.Tensor:
        """Predicted ``v``."""
        mask = condition.drug_mask
        if drop_drugs is not None:
            mask = mask & ~drop_drugs.unsqueeze(-1)
        drugs = masked_sum(condition.drug_tokens, mask) + self.null_drug * (mask.sum(dim=1, keepdim=True) == 0)
        parts = [x_t, condition.control_state, drugs, timestep_embedding(t, self.d_model)]
        if self.n_proteins:
            protein = condition.protein if condition.protein is not None else torch.zeros(x_t.shape[0], self.n_proteins)
            gate = condition.reliability if condition.reliability is not None else 1.0
            parts.append(protein * gate)
        return self.network(torch.cat(parts, dim=1))
