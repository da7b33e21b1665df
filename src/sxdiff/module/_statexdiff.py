"""The StateXDiff module: VMCS state, drug tokens, and a conditional latent diffusion of state changes.

Training pairs a perturbed cell ``i`` with a control cell ``j`` of the same context. With states
``z_i``, ``z_j`` from the VMCS, the diffusion target is the change ``x0 = z_i - z_j`` given ``z_j``,
the source's protein context and the drug tokens. Losses (per stage):

- ``"state"``: the VMCS losses on both cells;
- ``"diffusion"``: the v-loss ``|v^ - v|^2`` (optionally min-SNR weighted) plus the quality-aware triplet
  ``q_i max(0, cos(v^_mis, v) - cos(v^, v) + m)``, with ``v^_mis`` predicted under the drug tokens of
  another cell of the batch that has a different perturbation; states are detached (stage 1 frozen);
- ``"all"``: both.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch
from scvi.module.base import BaseModuleClass, LossOutput
from torch import nn

from sxdiff.diffusion import CosineSchedule, ddim_sample, guided_v, min_snr_weight, v_target

from ._denoiser import Condition, DiTDenoiser, MLPDenoiser
from ._drug_encoder import DrugEncoder, DrugTemplate
from ._vmcs import VMCS, VMCSState, mlp

__all__ = ["Stage", "StateXDiffModule"]

Stage = Literal["state", "diffusion", "all"]


class StateXDiffModule(BaseModuleClass):
    """Tensors and losses of StateXDiff (no AnnData): see the module docstring for the equations.

    Batches are dicts with ``x`` / ``x_control`` (expression of the perturbed cell and its matched
    control), ``protein`` / ``protein_control`` (protein features, optional), ``drug_index``,
    ``drug_dose``, ``drug_mask`` (padded perturbation sets).
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
        min_snr_gamma: float | None = 5.0,
        ema_decay: float = 0.999,
        shift_head: bool = True,
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
        self.ema_denoiser = denoiser_cls(self.n_state, n_proteins if use_protein else 0, d_model=d_model, **kwargs)
        self.ema_denoiser.load_state_dict(self.denoiser.state_dict())
        self.ema_denoiser.requires_grad_(False)
        # expected latent change E[x0 | drugs]; the diffusion models the residual around it
        self.shift_head = mlp(d_model, n_hidden, self.n_state, 2, 0.0) if shift_head else None
        # per-drug gene-space change that the decoded latent change misses (summed over a combination)
        self.gene_head = mlp(d_model, n_hidden, n_genes, 1, 0.0) if shift_head else None
        self.schedule = CosineSchedule(n_diffusion_steps)
        self.cfg_dropout, self.triplet_weight, self.triplet_margin = cfg_dropout, triplet_weight, triplet_margin
        self.min_snr_gamma, self.ema_decay = min_snr_gamma, ema_decay
        self.stage: Stage = stage
        self.register_buffer("reliability", torch.ones(max(n_proteins, 1)))
        self.register_buffer("state_scale", torch.ones(self.n_state))
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))

    def set_stage(self, stage: Stage) -> None:
        """Select the losses of a stage and make only its parameters trainable.

        ``"state"`` trains the VMCS; ``"diffusion"`` the drug encoder, denoiser and heads (the VMCS, and with it
        the gene embeddings the drug templates go through, is frozen); ``"all"`` everything. Parameters a stage
        does not use get no gradient, which distributed training (DDP) requires. The EMA copy never trains.
        """
        self.stage = stage
        for name, parameter in self.named_parameters():
            if name.startswith("ema_denoiser."):
                parameter.requires_grad_(False)
            elif stage == "state":
                parameter.requires_grad_(name.startswith("vmcs."))
            elif stage == "diffusion":
                parameter.requires_grad_(not name.startswith("vmcs."))
            else:
                parameter.requires_grad_(True)

    # ------------------------------------------------------------------------------------ helpers
    def _protein(self, tensors: dict, key: str) -> torch.Tensor | None:
        return tensors.get(key) if self.use_protein else None

    def encode(self, x: torch.Tensor, protein: torch.Tensor | None):
        """VMCS state of cells."""
        return self.vmcs.encode(x, protein, self.reliability[: protein.shape[1]] if protein is not None else None)

    def condition(self, z_control, protein_control, drug_index, drug_dose, drug_mask) -> Condition:
        """Denoiser condition from a source state, its protein and a perturbation set."""
        tokens = self.drug_encoder(drug_index, drug_dose, drug_mask)
        reliability = self.reliability[: protein_control.shape[1]] if protein_control is not None else None
        return Condition(z_control / self.state_scale, tokens, drug_mask, protein_control, reliability)

    def expected_change(self, condition: Condition) -> torch.Tensor:
        """Deterministic expected (scaled) change given the drugs and the source state; zeros without the head."""
        if self.shift_head is None:
            return torch.zeros_like(condition.control_state)
        pooled = (condition.drug_tokens * condition.drug_mask.unsqueeze(-1)).sum(dim=1)
        return self.shift_head(pooled)

    def log_expression(self, x: torch.Tensor) -> torch.Tensor:
        """Expression on the scale of the metrics: log1p per 10,000 for counts, the values otherwise."""
        return self.vmcs.normalise_rna(x)

    def decoded_log_expression(self, z: torch.Tensor) -> torch.Tensor:
        """Decoded mean expression of states ``z`` on the scale of :meth:`log_expression`."""
        mean = self.vmcs.decode_rna(z)
        return torch.log1p(mean) if self.vmcs.gene_likelihood == "nb" else mean

    def gene_correction(self, drug_tokens: torch.Tensor, drug_mask: torch.Tensor) -> torch.Tensor:
        """Gene-space change the latent change misses: a sum over the set's drugs; zeros without the head."""
        if self.gene_head is None:
            return torch.zeros(drug_tokens.shape[0], self.vmcs.n_genes, device=drug_tokens.device)
        return (self.gene_head(drug_tokens) * drug_mask.unsqueeze(-1)).sum(dim=1)

    @torch.no_grad()
    def update_ema(self) -> None:
        """Exponential moving average of the denoiser weights (used for sampling).

        The decay warms up as ``min(ema_decay, (1 + k) / (10 + k))`` after ``k`` updates, so that a short
        training run is not dominated by the initial weights.
        """
        self.ema_updates += 1
        k = float(self.ema_updates)
        decay = min(self.ema_decay, (1 + k) / (10 + k))
        for ema, live in zip(self.ema_denoiser.parameters(), self.denoiser.parameters(), strict=True):
            ema.lerp_(live, 1 - decay)

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
            v_loss, triplet, shift_loss = self._diffusion_losses(tensors, state, state_control)
            total = total + v_loss + self.triplet_weight * triplet + shift_loss
            terms.update({"v": v_loss, "triplet": triplet, "shift": shift_loss})
        per_cell = total.expand(n)
        self.last_loss_terms = {name: value.detach() for name, value in terms.items()}  # for the NaN guard
        return LossOutput(loss=total, reconstruction_loss=per_cell, n_obs_minibatch=n, extra_metrics=terms)

    def _diffusion_losses(self, tensors: dict, state, state_control) -> tuple[torch.Tensor, ...]:
        z, z_control = state.z.detach(), state_control.z.detach()
        change = (z - z_control) / self.state_scale
        n = change.shape[0]
        protein_control = self._protein(tensors, "protein_control")
        condition = self.condition(
            z_control, protein_control, tensors["drug_index"], tensors["drug_dose"], tensors["drug_mask"]
        )
        expected = self.expected_change(condition)
        zero = torch.zeros((), device=change.device)
        shift_loss = zero
        if self.shift_head is not None:
            with torch.no_grad():  # what the decoded *expected* latent change misses, so the two add up
                observed = self.log_expression(tensors["x"]) - self.log_expression(tensors["x_control"])
                shifted = z_control + expected.detach() * self.state_scale
                missed = observed - (self.decoded_log_expression(shifted) - self.decoded_log_expression(z_control))
            correction = self.gene_correction(condition.drug_tokens, condition.drug_mask)
            shift_loss = (expected - change).pow(2).mean() + (correction - missed).pow(2).mean()
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
        v_loss = (weights * squared).mean()
        if not self.triplet_weight or n < 2:
            return v_loss, zero, shift_loss
        # mismatched pairs: drug tokens of the next cell with a different perturbation set
        shift = torch.roll(torch.arange(n, device=x0.device), 1)
        members = torch.where(tensors["drug_mask"], tensors["drug_index"], -1).sort(dim=1).values  # order-free sets
        different = (members != members[shift]).any(dim=1) & ~drop
        if not different.any():
            return v_loss, zero, shift_loss
        mismatched = Condition(
            condition.control_state,
            condition.drug_tokens[shift],
            condition.drug_mask[shift],
            condition.protein,
            condition.reliability,
        )
        v_mis = self.denoiser(x_t, t, mismatched)
        cos_true = nn.functional.cosine_similarity(v_hat, target, dim=1)
        cos_mis = nn.functional.cosine_similarity(v_mis, target, dim=1)
        hinge = torch.relu(cos_mis - cos_true + self.triplet_margin)
        triplet = (state.quality.detach() * hinge)[different].mean()
        return v_loss, triplet, shift_loss

    # ------------------------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(
        self,
        x_control: torch.Tensor,
        protein_control: torch.Tensor | None,
        drug_index: torch.Tensor,
        drug_dose: torch.Tensor,
        drug_mask: torch.Tensor,
        *,
        n_steps: int = 10,
        guidance_scale: float = 1.0,
        generator: torch.Generator | None = None,
        use_ema: bool = True,
        state_control: VMCSState | None = None,
    ) -> dict[str, torch.Tensor]:
        """Predicted states and expression means for source control cells under perturbation sets.

        ``state_control`` (the sources' :meth:`encode`) skips encoding when the same cells are sampled under
        several conditions.
        """
        protein_control = protein_control if self.use_protein else None
        if state_control is None:
            state_control = self.encode(x_control, protein_control)
        condition = self.condition(state_control.z, protein_control, drug_index, drug_dose, drug_mask)
        denoiser = self.ema_denoiser if use_ema else self.denoiser
        n = x_control.shape[0]
        no_drugs = torch.ones(n, dtype=torch.bool, device=x_control.device)

        prepared = denoiser.prepare(condition)
        unconditional = denoiser.prepare(condition, no_drugs) if guidance_scale != 1.0 else None

        def velocity(x_t, t):
            v = denoiser(x_t, t, condition, prepared=prepared)
            if guidance_scale == 1.0:
                return v
            return guided_v(v, denoiser(x_t, t, condition, no_drugs, prepared=unconditional), guidance_scale)

        noise = (
            torch.randn(n, self.n_state, generator=generator, device=x_control.device)
            if generator is not None
            else (torch.randn(n, self.n_state, device=x_control.device))
        )
        residual = ddim_sample(velocity, self.schedule, noise, n_steps=n_steps)
        change = (self.expected_change(condition) + residual) * self.state_scale
        z = state_control.z + change
        library = x_control.sum(dim=1, keepdim=True).clamp_min(1.0) if self.vmcs.gene_likelihood == "nb" else None
        correction = self.gene_correction(condition.drug_tokens, drug_mask)
        out = {
            "z": z,
            "z_control": state_control.z,
            "expression": self.vmcs.decode_rna(z, library),
            "log_change": self.decoded_log_expression(z) - self.decoded_log_expression(state_control.z) + correction,
            "gene_correction": correction,
        }
        if self.use_protein:
            out["protein"] = self.vmcs.decode_protein(z)
        return out
