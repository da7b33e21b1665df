"""How far a trained StateXDiff trusts the description of a perturbation it never trained on: ``(λ, μ)``."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from sxdiff.train import PairedPerturbationData

__all__ = ["choose_novelty_shrinkage", "condition_groups"]

logger = logging.getLogger(__name__)


def perturbation_keys(data: PairedPerturbationData, cells: np.ndarray) -> pd.Series:
    """One label per cell for its perturbation set and doses (the condition without the context)."""
    return pd.Series([str(row) for row in data.drug_index[cells] * data.drug_mask[cells]]).str.cat(
        pd.Series([str(row) for row in data.drug_dose[cells]]), sep="|"
    )


def condition_groups(
    data: PairedPerturbationData, cells: np.ndarray, rng: np.random.Generator, max_conditions: int
) -> list[np.ndarray]:
    """The ``cells`` grouped by condition (context, perturbation set, dose); at most ``max_conditions`` groups."""
    keys = pd.Series(data.matcher.contexts[cells].astype(str)).str.cat(perturbation_keys(data, cells), sep="|")
    condition, names = pd.factorize(keys)
    chosen = np.sort(rng.choice(len(names), size=min(len(names), max_conditions), replace=False))
    return [cells[condition == c] for c in chosen]


@torch.no_grad()
def novelty_predictions(
    module, x_control, protein_control, drug_index, drug_dose, drug_mask, shrinkages: torch.Tensor
) -> torch.Tensor:
    """Mean expected log-expression change over source cells, per ``(λ, μ)`` row of ``shrinkages``.

    ``module`` is a :class:`~sxdiff.module.StateXDiffModule`; returns ``(len(shrinkages), genes)``.
    """
    protein_control = protein_control if module.use_protein else None
    z = module.encode(x_control, protein_control).z
    predictions = []
    for description, state in shrinkages.tolist():
        composed = module.condition(
            z, protein_control, drug_index, drug_dose, drug_mask, novelty_shrinkage=(description, state)
        ).composed
        predictions.append(composed.genes.mean(dim=0))
    return torch.stack(predictions)


@torch.no_grad()
def choose_novelty_shrinkage(
    model, data: PairedPerturbationData, max_cells: int = 256, max_conditions: int = 200
) -> None:
    """Choose ``(λ, μ)`` (see :class:`~sxdiff.module.PerturbationComposer`) on the held-out perturbations.

    Grid: λ in steps of 0.1, μ in 0, 0.5, 1. Criterion: the benchmark's headline metric on the held-out conditions
    (context, perturbation set, dose): the mean over conditions of the Pearson correlation of the predicted mean
    change (over the context's control cells, as :meth:`predict` starts from them) and the observed one (the
    condition's cells against the same controls), on the condition's 50 most changed genes, under the averaged
    weights prediction uses. At most ``max_conditions`` conditions and ``max_cells`` cells per side.
    """
    rng = np.random.default_rng(data.seed)
    grid = torch.cartesian_prod(torch.linspace(0.0, 1.0, 11), torch.tensor([0.0, 0.5, 1.0]))
    groups = condition_groups(data, data.validation_set.cells, rng, max_conditions)
    contexts = data.matcher.contexts
    module, device = model.module, model.device

    def rows(indices):
        indices = np.sort(indices)
        x = torch.as_tensor(np.asarray(data.expression[indices]), device=device)
        protein = None if data.protein is None else torch.as_tensor(data.protein[indices], device=device)
        return x, protein

    predicted, observed = [], []
    module.eval()
    with module.averaged_weights():
        for members in groups:
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
            predicted.append(novelty_predictions(module, x_control, protein_control, *drug, grid).double().cpu())
            observed.append(change.double().cpu())
    module.train()
    predicted, observed = torch.stack(predicted, dim=1), torch.stack(observed)  # (grid, conditions, genes)
    top = observed.abs().topk(min(50, observed.shape[1]), dim=1).indices
    a = torch.gather(predicted, 2, top.expand(len(grid), -1, -1))
    b = torch.gather(observed, 1, top).expand_as(a)
    a, b = a - a.mean(dim=2, keepdim=True), b - b.mean(dim=2, keepdim=True)
    score = ((a * b).sum(dim=2) / (a.norm(dim=2) * b.norm(dim=2)).clamp_min(1e-12)).mean(dim=1)
    best = grid[int(torch.argmax(score))].tolist()
    module.set_novelty_shrinkage(*best)
    logger.info(
        "Perturbations never trained on: description shrinkage λ = %.1f, state-deviation factor μ = %.1f, chosen "
        "on %d conditions of %d held-out perturbations (top-50 r %.3f; %.3f without shrinkage).",
        best[0],
        best[1],
        len(groups),
        len(data.held_out_perturbations),
        float(score.max()),
        float(score[-1]),
    )
    model.novelty_shrinkage_ = {
        f"{a:.1f},{b:.1f}": float(r) for (a, b), r in zip(grid.tolist(), score.tolist(), strict=True)
    }
