"""Sampling of a trained StateXDiff module: the composed mean change plus a sampled residual, per source cell."""

from __future__ import annotations

from dataclasses import replace

import torch

from sxdiff.diffusion import ddim_sample, guided_v

from ._composition import Composed
from ._denoiser import Condition
from ._vmcs import VMCSState

__all__ = ["Sampling"]


class Sampling:
    """Prediction from source control cells, a mixin of :class:`~sxdiff.module.StateXDiffModule`.

    Uses the module's ``encode``, ``condition``, ``composer``, ``denoiser``, ``schedule``, ``vmcs``, the buffers
    ``state_scale``, ``variation_scale`` and ``state_spread``, and ``decoded_log_expression``.
    """

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
        state_control: VMCSState | None = None,
        new_context: torch.Tensor | None = None,
        context_mean: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Predicted states and log-expression changes for source control cells under perturbation sets.

        The mean change of log expression is the composed expected change; the diffusion's sampled residual adds
        the cell-to-cell variation around it (decoded as the difference it makes to the decoded state, centred over
        the batch: the decoder's curvature would otherwise turn the residual's spread into a shift of the mean, and
        small effects would drown in it; a batch is one condition's sources), times ``variation_scale`` (a perturbed
        cell minus its control, added to a source cell that varies like a control, over-disperses at full size).
        The expected change differs between source cells only through their states; around its mean over the
        sources of each cell's context (``context_mean``, ``(batch, n_state + n_genes)``, latent then genes, computed
        by the caller with :meth:`expected_change` over all of a context's sources; ``None``: the batch's mean, for a
        batch of one context) it is multiplied by ``state_spread``: the mean is how the context responds, the spread
        what the per-cell change adds to the predicted distribution. Sample under :meth:`averaged_weights` for the
        EMA weights. ``state_control`` (the sources' :meth:`encode`)
        skips encoding; ``generator`` (on any device) seeds the noise; ``new_context`` ``(batch,)`` marks sources of
        contexts without perturbed training cells (see :meth:`~sxdiff.module.PerturbationComposer.transferred`).
        """
        protein_control = protein_control if self.use_protein else None
        if state_control is None:
            state_control = self.encode(x_control, protein_control)
        condition, composed = self.expected_change(
            state_control, protein_control, drug_index, drug_dose, drug_mask, new_context
        )
        residual = self.sample_residual(condition, n_steps, guidance_scale, generator)
        return self.predicted_change(x_control, state_control, composed, residual, context_mean=context_mean)

    def expected_change(
        self,
        state_control: VMCSState,
        protein_control: torch.Tensor | None,
        drug_index: torch.Tensor,
        drug_dose: torch.Tensor,
        drug_mask: torch.Tensor,
        new_context: torch.Tensor | None = None,
    ) -> tuple[Condition, Composed | None]:
        """The diffusion's condition and the composed expected change of encoded sources (see :meth:`sample`)."""
        protein_control = protein_control if self.use_protein else None
        condition, composed = self.condition(state_control.z, protein_control, drug_index, drug_dose, drug_mask)[:2]
        if composed is not None and new_context is not None:
            composed = self.composer.transferred(composed, new_context)
        return condition, composed

    def sample_residual(self, condition: Condition, n_steps: int, guidance_scale: float, generator) -> torch.Tensor:
        """DDIM sample of the standardised residual around the composed change, one per source cell."""
        n, device = condition.control_state.shape[0], condition.control_state.device
        no_drugs = torch.ones(n, dtype=torch.bool, device=device)
        prepared = self.denoiser.prepare(condition)
        unconditional = self.denoiser.prepare(condition, no_drugs) if guidance_scale != 1.0 else None

        def velocity(x_t, t):
            v = self.denoiser(x_t, t, condition, prepared=prepared)
            if guidance_scale == 1.0:
                return v
            return guided_v(v, self.denoiser(x_t, t, condition, no_drugs, prepared=unconditional), guidance_scale)

        generator_device = generator.device if generator is not None else device
        noise = torch.randn(n, self.n_state, generator=generator, device=generator_device).to(device)
        return ddim_sample(velocity, self.schedule, noise, n_steps=n_steps)

    def predicted_change(
        self,
        x_control: torch.Tensor,
        state_control: VMCSState,
        composed: Composed | None,
        residual: torch.Tensor,
        variation_scale: float | torch.Tensor | None = None,
        state_spread: float | torch.Tensor | None = None,
        context_mean: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """States and log-expression changes of the sources from a sampled residual (see :meth:`sample`).

        ``variation_scale`` and ``state_spread`` override the module's factors.
        """
        scale = self.variation_scale if variation_scale is None else variation_scale
        spread = self.state_spread if state_spread is None else state_spread
        if composed is not None and float(spread) != 1.0:
            total = torch.cat([composed.latent, composed.genes], dim=1)
            mean = total.mean(dim=0, keepdim=True) if context_mean is None else context_mean
            total = mean + spread * (total - mean)
            composed = replace(composed, latent=total[:, : self.n_state], genes=total[:, self.n_state :])
        expected = composed.latent if composed is not None else torch.zeros_like(residual)
        z_mean = state_control.z + expected * self.state_scale
        z = z_mean + residual * self.state_scale * scale
        decoded_control = self.decoded_log_expression(state_control.z)
        if composed is not None:  # the composed mean plus the residual's cell-level variation, centred
            variation = self.decoded_log_expression(z) - self.decoded_log_expression(z_mean)
            log_change = composed.genes + variation - variation.mean(dim=0, keepdim=True)
        else:
            log_change = self.decoded_log_expression(z) - decoded_control
        library = x_control.sum(dim=1, keepdim=True).clamp_min(1.0) if self.vmcs.gene_likelihood == "nb" else None
        out = {
            "z": z,
            "z_control": state_control.z,
            "expression": self.vmcs.decode_rna(z, library),
            "log_change": log_change,
            "decoded_control": decoded_control,
        }
        if self.use_protein:
            out["protein"] = self.vmcs.decode_protein(z)
        return out
