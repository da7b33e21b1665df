"""Virtual Multimodal Cell State (VMCS): a joint RNA + protein state with a shared part and residuals.

Equations (DESIGN §3.1), per minibatch of cells:

- encoders ``f_r = E_r(log1p-normalised RNA)``, ``f_p = E_p(r ⊙ p)`` in R^d;
- orthogonal rotation ``f~_p = Q f_p`` (``torch.nn.utils.parametrizations.orthogonal``);
- agreement per dimension ``rho_j = Corr_batch(f_r[:, j], f~_p[:, j])``;
- soft gate ``a_j = sigmoid(tau (rho_j - rho_0))``;
- shared state ``s = a ⊙ (f_r + f~_p) / 2``, protein residual ``u = (1 - a) ⊙ f~_p``, RNA residual
  ``w = (1 - a) ⊙ f_r``, cell state ``z = [s, u, w]``;
- cell quality ``q_i = r̄ (1 + cos(a ⊙ f_r,i, a ⊙ f~_p,i)) / 2`` in [0, 1], ``r̄`` the mean protein
  reliability;
- losses: RNA reconstruction (negative binomial for counts, Gaussian otherwise), protein reconstruction
  weighted by ``r_k``, alignment ``-Σ a_j rho_j / Σ a_j``, decorrelation ``mean(Corr(s, u)^2)``.

Because ``rho`` is a minibatch statistic, a running average (like batch normalisation's) is kept
during training and used in evaluation mode, so a cell's state does not depend on its batch-mates at
prediction time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn.utils.parametrizations import orthogonal

__all__ = ["VMCS", "VMCSState", "batch_pearson", "cross_correlation", "mlp", "negative_binomial_log_prob"]


def batch_pearson(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation of each column of ``a`` with the same column of ``b`` over the batch (rows).

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[1.0, 0.0], [2.0, 1.0], [3.0, 0.0]])
    >>> [round(v, 4) for v in batch_pearson(x, x * torch.tensor([2.0, -1.0])).tolist()]
    [1.0, -1.0]
    """
    a = a - a.mean(dim=0, keepdim=True)
    b = b - b.mean(dim=0, keepdim=True)
    covariance = (a * b).sum(dim=0)
    return covariance / (a.pow(2).sum(dim=0).sqrt() * b.pow(2).sum(dim=0).sqrt() + eps)


def cross_correlation(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Correlation matrix ``(a.shape[1], b.shape[1])`` between all columns of ``a`` and ``b`` over the batch."""
    a = (a - a.mean(dim=0, keepdim=True)) / (a.std(dim=0, unbiased=False, keepdim=True) + eps)
    b = (b - b.mean(dim=0, keepdim=True)) / (b.std(dim=0, unbiased=False, keepdim=True) + eps)
    return a.T @ b / a.shape[0]


def negative_binomial_log_prob(x: torch.Tensor, mu: torch.Tensor, theta: torch.Tensor, eps: float = 1e-8):
    """Log-likelihood of counts ``x`` under NB with mean ``mu`` and inverse dispersion ``theta``."""
    log_theta_mu = torch.log(theta + mu + eps)
    return (
        theta * (torch.log(theta + eps) - log_theta_mu)
        + x * (torch.log(mu + eps) - log_theta_mu)
        + torch.lgamma(x + theta)
        - torch.lgamma(theta)
        - torch.lgamma(x + 1.0)
    )


def mlp(
    n_in: int, n_hidden: int, n_out: int, n_layers: int = 1, dropout: float = 0.1, norm: bool = True
) -> nn.Sequential:
    """``n_layers`` hidden layers of Linear -> LayerNorm (unless ``norm=False``) -> GELU -> Dropout, then a Linear."""
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(n_layers):
        layers += [nn.Linear(width, n_hidden), nn.LayerNorm(n_hidden) if norm else nn.Identity(), nn.GELU()]
        layers.append(nn.Dropout(dropout))
        width = n_hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


@dataclass
class VMCSState:
    """Outputs of :meth:`VMCS.encode` for a batch of cells (``u``/``w``/``rho`` are ``None`` RNA-only)."""

    z: torch.Tensor
    shared: torch.Tensor
    protein_residual: torch.Tensor | None
    rna_residual: torch.Tensor | None
    f_rna: torch.Tensor
    f_protein: torch.Tensor | None
    rho: torch.Tensor | None
    gate: torch.Tensor
    quality: torch.Tensor


class VMCS(nn.Module):
    """Stage 1 of StateXDiff: the disentangled RNA + protein cell state (torch module, no AnnData).

    Parameters
    ----------
    n_genes
        Number of genes.
    n_proteins
        Number of protein features (measured, translated or knowledge proxies); 0 with ``use_protein=False``.
    n_latent
        Dimension ``d`` of each view; the state ``z`` has ``3 d`` dimensions (the RNA-only state too, so that the
        ``use_protein=False`` ablation changes the information, not the capacity).
    n_hidden, n_layers, dropout
        Size of the encoder and decoder MLPs.
    use_protein
        ``False`` gives the RNA-only model (ablation): ``z = f_r`` with ``f_r`` of width ``3 d``.
    reliability_weighting
        Weight protein inputs and their reconstruction by per-protein reliability ``r_k``.
    gate_temperature, gate_threshold
        ``tau`` and ``rho_0`` of the soft gate.
    gene_likelihood
        ``"nb"`` for counts (the encoder sees ``log1p`` of counts per 10,000), ``"normal"`` for values
        that are already on a continuous scale (log-normalised, L1000).
    running_momentum
        Momentum of the running agreement used in evaluation mode.

    Examples
    --------
    >>> import torch
    >>> vmcs = VMCS(n_genes=50, n_proteins=8, n_latent=4)
    >>> state = vmcs.encode(torch.poisson(torch.ones(16, 50) * 3), torch.randn(16, 8), torch.ones(8))
    >>> state.z.shape, state.quality.shape
    (torch.Size([16, 12]), torch.Size([16]))
    """

    def __init__(
        self,
        n_genes: int,
        n_proteins: int = 0,
        *,
        n_latent: int = 32,
        n_hidden: int = 128,
        n_layers: int = 1,
        dropout: float = 0.1,
        use_protein: bool = True,
        reliability_weighting: bool = True,
        gate_temperature: float = 10.0,
        gate_threshold: float = 0.3,
        gene_likelihood: Literal["nb", "normal"] = "nb",
        running_momentum: float = 0.05,
    ) -> None:
        super().__init__()
        if use_protein and n_proteins < 1:
            raise ValueError("use_protein=True needs at least one protein feature (n_proteins >= 1).")
        if gene_likelihood not in ("nb", "normal"):
            raise ValueError(f"gene_likelihood must be 'nb' or 'normal', not {gene_likelihood!r}.")
        self.n_genes, self.n_proteins, self.n_latent = n_genes, n_proteins, n_latent
        self.use_protein = use_protein
        self.reliability_weighting = reliability_weighting
        self.gate_temperature, self.gate_threshold = gate_temperature, gate_threshold
        self.gene_likelihood = gene_likelihood
        self.running_momentum = running_momentum
        # the RNA-only ablation keeps the state width: its RNA view takes all 3 d dimensions
        self.n_state = 3 * n_latent
        self.rna_encoder = mlp(n_genes, n_hidden, n_latent if use_protein else self.n_state, n_layers, dropout)
        self.rna_decoder = mlp(self.n_state, n_hidden, n_genes, n_layers, dropout)
        self.log_theta = nn.Parameter(torch.full((n_genes,), 2.0))  # NB inverse dispersion / Gaussian log-scale
        if use_protein:
            # no LayerNorm after the first layer: it would undo the reliability weighting of the inputs
            self.protein_encoder = mlp(n_proteins, n_hidden, n_latent, n_layers, dropout, norm=False)
            self.rotation = orthogonal(nn.Linear(n_latent, n_latent, bias=False))
            self.protein_decoder = mlp(self.n_state, n_hidden, n_proteins, n_layers, dropout)
            self.register_buffer("running_rho", torch.zeros(n_latent))
            self.register_buffer("running_rho_initialised", torch.zeros((), dtype=torch.bool))

    # --------------------------------------------------------------------------------------- encoding
    def normalise_rna(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder input: ``log1p`` of counts per 10,000 (``"nb"``), or the values unchanged (``"normal"``)."""
        if self.gene_likelihood == "nb":
            library = x.sum(dim=1, keepdim=True).clamp_min(1.0)
            return torch.log1p(x / library * 1e4)
        return x

    def gate(self, rho: torch.Tensor) -> torch.Tensor:
        """Soft gate ``a = sigmoid(tau (rho - rho_0))``."""
        return torch.sigmoid(self.gate_temperature * (rho - self.gate_threshold))

    def encode(
        self, x: torch.Tensor, protein: torch.Tensor | None = None, reliability: torch.Tensor | None = None
    ) -> VMCSState:
        """Cell states of a batch: expression ``x`` (counts or values), protein features and reliabilities."""
        f_r = self.rna_encoder(self.normalise_rna(x))
        n = x.shape[0]
        if not self.use_protein:
            ones = torch.ones(self.n_state, device=x.device)
            return VMCSState(f_r, f_r, None, None, f_r, None, None, ones, torch.ones(n, device=x.device))
        if protein is None:
            raise ValueError(
                "This VMCS uses protein context: pass protein features (or build it with use_protein=False)."
            )
        reliability = self._reliability(reliability, protein)
        weighted = protein * reliability if self.reliability_weighting else protein
        f_p = self.rotation(self.protein_encoder(weighted))
        if self.training and n > 1:
            rho = batch_pearson(f_r, f_p)
            with torch.no_grad():
                if bool(self.running_rho_initialised):
                    self.running_rho.lerp_(rho.detach(), self.running_momentum)
                else:
                    self.running_rho.copy_(rho.detach())
                    self.running_rho_initialised.fill_(True)
        else:
            rho = self.running_rho if bool(self.running_rho_initialised) else batch_pearson(f_r, f_p)
        a = self.gate(rho)
        shared = a * (f_r + f_p) / 2
        u = (1 - a) * f_p
        w = (1 - a) * f_r
        agreement = nn.functional.cosine_similarity(a * f_r, a * f_p, dim=1)
        quality = reliability.mean() * (1 + agreement) / 2
        return VMCSState(torch.cat([shared, u, w], dim=1), shared, u, w, f_r, f_p, rho, a, quality)

    def _reliability(self, reliability: torch.Tensor | None, protein: torch.Tensor) -> torch.Tensor:
        if reliability is None or not self.reliability_weighting:
            return torch.ones(protein.shape[1], device=protein.device)
        return reliability.to(protein.device).clamp(0.0, 1.0)

    # --------------------------------------------------------------------------------------- decoding
    def decode_rna(self, z: torch.Tensor, library: torch.Tensor | None = None) -> torch.Tensor:
        """Expected expression: NB mean (``softmax * library``; per 10,000 without library) or Gaussian mean."""
        out = self.rna_decoder(z)
        if self.gene_likelihood == "nb":
            scale = torch.softmax(out, dim=-1)
            return scale * (library if library is not None else 1e4)
        return out

    def decode_protein(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstructed protein features."""
        if not self.use_protein:
            raise ValueError("This VMCS has no protein decoder (use_protein=False).")
        return self.protein_decoder(z)

    # --------------------------------------------------------------------------------------- losses
    def losses(
        self,
        x: torch.Tensor,
        state: VMCSState,
        protein: torch.Tensor | None = None,
        reliability: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Per-term losses (means over the batch): ``rna``, ``protein``, ``alignment``, ``decorrelation``."""
        library = x.sum(dim=1, keepdim=True).clamp_min(1.0)
        mean = self.decode_rna(state.z, library)
        if self.gene_likelihood == "nb":
            rna = -negative_binomial_log_prob(x, mean, self.log_theta.exp()).sum(dim=1).mean()
        else:
            log_scale = self.log_theta - 2.0  # start near unit variance
            rna = (0.5 * ((x - mean) / log_scale.exp()).pow(2) + log_scale).sum(dim=1).mean()
        zero = torch.zeros((), device=x.device)
        out = {"rna": rna, "protein": zero, "alignment": zero, "decorrelation": zero}
        if not self.use_protein or protein is None:
            return out
        weights = self._reliability(reliability, protein)
        squared = (self.decode_protein(state.z) - protein).pow(2)
        out["protein"] = (squared * weights).sum(dim=1).mean() / weights.sum().clamp_min(1e-8) * protein.shape[1]
        rho = batch_pearson(state.f_rna, state.f_protein)
        a = self.gate(rho)
        out["alignment"] = -(a * rho).sum() / a.sum().clamp_min(1e-8)
        out["decorrelation"] = cross_correlation(state.shared, state.protein_residual).pow(2).mean()
        return out
