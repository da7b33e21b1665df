"""Mechanism-aware drug tokens: structure MLP + target template through tied gene embeddings + dose response."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from ._vmcs import mlp

__all__ = ["DrugEncoder", "DrugTemplate"]

DrugTemplate = Literal["both", "structure", "targets"]


def _log_dose_features(log_dose: torch.Tensor, n: int = 8) -> torch.Tensor:
    """Sinusoidal features of log dose (frequencies over a few orders of magnitude)."""
    frequencies = torch.exp(torch.linspace(math.log(0.25), math.log(4.0), n // 2, device=log_dose.device))
    angles = log_dose.unsqueeze(-1) * frequencies
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


class DrugEncoder(nn.Module):
    """Turn (drug index, dose) pairs into tokens the denoiser attends to.

    For drug ``d`` at dose ``c``:

    - ``e_d = MLP(structure_d) + W (T_d^genes G + T_d^extra E) / ((1 + |T_d|_1) rms(G))`` (each term only when the
      drug has SMILES / targets), where ``G`` are the gene embeddings *tied to the RNA decoder* (its
      output weight), ``E`` embeddings of target genes outside the expression matrix (initialised at 0, so a
      target only unseen drugs have adds nothing rather than noise), and ``T_d`` the signed template; a learned
      token stands in for drugs with neither;
    - the sum is layer-normalised (so that the drug identity is not drowned by the dose token), then
    - a monotone dose response ``g = sigmoid(softplus(k(e_d)) (log c - log ec50(e_d)))``, exactly 0 at dose 0,
      scales the embedding, and a dose token (features of ``log c``) is added: ``token = g e_d + D(log c)``.

    The drug feature tables are non-persistent buffers set by the model (:meth:`set_drug_features`),
    so drugs never seen in training are featurised with the stored statistics and encoded at once.

    Parameters
    ----------
    n_structure, n_template
        Widths of the structure features and of the template (expression genes + extra target genes).
    n_genes
        Number of expression genes (the first template columns, tied to ``gene_embedding``).
    gene_embedding
        Returns the ``(n_genes, h)`` gene embedding matrix (the RNA decoder's output weight).
    d_model
        Token width.
    drug_template
        ``"both"``, ``"structure"`` or ``"targets"`` (ablations).
    """

    def __init__(
        self,
        n_structure: int,
        n_template: int,
        n_genes: int,
        gene_embedding: Callable[[], torch.Tensor],
        gene_embedding_dim: int,
        d_model: int = 128,
        drug_template: DrugTemplate = "both",
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if drug_template not in ("both", "structure", "targets"):
            raise ValueError(f"drug_template must be 'both', 'structure' or 'targets', not {drug_template!r}.")
        self.n_genes, self.drug_template = n_genes, drug_template
        self._gene_embedding = gene_embedding
        self.structure_mlp = mlp(n_structure, d_model, d_model, 1, dropout)
        self.extra_embedding = nn.Parameter(torch.zeros(max(n_template - n_genes, 0), gene_embedding_dim))
        self.template_projection = nn.Linear(gene_embedding_dim, d_model)
        self.missing_token = nn.Parameter(torch.randn(d_model) * 0.02)
        self.embedding_norm = nn.LayerNorm(d_model)
        self.dose_slope = nn.Linear(d_model, 1)
        self.dose_midpoint = nn.Linear(d_model, 1)
        self.dose_token = nn.Sequential(nn.Linear(8, d_model), nn.GELU(), nn.Linear(d_model, d_model))
        self.register_buffer("structure", torch.zeros(0, n_structure), persistent=False)
        self.register_buffer("template", torch.zeros(0, n_template), persistent=False)
        self.register_buffer("has_structure", torch.zeros(0, dtype=torch.bool), persistent=False)
        self.register_buffer("has_targets", torch.zeros(0, dtype=torch.bool), persistent=False)
        self.register_buffer("target_group", torch.zeros(0, dtype=torch.long), persistent=False)

    def set_drug_features(
        self, structure: torch.Tensor, template: torch.Tensor, has_structure: torch.Tensor, has_targets: torch.Tensor
    ) -> None:
        """Install the feature tables of the drug vocabulary (rows = drug indices)."""
        device = self.missing_token.device
        self.structure = structure.float().to(device)
        self.template = template.float().to(device)
        self.has_structure = has_structure.bool().to(device)
        self.has_targets = has_targets.bool().to(device)
        # drugs with the same signed targets share a group (for the triplet loss's negatives); others their own
        groups = torch.arange(self.template.shape[0], device=device)
        if self.template.shape[0]:
            _, first = torch.unique(self.template, dim=0, return_inverse=True)
            groups = torch.where(self.has_targets, first + self.template.shape[0], groups)
        self.target_group = groups

    def embed(self, drug_index: torch.Tensor) -> torch.Tensor:
        """Dose-free drug embeddings ``e_d`` for indices of any shape."""
        use_structure = self.drug_template in ("both", "structure")
        use_targets = self.drug_template in ("both", "targets")
        flat = drug_index.reshape(-1)
        out = torch.zeros(flat.shape[0], self.missing_token.shape[0], device=flat.device)
        described = torch.zeros(flat.shape[0], dtype=torch.bool, device=flat.device)
        if use_structure:
            has = self.has_structure[flat]
            out = out + self.structure_mlp(self.structure[flat]) * has.unsqueeze(-1)
            described |= has
        if use_targets:
            has = self.has_targets[flat]
            template = self.template[flat]
            genes = self._gene_embedding()
            weights = torch.cat([genes, self.extra_embedding], dim=0)
            scale = genes.detach().pow(2).mean().sqrt().clamp_min(1e-8)
            pooled = template @ weights / ((1 + template.abs().sum(dim=1, keepdim=True)) * scale)
            out = out + self.template_projection(pooled) * has.unsqueeze(-1)
            described |= has
        out = out + self.missing_token * (~described).unsqueeze(-1)
        return self.embedding_norm(out).reshape(*drug_index.shape, -1)

    def dose_response(self, embedding: torch.Tensor, dose: torch.Tensor) -> torch.Tensor:
        """Monotone (increasing) response in ``log dose`` in [0, 1), shaped by the drug's embedding; 0 at dose 0."""
        log_dose = torch.log(dose.clamp_min(1e-6))
        slope = nn.functional.softplus(self.dose_slope(embedding)).squeeze(-1) + 1e-3
        response = torch.sigmoid(slope * (log_dose - self.dose_midpoint(embedding).squeeze(-1)))
        return response * (dose > 0).to(response.dtype)

    def tokens(self, embedding: torch.Tensor, response: torch.Tensor, dose: torch.Tensor, mask: torch.Tensor):
        """Tokens ``g e_d + D(log c)`` from embeddings and their dose responses; zero where ``mask`` is False."""
        log_dose = torch.log(dose.clamp_min(1e-6))
        tokens = response.unsqueeze(-1) * embedding + self.dose_token(_log_dose_features(log_dose))
        return tokens * mask.unsqueeze(-1)

    def forward(self, drug_index: torch.Tensor, dose: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Tokens ``(batch, set size, d_model)``; padded positions (``mask`` False) are zero."""
        embedding = self.embed(drug_index)
        return self.tokens(embedding, self.dose_response(embedding, dose), dose, mask)
