"""Torch module of the ProteinTranslator: log-normalised RNA -> principal components -> CLR protein.

Two predictors share one input, the whitened principal-component scores of the translator's genes: a
linear map (ridge regression, fitted in closed form by the model and stored as buffers) and an MLP
(trained by gradient descent). ``network_share`` says, per protein, how much of the prediction comes
from the MLP (0: linear map only, 1: MLP only, 0.5: their mean); the model sets it by cross-validation.
"""

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
    """Linear map and MLP from the principal components of ``log1p`` RNA (counts per 10,000) to CLR protein.

    Buffers (set by :class:`~sxdiff.model.ProteinTranslator`, saved with the weights):

    - ``gene_index``: positions of the translator's genes in the registered RNA matrix;
    - ``gene_mean``, ``projection``: centring and the genes x components map to whitened PCA scores
      (zero columns when the reference has fewer cells than components);
    - ``linear_weight``, ``linear_bias``: the ridge regression of each protein on the scores;
    - ``network_share``: per protein, the weight of the MLP in the prediction (the rest is linear).

    Parameters
    ----------
    n_input
        Number of genes in the registered RNA matrix.
    gene_index
        Positions of the translator's genes in the registered RNA matrix.
    n_proteins
        Number of protein features.
    n_components
        Number of principal components (input width of both predictors).
    n_hidden, n_layers, dropout
        Size and regularisation of the MLP.
    """

    def __init__(
        self,
        n_input: int,
        gene_index: list[int],
        n_proteins: int,
        n_components: int = 30,
        n_hidden: int = 128,
        n_layers: int = 1,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        n_genes = len(gene_index)
        self.register_buffer("gene_index", torch.as_tensor(gene_index, dtype=torch.long))
        self.register_buffer("gene_mean", torch.zeros(n_genes))
        self.register_buffer("projection", torch.zeros(n_genes, n_components))
        self.register_buffer("linear_weight", torch.zeros(n_components, n_proteins))
        self.register_buffer("linear_bias", torch.zeros(n_proteins))
        self.register_buffer("network_share", torch.zeros(n_proteins))
        self.n_input = n_input
        self.network = mlp(n_components, n_hidden, n_proteins, n_layers, dropout)

    def log_rna(self, counts: torch.Tensor) -> torch.Tensor:
        """``log1p`` counts per 10,000 of the translator's genes, from counts of all registered genes."""
        library = counts.sum(dim=1, keepdim=True).clamp_min(1.0)
        return torch.log1p(counts.index_select(1, self.gene_index) / library * 1e4)

    def scores(self, logged: torch.Tensor) -> torch.Tensor:
        """Whitened principal-component scores of ``log1p`` expression of the translator's genes."""
        return (logged - self.gene_mean) @ self.projection

    def linear(self, scores: torch.Tensor) -> torch.Tensor:
        """The linear map's CLR protein."""
        return scores @ self.linear_weight + self.linear_bias

    def combined(self, scores: torch.Tensor, network: torch.Tensor | None = None) -> torch.Tensor:
        """The translator's prediction: per protein, the chosen mix of the MLP and the linear map.

        ``network``: the MLP's output for ``scores`` if already computed.
        """
        share = self.network_share
        if network is None and not bool(share.any()):
            return self.linear(scores)
        network = self.network(scores) if network is None else network
        return share * network + (1 - share) * self.linear(scores)

    def _get_inference_input(self, tensors: dict[str, torch.Tensor], **kwargs) -> dict:
        return {"x": tensors[REGISTRY_KEYS.X_KEY]}

    @auto_move_data
    def inference(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The MLP's CLR protein (``network``, what training fits) and the translator's (``protein``)."""
        scores = self.scores(self.log_rna(x))
        network = self.network(scores)
        return {"network": network, "protein": self.combined(scores, network)}

    def _get_generative_input(self, tensors, inference_outputs, **kwargs) -> dict:
        return {}

    def generative(self) -> dict:
        """No generative model: the translator is a regression."""
        return {}

    def loss(self, tensors, inference_outputs, generative_outputs, **kwargs) -> LossOutput:
        """Mean squared error of the MLP to the measured CLR protein (the linear map is fitted in closed form)."""
        target = clr_torch(tensors[REGISTRY_KEYS.PROTEIN_EXP_KEY])
        per_cell = (inference_outputs["network"] - target).pow(2).mean(dim=1)
        return LossOutput(loss=per_cell.mean(), reconstruction_loss=per_cell, n_obs_minibatch=per_cell.shape[0])

    @torch.inference_mode()
    def sample(self, tensors: dict[str, torch.Tensor], n_samples: int = 1) -> torch.Tensor:
        """The prediction (deterministic regression), repeated ``n_samples`` times."""
        protein = self.inference(tensors[REGISTRY_KEYS.X_KEY])["protein"]
        return protein.unsqueeze(0).expand(n_samples, *protein.shape)
