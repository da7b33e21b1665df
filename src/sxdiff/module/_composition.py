"""Composition of perturbation sets: the one place where the members of a set are combined.

For a set ``{(p_k, d_k)}`` applied to a source cell with standardised state ``z`` the expected change is

``Δ(z) = Σ_k r_k(d_k) · effect(e_k, z) + Σ_{k<l} r_k r_l · interaction(e_k, e_l, z)``

- ``e_k`` is the member's dose-free drug embedding (:meth:`DrugEncoder.embed`) and ``r_k`` its monotone dose
  response, exactly 0 at dose 0 (:meth:`DrugEncoder.dose_response`);
- the member representation is ``h_k = h(e_k) + a_k``: a function of the drug's description plus, for the
  perturbations of the training data, a free identity vector ``a_k`` (zero-initialised; 0 for perturbations the
  model never trained on). The description carries what transfers to unseen perturbations; the identity lets a
  trained perturbation's effect be reproduced exactly, as its own measured mean would be, instead of only as far
  as its description explains it. For a perturbation the model never trained on, the description-driven
  representation (and its dose response) is shrunk towards the average trained perturbation's,
  ``h = h̄ + λ (h(e) - h̄)``, with ``λ`` in [0, 1]
  chosen by the model on perturbations held out of training (1 until then: no shrinkage); descriptions that do not
  transfer then predict the average effect, descriptions that do keep their weight. The state-dependent deviation
  of such a perturbation is scaled by a second factor ``μ`` in [0, 1] chosen the same way (a deviation learned for
  trained perturbations need not transfer to new ones);
- ``effect(e, z) = U (h + g(h, z) - g(h, 0))``: a context-free base effect ``U h(e)`` plus a
  state-dependent deviation that is exactly 0 at the mean control state (``z = 0``), starts at 0 and is
  shrunk by an L2 penalty on its output, so that the response of a cell state moves away from the
  average response only as far as the data push it;
- the interaction term is evaluated on pairs only (exactly 0 for singles), starts at 0 (zero-initialised
  output), is shrunk by an L2 penalty and learns only from training pairs whose members were both measured alone
  (only there is it identified), so an unseen pair of known singles is predicted as the sum of its singles unless
  such pairs taught otherwise.

``Δ`` has two parts that are composed the same way: the change of the latent state (the mean the
diffusion's residual is centred on) and the change of log expression per gene (on the scale the metrics
use), so additivity holds for the expression change itself and is not lost in a non-linear decoder.

For a source cell of a context that had no perturbed cell in training (an unseen patient, cell line or cell type),
the change is carried over as ``τ (Δ(z) - (1 - ν) deviation(z))``: the state-dependent deviation is weighted by
``ν`` and the whole change by ``τ``, both in [0, 1] and chosen by the model from how the training contexts'
measured responses predict each other (:func:`sxdiff.model._context_transfer.choose_context_transfer`; 1 until
then): responses that do not transfer between contexts are shrunk toward no change, state effects that do not
transfer toward the context-free effect.

``composition="pooled"`` is the ablation of the first versions: the dose-scaled member tokens are summed
first and the sum goes through the network, so ``f(A + B) != f(A) + f(B)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

__all__ = ["Composed", "Composition", "PerturbationComposer", "masked_sum"]

Composition = Literal["additive", "interaction", "pooled"]


def masked_sum(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum over the set dimension (1) of ``values`` where ``mask`` is True: the pooling of padded sets.

    Examples
    --------
    >>> import torch
    >>> masked_sum(torch.ones(2, 3, 4), torch.tensor([[True, True, False], [True, False, False]]))[:, 0]
    tensor([2., 1.])
    """
    mask = mask.to(values.dtype)
    while mask.dim() < values.dim():
        mask = mask.unsqueeze(-1)
    return (values * mask).sum(dim=1)


@dataclass
class Composed:
    """Expected change of a batch of (source state, perturbation set) pairs.

    Attributes
    ----------
    latent
        ``(batch, n_state)`` change of the (scaled) latent state.
    genes
        ``(batch, n_genes)`` change of log expression.
    deviation
        ``(batch, n_state + n_genes)`` part of the change due to the source's state (0 without state effects).
    interaction
        ``(batch, n_state + n_genes)`` part of the change due to pairwise interactions (0 for singles).
    """

    latent: torch.Tensor
    genes: torch.Tensor
    deviation: torch.Tensor
    interaction: torch.Tensor


class PerturbationComposer(nn.Module):
    """The expected change of a perturbation set given the source state (see the module docstring).

    Parameters
    ----------
    d_model
        Width of the drug embeddings.
    n_state
        Width of the source state (and of the latent change).
    n_genes
        Number of genes of the expression change.
    n_hidden
        Width of the member representation ``h(e)``.
    composition
        ``"additive"`` (sum of member effects), ``"interaction"`` (plus the shrunk pairwise term) or ``"pooled"``
        (one network on the summed member tokens; the ablation).
    state_effects
        Let the effect depend on the source cell's state (``False``: the same change for every cell).
    n_identities
        Number of perturbations (the first drug indices) with a learned identity vector; 0 disables them. Indices at
        or above it (perturbations described only at prediction time) have none.

    Examples
    --------
    >>> import torch
    >>> composer = PerturbationComposer(8, 4, 10, n_hidden=16, composition="additive")
    >>> e = torch.randn(1, 2, 8).expand(3, 2, 8)  # the same two members in every row
    >>> r = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> out = composer(e, r, torch.ones(3, 2, dtype=torch.bool), torch.zeros(3, 4))
    >>> torch.allclose(out.genes[0] + out.genes[1], out.genes[2], atol=1e-5)
    True
    """

    def __init__(
        self,
        d_model: int,
        n_state: int,
        n_genes: int,
        *,
        n_hidden: int = 256,
        composition: Composition = "interaction",
        state_effects: bool = True,
        n_identities: int = 0,
    ) -> None:
        super().__init__()
        if composition not in ("additive", "interaction", "pooled"):
            raise ValueError(f"composition must be 'additive', 'interaction' or 'pooled', not {composition!r}.")
        self.composition, self.state_effects = composition, state_effects
        self.n_state, self.n_genes = n_state, n_genes
        n_out = n_state + n_genes
        self.member = nn.Sequential(nn.Linear(d_model, n_hidden), nn.GELU(), nn.Linear(n_hidden, n_hidden))
        self.out = nn.Linear(n_hidden, n_out)
        nn.init.zeros_(self.out.bias)
        self.identity = nn.Parameter(torch.zeros(n_identities if composition != "pooled" else 0, n_hidden))
        self.register_buffer("trained", torch.zeros(self.identity.shape[0], dtype=torch.bool))
        self.register_buffer("measured_alone", torch.zeros(self.identity.shape[0], dtype=torch.bool))
        self.register_buffer("novelty_shrinkage", torch.ones(2))  # (λ description, μ state deviation)
        self.register_buffer("context_transfer", torch.ones(2))  # (τ whole change, ν state deviation), new contexts
        # per trained perturbation, a gene-space change per unit of dose response fitted after training to what the
        # network leaves of its measured mean change (see sxdiff.model._measured_effects); 0 until then
        self.register_buffer("measured_correction", torch.zeros(self.identity.shape[0], n_genes))
        if state_effects:
            self.state_in = nn.Linear(n_state, n_hidden)
            self.deviation = nn.Sequential(nn.GELU(), nn.Linear(n_hidden, n_hidden))
            nn.init.zeros_(self.deviation[-1].weight)
            nn.init.zeros_(self.deviation[-1].bias)
        if composition == "interaction":
            self.pair = nn.Sequential(nn.Linear(3 * n_hidden, n_hidden), nn.GELU(), nn.Linear(n_hidden, n_out))
            nn.init.zeros_(self.pair[-1].weight)
            nn.init.zeros_(self.pair[-1].bias)

    def novel(self, drug_index: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Which members ``(batch, set)`` are perturbations the model never trained on (no identity)."""
        n = self.identity.shape[0]
        if n == 0:
            return torch.zeros_like(mask)
        trained = self.trained[drug_index.clamp(max=n - 1)] & (drug_index < n)
        return mask & ~trained

    @torch.no_grad()
    def mark_trained(self, drug_index: torch.Tensor, alone: torch.Tensor | None = None) -> None:
        """Record perturbations (indices) as trained (identity used, never shrunk), and those measured alone."""
        n = self.identity.shape[0]
        self.trained[drug_index[drug_index < n].to(self.trained.device)] = True
        if alone is not None:
            self.measured_alone[alone[alone < n].to(self.trained.device)] = True

    def _identifiable(self, drug_index: torch.Tensor) -> torch.Tensor:
        """Which members were measured alone in training (all of them when identities are off)."""
        n = self.identity.shape[0]
        if n == 0:
            return torch.ones_like(drug_index, dtype=torch.bool)
        return self.measured_alone[drug_index.clamp(max=n - 1)] & (drug_index < n)

    def _shrinkage(self, override: tuple[float, float] | None) -> tuple[float, float]:
        if override is not None:
            return float(override[0]), float(override[1])
        return float(self.novelty_shrinkage[0]), float(self.novelty_shrinkage[1])

    def _measured(self, drug_index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``Σ_k r_k c_k`` over trained members: the fitted corrections toward measured changes (genes part only)."""
        n = self.identity.shape[0]
        index = drug_index.clamp(max=n - 1)
        known = (self.trained[index] & (drug_index < n)).to(weight.dtype)
        genes = (self.measured_correction[index] * (weight * known).unsqueeze(-1)).sum(dim=1)
        return nn.functional.pad(genes, (self.n_state, 0))

    def transferred(self, composed: Composed, new_context: torch.Tensor) -> Composed:
        """``composed`` with rows of sources in new contexts ``(batch,)`` carried over by ``(τ, ν)`` (module docstring).

        Examples
        --------
        >>> import torch
        >>> composer = PerturbationComposer(8, 4, 10, n_hidden=16)
        >>> composer.context_transfer.copy_(torch.tensor([0.5, 0.0]))
        tensor([0.5000, 0.0000])
        >>> ones = torch.ones(2, 14)
        >>> composed = Composed(ones[:, :4], ones[:, 4:], 0.5 * ones, 0 * ones)
        >>> out = composer.transferred(composed, torch.tensor([False, True]))
        >>> out.genes[:, 0].tolist()  # kept; halved after removing the state deviation
        [1.0, 0.25]
        """
        tau, nu = self.context_transfer.to(composed.genes.dtype)
        new = new_context.to(composed.genes.device).unsqueeze(-1)
        total = torch.cat([composed.latent, composed.genes], dim=1)
        carried = tau * (total - (1 - nu) * composed.deviation)
        total = torch.where(new, carried, total)
        deviation = torch.where(new, tau * nu * composed.deviation, composed.deviation)
        interaction = torch.where(new, tau * composed.interaction, composed.interaction)
        return Composed(total[:, : self.n_state], total[:, self.n_state :], deviation, interaction)

    def _deviation(self, h: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """``g(h, z) - g(h, 0)`` for member representations ``h`` (batch, set, hidden): 0 at the mean state."""
        projected = self.state_in(state).unsqueeze(1)
        at_mean = self.state_in.bias.view(1, 1, -1)
        return self.deviation(h + projected) - self.deviation(h + at_mean)

    def forward(
        self,
        embedding: torch.Tensor,
        response: torch.Tensor,
        mask: torch.Tensor,
        state: torch.Tensor,
        tokens: torch.Tensor | None = None,
        drug_index: torch.Tensor | None = None,
        reference: torch.Tensor | None = None,
        novelty_shrinkage: tuple[float, float] | None = None,
        identifiable_pairs_only: bool = False,
    ) -> Composed:
        """Expected change for member embeddings ``(batch, set, d_model)``, dose responses and mask ``(batch, set)``.

        ``state`` is the standardised source state ``(batch, n_state)`` (0 = the mean control state); ``tokens``
        (the dose-scaled drug tokens) are used by ``"pooled"`` only; ``drug_index`` ``(batch, set)`` selects the
        members' identity vectors (none without it). ``reference`` holds the embeddings of the trained
        perturbations ``(n_trained, d_model)``, in the order of ``trained.nonzero()``: with it, novel members are shrunk
        towards their average representation, and their state deviation scaled, by ``novelty_shrinkage`` ``(λ, μ)``
        (default: the stored values). ``identifiable_pairs_only`` (the training loss) evaluates the interaction only on
        pairs whose members were both measured alone: elsewhere the split between member effects and interaction is
        not identified, and an interaction fitted there would extrapolate arbitrarily to new pairs.
        """
        weight = response * mask.to(response.dtype)
        zeros = torch.zeros(state.shape[0], self.out.out_features, device=state.device, dtype=state.dtype)
        if self.composition == "pooled":
            pooled = masked_sum(tokens if tokens is not None else embedding * response.unsqueeze(-1), mask)
            h = self.member(pooled).unsqueeze(1)
            weight = (mask.sum(dim=1, keepdim=True) > 0).to(state.dtype)
        else:
            h = self.member(embedding)
            if drug_index is not None and self.identity.shape[0]:
                known = drug_index < self.identity.shape[0]
                identity = self.identity[drug_index.clamp(max=self.identity.shape[0] - 1)]
                h = h + identity * known.unsqueeze(-1).to(h.dtype)
                if reference is not None:
                    description, _ = self._shrinkage(novelty_shrinkage)
                    average = (self.member(reference) + self.identity[self.trained]).mean(dim=0)
                    shrunk = average + description * (h - average)
                    h = torch.where(self.novel(drug_index, mask).unsqueeze(-1), shrunk, h)
        hidden = (h * weight.unsqueeze(-1)).sum(dim=1)
        total = nn.functional.linear(hidden, self.out.weight) + weight.sum(dim=1, keepdim=True) * self.out.bias
        if drug_index is not None and self.composition != "pooled" and self.identity.shape[0]:
            total = total + self._measured(drug_index, weight)
        deviation = zeros
        if self.state_effects:
            member_weight = weight
            if drug_index is not None and self.composition != "pooled":
                _, state_factor = self._shrinkage(novelty_shrinkage)
                novel = self.novel(drug_index, mask).to(weight.dtype)
                member_weight = weight * (1 - novel + novel * state_factor)
            deviation = nn.functional.linear(masked_sum(self._deviation(h, state), member_weight), self.out.weight)
            total = total + deviation
        interaction = zeros
        if self.composition == "interaction" and embedding.shape[1] > 1:
            first, second = torch.triu_indices(embedding.shape[1], embedding.shape[1], offset=1, device=h.device)
            hk, hl = h[:, first], h[:, second]
            pair_weight = weight[:, first] * weight[:, second]
            if identifiable_pairs_only and drug_index is not None:
                alone = self._identifiable(drug_index)
                pair_weight = pair_weight * (alone[:, first] & alone[:, second]).to(pair_weight.dtype)
            context = self.state_in(state) if self.state_effects else torch.zeros_like(hidden)
            features = torch.cat([hk + hl, hk * hl, context.unsqueeze(1).expand_as(hk)], dim=-1)
            inner = self.pair[:-1](features)
            final = self.pair[-1]
            interaction = (
                nn.functional.linear(masked_sum(inner, pair_weight), final.weight)
                + pair_weight.sum(dim=1, keepdim=True) * final.bias
            )
            total = total + interaction
        return Composed(total[:, : self.n_state], total[:, self.n_state :], deviation, interaction)
