"""How far a trained StateXDiff trusts what it never trained on, chosen on held-out training data.

- ``(λ, μ)``: the description of a perturbation it never trained on, and that perturbation's state deviation;
- ``ν``: the state deviation of a source cell whose context had no perturbed training cell.

Both are chosen by the benchmark's headline metric on conditions held out of the diffusion stage's training (whole
perturbations for ``(λ, μ)``, one whole context for ``ν``); see :class:`~sxdiff.module.PerturbationComposer`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from sxdiff.train import PairedPerturbationData

__all__ = ["choose_context_transfer", "choose_novelty_shrinkage"]

logger = logging.getLogger(__name__)

NOVELTY_GRID = torch.cartesian_prod(torch.linspace(0.0, 1.0, 11), torch.tensor([0.0, 0.5, 1.0]))
CONTEXT_TRANSFER_GRID = torch.linspace(0.0, 1.0, 5)
CONTEXT_TRANSFER_TOLERANCE = 0.01
"""``ν`` is the smallest value whose held-out score is within this much top-50 r of the best one."""


@torch.no_grad()
def held_out_scores(
    model,
    data: PairedPerturbationData,
    cells: np.ndarray,
    predict: Callable[..., torch.Tensor],
    max_cells: int = 256,
    max_conditions: int = 200,
) -> tuple[torch.Tensor, int]:
    """Score options on the conditions (context, perturbation set, dose) of the held-out ``cells``.

    ``predict(x_control, protein_control, drug_index, drug_dose, drug_mask)`` returns the mean expected change of
    log expression over the sources under each option ``(options, genes)``. The score of an option is the mean over
    conditions of the Pearson correlation between its predicted change (over the context's control cells, as
    :meth:`predict` starts from them) and the observed one (the condition's cells against the same controls), on the
    condition's 50 most changed genes, under the averaged weights prediction uses. At most ``max_conditions``
    conditions and ``max_cells`` cells per side. Returns ``(scores per option, number of conditions)``.
    """
    rng = np.random.default_rng(data.seed)
    contexts = data.matcher.contexts
    keys = pd.Series(contexts[cells].astype(str)).str.cat(
        [
            pd.Series([str(row) for row in data.drug_index[cells] * data.drug_mask[cells]]),
            pd.Series([str(row) for row in data.drug_dose[cells]]),
        ],
        sep="|",
    )
    condition, names = pd.factorize(keys)
    chosen = np.sort(rng.choice(len(names), size=min(len(names), max_conditions), replace=False))
    module, device = model.module, model.device

    def rows(indices):
        indices = np.sort(indices)
        x = torch.as_tensor(np.asarray(data.expression[indices]), device=device)
        protein = None if data.protein is None else torch.as_tensor(data.protein[indices], device=device)
        return x, protein

    predicted, observed = [], []
    module.eval()
    with module.averaged_weights():
        for c in chosen:
            members = cells[condition == c]
            members = rng.choice(members, size=min(len(members), max_cells), replace=False)
            controls = np.flatnonzero(data.matcher.is_control & (contexts == contexts[members[0]]))
            controls = rng.choice(controls, size=min(len(controls), max_cells), replace=False)
            x_control, protein_control = rows(controls)
            x, _ = rows(members)
            change = module.log_expression(x).mean(0) - module.log_expression(x_control).mean(0)
            n = x_control.shape[0]
            drug = [
                torch.as_tensor(a[members[:1]], device=device).expand(n, -1)
                for a in (data.drug_index, data.drug_dose, data.drug_mask)
            ]
            protein_control = protein_control if module.use_protein else None
            predicted.append(predict(x_control, protein_control, *drug).double().cpu())
            observed.append(change.double().cpu())
    module.train()
    predicted, observed = torch.stack(predicted, dim=1), torch.stack(observed)  # (options, conditions, genes)
    top = observed.abs().topk(min(50, observed.shape[1]), dim=1).indices
    a = torch.gather(predicted, 2, top.expand(predicted.shape[0], -1, -1))
    b = torch.gather(observed, 1, top).expand_as(a)
    a, b = a - a.mean(dim=2, keepdim=True), b - b.mean(dim=2, keepdim=True)
    score = ((a * b).sum(dim=2) / (a.norm(dim=2) * b.norm(dim=2)).clamp_min(1e-12)).mean(dim=1)
    return score, len(chosen)


def _mean_changes(module, x_control, protein_control, drug_index, drug_dose, drug_mask, options: list[dict]):
    """Mean expected change of log expression over the sources, per option (keyword arguments of ``condition``)."""
    z = module.encode(x_control, protein_control).z
    out = []
    for option in options:
        _, composed = module.condition(z, protein_control, drug_index, drug_dose, drug_mask, **option)
        out.append(composed.genes.mean(dim=0))
    return torch.stack(out)


@torch.no_grad()
def choose_novelty_shrinkage(model, data: PairedPerturbationData, cells: np.ndarray) -> None:
    """Choose ``(λ, μ)`` on the held-out perturbations' ``cells`` and store it in the module.

    Grid: λ in steps of 0.1, μ in 0, 0.5, 1; criterion: :func:`held_out_scores`.
    """
    options = [{"novelty_shrinkage": (a, b)} for a, b in NOVELTY_GRID.tolist()]
    score, n_conditions = held_out_scores(model, data, cells, lambda *args: _mean_changes(model.module, *args, options))
    best = NOVELTY_GRID[int(torch.argmax(score))].tolist()
    model.module.set_novelty_shrinkage(*best)
    logger.info(
        "Perturbations never trained on: description shrinkage λ = %.1f, state-deviation factor μ = %.1f, chosen "
        "on %d conditions of %d held-out perturbations (top-50 r %.3f; %.3f without shrinkage).",
        best[0],
        best[1],
        n_conditions,
        len(data.held_out_perturbations),
        float(score.max()),
        float(score[-1]),
    )
    model.novelty_shrinkage_ = {
        f"{a:.1f},{b:.1f}": float(r) for (a, b), r in zip(NOVELTY_GRID.tolist(), score.tolist(), strict=True)
    }


@torch.no_grad()
def choose_context_transfer(model, data: PairedPerturbationData, cells: np.ndarray) -> None:
    """Choose ``ν`` on the held-out context's ``cells`` (perturbations trained elsewhere) and store it in the module.

    Grid: 0, 0.25, ..., 1; criterion: :func:`held_out_scores`. The smallest ``ν`` within
    :data:`CONTEXT_TRANSFER_TOLERANCE` of the best score is kept: one held-out context is a noisy judge, and a state
    deviation that does not clearly help there is not worth the risk in a new context (the context-free effect is
    the mean shift's prediction, the deviation the state-matched shift's).
    """
    options = [{"deviation_scale": torch.full((1,), nu)} for nu in CONTEXT_TRANSFER_GRID.tolist()]
    score, n_conditions = held_out_scores(model, data, cells, lambda *args: _mean_changes(model.module, *args, options))
    within = (score >= score.max() - CONTEXT_TRANSFER_TOLERANCE).nonzero()[:, 0]
    best = float(CONTEXT_TRANSFER_GRID[int(within[0])])
    model.module.set_context_transfer(best)
    logger.info(
        "Contexts never trained on: state-deviation factor ν = %.2f, chosen on %d conditions of the held-out context "
        "%r (top-50 r %.3f; %.3f with ν = 1, %.3f with ν = 0).",
        best,
        n_conditions,
        str(data.held_out_context),
        float(score[int(within[0])]),
        float(score[-1]),
        float(score[0]),
    )
    model.context_transfer_ = {
        f"{nu:.2f}": float(r) for nu, r in zip(CONTEXT_TRANSFER_GRID.tolist(), score.tolist(), strict=True)
    }
