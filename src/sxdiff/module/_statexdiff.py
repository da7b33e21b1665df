"""The StateXDiff module: VMCS state, drug tokens, a composed expected change, and a latent diffusion around it.

Training pairs a perturbed cell ``i`` with a control cell ``j`` of the same context. With states
``z_i``, ``z_j`` from the VMCS, the change to explain is ``z_i - z_j`` (latent) and ``y_i - y_j`` (log
expression, the metrics' scale). Losses (per stage):

- ``"state"``: the VMCS losses on both cells;
- ``"diffusion"``: the expected change ``Δ(z_j, set)`` of :class:`~sxdiff.module.PerturbationComposer` fitted by
  MSE to both changes (plus the L2 shrinkage of its state-dependent and interaction parts); the v-loss
  ``|v^ - v|^2`` (optionally min-SNR weighted) of the latent diffusion of the residual ``z_i - z_j - Δ``; and the
  quality-aware triplet ``q_i max(0, cos(v^_mis, v) - cos(v^, v) + m)`` on the *full* velocity (residual and
  expected change together), with ``v^_mis`` predicted under the perturbation set of another cell of the batch
  whose targets differ (neither set contains the other; in training on a random ``triplet_fraction`` of the
  rows). States are detached (stage 1 frozen);
- ``"all"``: both.
"""

from __future__ import annotations

import contextlib
import math
from typing import Literal, NamedTuple

import torch
from scvi.module.base import BaseModuleClass, LossOutput
from torch import nn
from torch.nn.utils import parameters_to_vector

from sxdiff.diffusion import CosineSchedule, min_snr_weight, v_target

from ._composition import Composed, Composition, PerturbationComposer
from ._decoding import apply_log_change
from ._denoiser import Condition, DiTDenoiser, MLPDenoiser
from ._drug_encoder import DrugEncoder, DrugTemplate
from ._sampling import Sampling
from ._state_anchors import nearest_anchor, nearest_anchor_index, state_anchors
from ._triplet import mismatch_partners, quality_triplet
from ._vmcs import VMCS
from ._weight_average import WeightAveraging

__all__ = ["Stage", "StateXDiffModule"]

Stage = Literal["state", "diffusion", "all"]


class Conditioned(NamedTuple):
    """A batch's denoiser condition and expected change, with the drug parts and anchor states they came from."""

    condition: Condition
    composed: Composed | None
    parts: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # member embeddings, dose responses, tokens
    standardised: torch.Tensor | None  # standardised anchor states of the sources (None without a composer)


class StateXDiffModule(Sampling, WeightAveraging, BaseModuleClass):
    """Tensors and losses of StateXDiff (no AnnData): see the module docstring for the equations.

    Batches are dicts with ``x`` / ``x_control`` (expression of the perturbed cell and its matched
    control), ``protein`` / ``protein_control`` (protein features, optional), ``drug_index``,
    ``drug_dose``, ``drug_mask`` (padded perturbation sets).

    ``composition`` (``"additive"``, ``"interaction"``, ``"pooled"``), ``state_effects`` and the two penalties
    configure the expected change (:class:`~sxdiff.module.PerturbationComposer`); ``shift_head=False`` removes
    it (the diffusion models the whole change, as in the paper).
    """

    def __init__(
        self,
        n_genes: int,
        n_proteins: int,
        n_structure: int,
        n_template: int,
        *,
        gene_likelihood: Literal["nb", "normal"] = "nb",
        n_latent: int = 16,
        n_hidden: int = 128,
        use_protein: bool = True,
        reliability_weighting: bool = True,
        drug_template: DrugTemplate = "both",
        denoiser: Literal["dit", "mlp"] = "dit",
        d_model: int = 128,
        n_blocks: int = 2,
        n_heads: int = 4,
        n_chunks: int = 4,
        n_diffusion_steps: int = 1000,
        cfg_dropout: float = 0.1,
        triplet_weight: float = 0.1,
        triplet_margin: float = 0.1,
        triplet_fraction: float = 0.25,
        min_snr_gamma: float | None = 5.0,
        ema_decay: float = 0.999,
        shift_head: bool = True,
        composition: Composition = "interaction",
        state_effects: bool = True,
        state_effect_penalty: float = 0.1,
        interaction_penalty: float = 1.0,
        n_identities: int = 0,
        n_state_anchors: int = 16,
        stage: Stage = "all",
    ) -> None:
        super().__init__()
        use_protein = use_protein and n_proteins > 0
        self.vmcs = VMCS(
            n_genes,
            n_proteins if use_protein else 0,
            n_latent=n_latent,
            n_hidden=n_hidden,
            use_protein=use_protein,
            reliability_weighting=reliability_weighting,
            gene_likelihood=gene_likelihood,
        )
        self.use_protein = use_protein
        self.n_state = self.vmcs.n_state
        decoder_out = self.vmcs.rna_decoder[-1]
        self.drug_encoder = DrugEncoder(
            n_structure,
            n_template,
            n_genes,
            gene_embedding=lambda: decoder_out.weight,
            gene_embedding_dim=decoder_out.weight.shape[1],
            d_model=d_model,
            drug_template=drug_template,
        )
        denoiser_cls = DiTDenoiser if denoiser == "dit" else MLPDenoiser
        kwargs = {"n_chunks": n_chunks, "n_heads": n_heads, "n_blocks": n_blocks} if denoiser == "dit" else {}
        self.denoiser = denoiser_cls(self.n_state, n_proteins if use_protein else 0, d_model=d_model, **kwargs)
        self.composer = (
            PerturbationComposer(
                d_model,
                self.n_state,
                n_genes,
                n_hidden=2 * n_hidden,
                composition=composition,
                state_effects=state_effects,
                n_identities=n_identities,
            )
            if shift_head
            else None
        )
        self.schedule = CosineSchedule(n_diffusion_steps)
        if not 0.0 < triplet_fraction <= 1.0:
            raise ValueError(f"triplet_fraction must be in (0, 1], not {triplet_fraction!r}.")
        self.cfg_dropout, self.triplet_weight, self.triplet_margin = cfg_dropout, triplet_weight, triplet_margin
        self.triplet_fraction = triplet_fraction
        self.min_snr_gamma, self.ema_decay = min_snr_gamma, ema_decay
        self.state_effect_penalty, self.interaction_penalty = state_effect_penalty, interaction_penalty
        self.stage: Stage = stage
        self.register_buffer("reliability", torch.ones(max(n_proteins, 1)))
        self.register_buffer("state_scale", torch.ones(self.n_state))
        self.register_buffer("state_mean", torch.zeros(self.n_state))
        self.register_buffer("state_std", torch.ones(self.n_state))
        self.register_buffer("nonnegative", torch.tensor(gene_likelihood == "nb"))
        self.register_buffer("ema_weights", parameters_to_vector(self._averaged_parameters()).detach().clone())
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        # the composer sees a source cell's state through its nearest anchor (k-means of the training controls'
        # states), never the cell's own state: see :meth:`anchor`
        self.register_buffer("state_anchors", torch.zeros(n_state_anchors, self.n_state))
        self.register_buffer("n_anchors", torch.zeros((), dtype=torch.long))
        # factor on the sampled residual (the cell-level variation around the predicted change): see :meth:`sample`
        self.register_buffer("variation_scale", torch.ones(()))
        # factor on the within-context spread of the expected change's state-dependent part: see :meth:`sample`
        self.register_buffer("state_spread", torch.ones(()))

    def set_stage(self, stage: Stage) -> None:
        """Select the losses of a stage and make only its parameters trainable.

        ``"state"`` trains the VMCS; ``"diffusion"`` the drug encoder, composer and denoiser (the VMCS, and with it
        the gene embeddings the drug templates go through, is frozen); ``"all"`` everything. Parameters a stage
        does not use get no gradient, which distributed training (DDP) requires.
        """
        self.stage = stage
        for name, parameter in self.named_parameters():
            if stage == "state":
                parameter.requires_grad_(name.startswith("vmcs."))
            elif stage == "diffusion":
                parameter.requires_grad_(not name.startswith("vmcs."))
            else:
                parameter.requires_grad_(True)

    # ------------------------------------------------------------------------------------ calibration, EMA
    @torch.no_grad()
    def calibrate(self, changes: torch.Tensor, control_states: torch.Tensor, nonnegative: bool, seed: int = 0) -> None:
        """Set the statistics the module standardises with, from training pairs.

        The scale of latent changes (unit variance per dimension for the diffusion), the mean and spread of control
        states (the composer sees standardised source states: 0 is the average control cell), the state anchors
        (k-means of the training controls' states, see :meth:`anchor`), and whether expression values are
        non-negative (how :meth:`apply_log_change` changes them).
        """
        device = self.state_scale.device
        self.state_scale = changes.std(dim=0).clamp_min(1e-3).to(device)
        self.state_mean = control_states.mean(dim=0).to(device)
        self.state_std = control_states.std(dim=0).clamp_min(1e-3).to(device)
        self.nonnegative = torch.tensor(bool(nonnegative), device=device)
        anchors = state_anchors(control_states, self.state_anchors.shape[0], seed=seed)
        self.state_anchors.zero_()
        self.state_anchors[: anchors.shape[0]] = anchors.to(device)
        self.n_anchors.fill_(anchors.shape[0])

    @torch.no_grad()
    def set_variation_scale(self, scale: float) -> None:
        """Factor in [0, 1] on the sampled residual (1: the diffusion's full spread; 0: shifted source cells)."""
        if not 0.0 <= float(scale) <= 1.0:
            raise ValueError(f"The variation scale must lie in [0, 1], not {scale}.")
        self.variation_scale.fill_(float(scale))

    @torch.no_grad()
    def set_state_spread(self, scale: float) -> None:
        """Factor in [0, 1] on the within-context spread of the state-dependent change (1: as learned; 0: none).

        At 0 every source of a context gets its context's mean change (see :meth:`sample`).
        """
        if not 0.0 <= float(scale) <= 1.0:
            raise ValueError(f"The state spread must lie in [0, 1], not {scale}.")
        self.state_spread.fill_(float(scale))

    @torch.no_grad()
    def set_protein_reliability(self, reliability: torch.Tensor) -> None:
        """Per-protein reliability in [0, 1] (how far each protein feature is trusted; the gates' weights)."""
        self.reliability = reliability.float().to(self.reliability.device)

    def set_drug_features(self, structure, template, has_structure, has_targets) -> None:
        """Install the feature tables of the drug vocabulary (rows = drug indices; see the drug encoder)."""
        self.drug_encoder.set_drug_features(structure, template, has_structure, has_targets)

    def anchor(self, z: torch.Tensor) -> torch.Tensor:
        """The state the composer sees for source states ``z``: see :func:`~sxdiff.module.nearest_anchor`."""
        return nearest_anchor(z, self.state_anchors[: int(self.n_anchors)], self.state_std)

    def anchor_index(self, z: torch.Tensor) -> torch.Tensor:
        """Which anchor the composer reads for each of the states ``z`` (all 0 without anchors)."""
        if int(self.n_anchors) == 0:
            return torch.zeros(z.shape[0], dtype=torch.long, device=z.device)
        return nearest_anchor_index(z, self.state_anchors[: int(self.n_anchors)], self.state_std)

    def _averaged_parameters(self) -> list[nn.Parameter]:
        """The parameters the EMA averages: everything the diffusion stage trains (all but the VMCS)."""
        return [p for name, p in self.named_parameters() if not name.startswith("vmcs.")]

    # ------------------------------------------------------------------------------------ helpers
    def _protein(self, tensors: dict, key: str) -> torch.Tensor | None:
        return tensors.get(key) if self.use_protein else None

    def encode(self, x: torch.Tensor, protein: torch.Tensor | None):
        """VMCS state of cells."""
        return self.vmcs.encode(x, protein, self.reliability[: protein.shape[1]] if protein is not None else None)

    def condition(
        self,
        z_control,
        protein_control,
        drug_index,
        drug_dose,
        drug_mask,
        novelty_shrinkage: tuple[float, float] | None = None,
        identifiable_pairs_only: bool = False,
    ) -> Conditioned:
        """Denoiser condition and expected change for source states, their protein and perturbation sets.

        Returns them with the drug parts and standardised anchor states they were built from (the training loss
        reuses those); ``condition(...)[:2]`` is ``(condition, composed)``. ``novelty_shrinkage`` overrides the stored
        ``(λ, μ)`` for members the model never trained on; ``identifiable_pairs_only`` is for the training loss (see
        :class:`~sxdiff.module.PerturbationComposer`).
        """
        parts = self._drug_parts(drug_index, drug_dose, drug_mask)
        reliability = self.reliability[: protein_control.shape[1]] if protein_control is not None else None
        condition = Condition(z_control / self.state_scale, parts[2], drug_mask, protein_control, reliability)
        composed, standardised = None, None
        if self.composer is not None:
            standardised = (self.anchor(z_control) - self.state_mean) / self.state_std
            composed = self._compose(
                *parts, drug_index, drug_dose, drug_mask, standardised, novelty_shrinkage, identifiable_pairs_only
            )
        return Conditioned(condition, composed, parts, standardised)

    def _drug_parts(self, drug_index, drug_dose, drug_mask) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Member embeddings, dose responses and tokens of perturbation sets."""
        embedding = self.drug_encoder.embed(drug_index)
        response = self.drug_encoder.dose_response(embedding, drug_dose)
        return embedding, response, self.drug_encoder.tokens(embedding, response, drug_dose, drug_mask)

    def _compose(
        self,
        embedding,
        response,
        tokens,
        drug_index,
        drug_dose,
        drug_mask,
        standardised,
        novelty_shrinkage: tuple[float, float] | None = None,
        identifiable_pairs_only: bool = False,
    ) -> Composed:
        """The composer's expected change from drug parts (:meth:`_drug_parts`) and standardised anchor states."""
        shrinkage = self.composer._shrinkage(novelty_shrinkage)[0]
        reference = None
        novel = self.composer.novel(drug_index, drug_mask)
        if shrinkage != 1.0 and bool(self.composer.trained.any()) and bool(novel.any()):
            reference = self.drug_encoder.embed(self.composer.trained.nonzero()[:, 0])
            # the dose response of a novel member is shrunk the same way, towards the trained drugs' average
            average = self.drug_encoder.dose_response(reference[None, None], drug_dose.unsqueeze(-1)).mean(dim=-1)
            response = torch.where(novel, average + shrinkage * (response - average), response)
        return self.composer(
            embedding,
            response,
            drug_mask,
            standardised,
            tokens,
            drug_index,
            reference,
            novelty_shrinkage,
            identifiable_pairs_only,
        )

    @torch.no_grad()
    def mark_trained_perturbations(self, drug_index: torch.Tensor, alone: torch.Tensor | None = None) -> None:
        """Record the perturbations (drug indices) the diffusion stage trains on (the others are novel).

        ``alone``: those among them measured alone (pairs of these train the interaction).
        """
        if self.composer is not None:
            self.composer.mark_trained(drug_index, alone)

    @torch.no_grad()
    def set_novelty_shrinkage(self, description: float, state: float = 1.0) -> None:
        """Store ``(λ, μ)`` in [0, 1] for perturbations the model never trained on (see the composer)."""
        if self.composer is not None:
            values = torch.tensor([description, state], dtype=torch.float32).clamp(0.0, 1.0)
            self.composer.novelty_shrinkage.copy_(values)

    @torch.no_grad()
    def set_context_transfer(self, whole: float, deviation: float) -> None:
        """Store ``(τ, ν)`` in [0, 1] for sources of contexts without perturbed training cells (see the composer)."""
        if self.composer is not None:
            self.composer.context_transfer.copy_(torch.tensor([whole, deviation]).clamp(0.0, 1.0))

    def log_expression(self, x: torch.Tensor) -> torch.Tensor:
        """Expression on the scale of the metrics: log1p per 10,000 for counts, the values otherwise."""
        return self.vmcs.normalise_rna(x)

    def decoded_log_expression(self, z: torch.Tensor) -> torch.Tensor:
        """Decoded mean expression of states ``z`` on the scale of :meth:`log_expression`."""
        mean = self.vmcs.decode_rna(z)
        return torch.log1p(mean) if self.vmcs.gene_likelihood == "nb" else mean

    def apply_log_change(
        self, log_values: torch.Tensor, change: torch.Tensor, mean: torch.Tensor | None, expressed=None
    ) -> torch.Tensor:
        """Source cells' log expression plus a predicted change (see :func:`~sxdiff.module.apply_log_change`)."""
        return apply_log_change(log_values, change, mean, nonnegative=bool(self.nonnegative), expressed=expressed)

    # ------------------------------------------------------------------------------------ scvi-tools API
    def _get_inference_input(self, tensors: dict, **kwargs) -> dict:
        return {"tensors": tensors}

    def inference(self, tensors: dict) -> dict:
        """States of the perturbed cells and of their matched controls.

        In the ``"diffusion"`` stage the VMCS is frozen: states are computed in eval mode (no dropout) and
        without gradients, exactly as at prediction time and as when ``state_scale`` was calibrated.
        """
        protein, protein_control = self._protein(tensors, "protein"), self._protein(tensors, "protein_control")
        frozen = self.stage == "diffusion"
        training = self.vmcs.training
        self.vmcs.train(training and not frozen)
        try:
            with torch.no_grad() if frozen else contextlib.nullcontext():
                return {
                    "state": self.encode(tensors["x"], protein),
                    "state_control": self.encode(tensors["x_control"], protein_control),
                }
        finally:
            self.vmcs.train(training)

    def _get_generative_input(self, tensors, inference_outputs, **kwargs) -> dict:
        return {}

    def generative(self) -> dict:
        """The generative part is the diffusion, run in :meth:`loss` and :meth:`sample`."""
        return {}

    def loss(self, tensors: dict, inference_outputs: dict, generative_outputs: dict, **kwargs) -> LossOutput:
        """Losses of the current stage (``self.stage``)."""
        x, x_control = tensors["x"], tensors["x_control"]
        state, state_control = inference_outputs["state"], inference_outputs["state_control"]
        n = x.shape[0]
        zero = torch.zeros((), device=x.device)
        terms: dict[str, torch.Tensor] = {}
        total = zero
        if self.stage in ("state", "all"):
            protein, protein_control = self._protein(tensors, "protein"), self._protein(tensors, "protein_control")
            reliability = self.reliability[: protein.shape[1]] if protein is not None else None
            a = self.vmcs.losses(x, state, protein, reliability)
            b = self.vmcs.losses(x_control, state_control, protein_control, reliability)
            rna = (a["rna"] + b["rna"]) / (2 * x.shape[1])
            prot = (a["protein"] + b["protein"]) / 2
            align = (a["alignment"] + b["alignment"]) / 2
            decor = (a["decorrelation"] + b["decorrelation"]) / 2
            total = total + rna + prot + 0.1 * align + decor
            terms.update({"rna": rna, "protein": prot, "alignment": align, "decorrelation": decor})
        if self.stage in ("diffusion", "all"):
            diffusion = self._diffusion_losses(tensors, state, state_control)
            total = total + diffusion["v"] + self.triplet_weight * diffusion["triplet"] + diffusion["shift"]
            terms.update(diffusion)
        per_cell = total.expand(n)
        self.last_loss_terms = {name: value.detach() for name, value in terms.items()}  # for the NaN guard
        return LossOutput(loss=total, reconstruction_loss=per_cell, n_obs_minibatch=n, extra_metrics=terms)

    def _diffusion_losses(self, tensors: dict, state, state_control) -> dict[str, torch.Tensor]:
        z, z_control = state.z.detach(), state_control.z.detach()
        change = (z - z_control) / self.state_scale
        n = change.shape[0]
        protein_control = self._protein(tensors, "protein_control")
        drugs = (tensors["drug_index"], tensors["drug_dose"], tensors["drug_mask"])
        conditioned = self.condition(z_control, protein_control, *drugs, identifiable_pairs_only=True)
        condition, composed = conditioned.condition, conditioned.composed
        zero = torch.zeros((), device=change.device)
        out = {"shift": zero, "shift_genes": zero, "v": zero, "triplet": zero}
        expected = torch.zeros_like(change)
        if composed is not None:
            observed = self.log_expression(tensors["x"]) - self.log_expression(tensors["x_control"])
            genes = (composed.genes - observed).pow(2).mean()
            shrinkage = self.state_effect_penalty * composed.deviation.pow(2).mean()
            shrinkage = shrinkage + self.interaction_penalty * composed.interaction.pow(2).mean()
            out["shift_genes"] = genes
            out["shift"] = (composed.latent - change).pow(2).mean() + genes + shrinkage
            expected = composed.latent
        x0 = change - expected.detach()
        t = torch.randint(0, self.schedule.n_steps, (n,), device=x0.device)
        noise = torch.randn_like(x0)
        x_t = self.schedule.q_sample(x0, t, noise)
        target = v_target(self.schedule, x0, noise, t)
        drop = torch.rand(n, device=x0.device) < self.cfg_dropout
        v_hat = self.denoiser(x_t, t, condition, drop_drugs=drop)
        squared = (v_hat - target).pow(2).mean(dim=1)
        weights = (
            min_snr_weight(self.schedule, t, self.min_snr_gamma) if self.min_snr_gamma else torch.ones_like(squared)
        )
        out["v"] = (weights * squared).mean()
        if self.triplet_weight and n > 1:
            out["triplet"] = self._triplet(tensors, conditioned, x_t, t, v_hat, target, expected, drop, state)
        return out

    def _triplet(self, tensors, conditioned: Conditioned, x_t, t, v_hat, target, expected, drop, state) -> torch.Tensor:
        """Quality-aware triplet on the full velocity (the residual's and the expected change's together).

        Only rows with a mismatched partner count, so the mismatched velocity is predicted for those rows alone; the
        partner's drug parts (embedding, dose response, tokens) are the batch's own, indexed, not computed again (in
        training, the partner's drug-encoder dropout sample is reused rather than drawn anew). In training, a random
        ``triplet_fraction`` of those rows (at least one) stands for them all: the mean over a random subset estimates
        the mean over every row, for a fraction of the second denoiser pass's cost. Evaluation uses every row.
        """
        drug_index, drug_dose, drug_mask = tensors["drug_index"], tensors["drug_dose"], tensors["drug_mask"]
        condition, composed, parts, standardised = conditioned
        partner, found = mismatch_partners(self.drug_encoder.target_group[drug_index], drug_mask)
        rows = (found & ~drop).nonzero()[:, 0]
        if rows.numel() == 0:
            return torch.zeros((), device=x_t.device)
        if self.training and self.triplet_fraction < 1.0:
            keep = max(1, math.ceil(self.triplet_fraction * rows.numel()))
            rows = rows[torch.randperm(rows.numel(), device=rows.device)[:keep].sort().values]
        partner = partner[rows]
        protein = condition.protein[rows] if condition.protein is not None else None
        mismatched = Condition(
            condition.control_state[rows], parts[2][partner], drug_mask[partner], protein, condition.reliability
        )
        v_mis = self.denoiser(x_t[rows], t[rows], mismatched)
        sigma = self.schedule.alpha_sigma(t[rows])[1].unsqueeze(-1)
        full_target = target[rows] - sigma * expected[rows].detach()
        full_true, full_mis = v_hat[rows], v_mis
        if composed is not None:
            partner_parts = tuple(part[partner] for part in parts)
            composed_mis = self._compose(
                *partner_parts,
                drug_index[partner],
                drug_dose[partner],
                drug_mask[partner],
                standardised[rows],
                None,
                True,
            )
            full_true = full_true - sigma * composed.latent[rows]
            full_mis = v_mis - sigma * composed_mis.latent
        every = torch.ones(rows.numel(), dtype=torch.bool, device=x_t.device)
        quality = state.quality.detach()[rows]
        return quality_triplet(full_true, full_mis, full_target, quality, every, self.triplet_margin)
