"""How much of the diffusion's sampled cell-level variation a trained StateXDiff adds to its predictions."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from sxdiff.metrics import energy_distance
from sxdiff.train import PairedPerturbationData

from ._novelty_shrinkage import condition_groups

__all__ = ["VARIATION_GRID", "choose_variation_scale"]

logger = logging.getLogger(__name__)

VARIATION_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


@torch.no_grad()
def choose_variation_scale(
    model,
    data: PairedPerturbationData,
    grid: Sequence[float] = VARIATION_GRID,
    max_cells: int = 256,
    max_conditions: int = 30,
    n_components: int = 30,
) -> None:
    """Choose the factor on the sampled residual (``module.variation_scale``) on the validation cells.

    A predicted cell is a source control cell plus the predicted change plus a sampled residual, and the residual
    was learned as a perturbed cell minus its paired control: it carries the spread of both, so added on top of a
    source cell that already varies like a control it over-disperses the prediction (most where the paired cells
    are far apart). The factor is the value of ``grid`` whose predicted cells are closest to the real ones in energy
    distance, the benchmark's distribution metric, averaged over the validation conditions (context, perturbation
    set, dose; at most ``max_conditions``, ``max_cells`` cells per side): predictions start from the context's
    control cells as :meth:`~sxdiff.model.StateXDiff.predict` does (one sampled residual per condition, scaled by
    each value), and distances are taken on the log scale in ``n_components`` principal components of the real cells.
    Sets ``model.variation_scale_`` (the chosen factor and the distance at each value).
    """
    module, device = model.module, model.device
    rng = np.random.default_rng(data.seed)
    groups = condition_groups(data, data.validation_set.cells, rng, max_conditions)
    contexts = data.matcher.contexts

    def rows(indices):
        indices = np.sort(indices)
        x = torch.as_tensor(np.asarray(data.expression[indices]), device=device)
        protein = None if data.protein is None else torch.as_tensor(data.protein[indices], device=device)
        return x, protein

    predicted: list[list[torch.Tensor]] = []  # per condition, per grid value: predicted log expression
    observed: list[torch.Tensor] = []
    module.eval()
    with module.averaged_weights():
        for number, members in enumerate(groups):
            members = rng.choice(members, size=min(len(members), max_cells), replace=False)
            controls = np.flatnonzero(data.matcher.is_control & (contexts == contexts[members[0]]))
            controls = rng.choice(controls, size=min(len(controls), max_cells), replace=False)
            x_control, protein_control = rows(controls)
            x, _ = rows(members)
            logged_control = module.log_expression(x_control)
            n = x_control.shape[0]
            drug = [
                torch.as_tensor(a[members[:1]], device=device).expand(n, -1)
                for a in (data.drug_index, data.drug_dose, data.drug_mask)
            ]
            protein_control = protein_control if module.use_protein else None
            state = module.encode(x_control, protein_control)
            condition, composed = module.condition(state.z, protein_control, *drug)[:2]
            generator = torch.Generator(device="cpu").manual_seed(data.seed + number)
            residual = module.sample_residual(condition, 10, 1.0, generator)  # predict()'s defaults
            per_value = []
            for value in grid:
                out = module.predicted_change(x_control, state, composed, residual, variation_scale=float(value))
                per_value.append(module.apply_log_change(logged_control, out["log_change"], logged_control.mean(0)))
            predicted.append(per_value)
            observed.append(module.log_expression(x))
    module.train()
    if not groups:
        module.set_variation_scale(1.0)
        model.variation_scale_ = {"chosen": 1.0}
        return
    real = torch.cat(observed).double()
    centre = real.mean(dim=0)
    _, _, components = torch.pca_lowrank(real - centre, q=min(n_components, *real.shape), center=False)

    def project(values: torch.Tensor) -> np.ndarray:
        return ((values.double() - centre) @ components).cpu().numpy()

    distances = np.array(
        [
            [energy_distance(project(per_value[i]), project(observed[c]), max_cells=None) for i in range(len(grid))]
            for c, per_value in enumerate(predicted)
        ]
    ).mean(axis=0)
    best = float(grid[int(np.argmin(distances))])
    module.set_variation_scale(best)
    logger.info(
        "Cell-level variation: factor %.2f on the sampled residual, chosen on %d validation conditions (energy "
        "distance %.3f; %.3f with the full residual).",
        best,
        len(groups),
        float(distances.min()),
        float(distances[list(grid).index(1.0)]) if 1.0 in grid else float("nan"),
    )
    model.variation_scale_ = {"chosen": best, **{f"{v:.2f}": float(d) for v, d in zip(grid, distances, strict=True)}}
