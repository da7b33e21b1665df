"""Torch module of the ProteinTranslator: log-normalised RNA of selected genes -> CLR protein."""

from __future__ import annotations

import torch
from scvi import REGISTRY_KEYS
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data

from ._vmcs import mlp

__all__ = ["ProteinTranslatorModule", "clr_torch"]


def clr_torch(counts: torch.Tensor) -> torch.Tensor:
    """Per-cell centred log-ratio of protein counts: ``log1p(x) - mean_k log1p(x_k)``."""
    logged = torch.log1p(counts)
    return logged - logged.mean(dim=1, keepdim=True)


class ProteinTranslatorModule(BaseModuleClass):
    """MLP regression of CLR protein on standardised ``log1p`` RNA (counts per 10,000) of selected genes.

    Parameters
    ----------
    n_input
        Number of genes in the registered RNA matrix.
    gene_index
        Positions of the translator's genes in the registered RNA matrix.
    n_proteins
        Number of protein features.
    n_hidden, n_layers, dropout
        Size and regularisation of the MLP.
    """

    def __init__(
        self,
        n_input: int,
        gene_index: list[int],
        n_proteins: int,
        n_hidden: int = 128,
        n_layers: int = 1,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.register_buffer("gene_index", torch.as_tensor(gene_index, dtype=torch.long))
        self.register_buffer("gene_mean", torch.zeros(len(gene_index)))
        self.register_buffer("gene_std", torch.ones(len(gene_index)))
        self.n_input = n_input
        self.network = mlp(len(gene_index), n_hidden, n_proteins, n_layers, dropout)

    def standardised_rna(self, counts: torch.Tensor, selected: bool = False) -> torch.Tensor:
        """Standardised ``log1p`` RNA of the translator's genes (``selected``: columns already chosen)."""
        library = counts.sum(dim=1, keepdim=True).clamp_min(1.0)
        genes = counts if selected else counts.index_select(1, self.gene_index)
        return (torch.log1p(genes / library * 1e4) - self.gene_mean) / self.gene_std

    def _get_inference_input(self, tensors: dict[str, torch.Tensor], **kwargs) -> dict:
        return {"x": tensors[REGISTRY_KEYS.X_KEY]}

    @auto_move_data
    def inference(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Predicted CLR protein of a batch of RNA counts."""
        return {"protein": self.network(self.standardised_rna(x))}

    def _get_generative_input(self, tensors, inference_outputs, **kwargs) -> dict:
        return {}

    def generative(self) -> dict:
        """No generative model: the translator is a regression."""
        return {}

    def loss(self, tensors, inference_outputs, generative_outputs, **kwargs) -> LossOutput:
        """Mean squared error to the measured CLR protein."""
        target = clr_torch(tensors[REGISTRY_KEYS.PROTEIN_EXP_KEY])
        per_cell = (inference_outputs["protein"] - target).pow(2).mean(dim=1)
        return LossOutput(loss=per_cell.mean(), reconstruction_loss=per_cell, n_obs_minibatch=per_cell.shape[0])

    @torch.inference_mode()
    def sample(self, tensors: dict[str, torch.Tensor], n_samples: int = 1) -> torch.Tensor:
        """The prediction (deterministic regression), repeated ``n_samples`` times."""
        protein = self.inference(tensors[REGISTRY_KEYS.X_KEY])["protein"]
        return protein.unsqueeze(0).expand(n_samples, *protein.shape)
