"""How much cell-level variation a trained StateXDiff adds to its predictions, chosen on validation cells.

Two factors: on the diffusion's sampled residual, and on the spread of the state-dependent expected change within a
context.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from sxdiff.metrics import energy_distance
from sxdiff.train import PairedPerturbationData

from ._novelty_shrinkage import condition_groups

__all__ = ["SPREAD_GRID", "VARIATION_GRID", "check_factor_setting", "choose_variation_scale"]

logger = logging.getLogger(__name__)

VARIATION_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
SPREAD_GRID = (0.0, 0.5, 1.0)


def check_factor_setting(name: str, value) -> None:
    """Raise a ``ValueError`` unless ``value`` is ``"auto"`` or a number in [0, 1] (``name``: the argument)."""
    if value != "auto" and not (isinstance(value, int | float) and 0.0 <= float(value) <= 1.0):
        raise ValueError(f"{name} must be 'auto' or a number in [0, 1], not {value!r}.")


@torch.no_grad()
def choose_variation_scale(
    model,
    data: PairedPerturbationData,
    grid: Sequence[float] | None = VARIATION_GRID,
    spread_grid: Sequence[float] | None = SPREAD_GRID,
    max_cells: int = 256,
    max_conditions: int = 30,
    n_components: int = 30,
) -> None:
    """Choose the factors on the sampled residual and on the state-dependent spread together, on validation cells.

    The factors are ``module.variation_scale`` and ``module.state_spread`` (the within-context spread of the
    state-dependent part of the expected change).

    A predicted cell is a source control cell plus the predicted change plus a sampled residual, and the residual
    was learned as a perturbed cell minus its paired control: it carries the spread of both, so added on top of a
    source cell that already varies like a control it over-disperses the prediction (most where the paired cells
    are far apart). The factor is the value of ``grid`` whose predicted cells are closest to the real ones in energy
    distance, the benchmark's distribution metric, averaged over the validation conditions (context, perturbation
    set, dose; at most ``max_conditions``, ``max_cells`` cells per side): predictions start from the context's
    control cells as :meth:`~sxdiff.model.StateXDiff.predict` does (one sampled residual per condition, scaled by
    each value), and distances are taken on the log scale in ``n_components`` principal components of the real cells.
    The state-dependent part of the expected change gives each source cell its own change; its mean over a
    context's sources is how the context responds, its spread around that mean widens the predicted distribution,
    which helps only where cell states within a context do respond differently. Its factor is chosen from
    ``spread_grid`` in the same way, jointly with the residual's (every pair of values; same sampled residual).
    ``None`` for either grid keeps the module's current factor (the user fixed it). Sets ``model.variation_scale_``
    and ``model.state_spread_``: the chosen factor and, per value, the smallest distance over the other factor.
    """
    module, device = model.module, model.device
    variations = [float(module.variation_scale)] if grid is None else [float(v) for v in grid]
    has_spread = module.composer is not None and module.composer.state_effects
    spreads = [float(module.state_spread)] if spread_grid is None or not has_spread else [float(v) for v in spread_grid]
    spreads = sorted(spreads, reverse=True)  # on a tie, the spread as learned
    pairs = [(spread, value) for spread in spreads for value in variations]
    if len(pairs) == 1:  # nothing to choose (fixed factor, no state-dependent change)
        model.variation_scale_, model.state_spread_ = {"chosen": variations[0]}, {"chosen": spreads[0]}
        return
    rng = np.random.default_rng(data.seed)
    groups = condition_groups(data, data.validation_set.cells, rng, max_conditions)
    contexts = data.matcher.contexts

    def rows(indices):
        indices = np.sort(indices)
        x = torch.as_tensor(np.asarray(data.expression[indices]), device=device)
        protein = None if data.protein is None else torch.as_tensor(data.protein[indices], device=device)
        return x, protein

    predicted: list[list[torch.Tensor]] = []  # per condition, per pair of values: predicted log expression
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
            condition, composed = module.expected_change(state, protein_control, *drug)
            generator = torch.Generator(device="cpu").manual_seed(data.seed + number)
            residual = module.sample_residual(condition, 10, 1.0, generator)  # predict()'s defaults
            per_value = []
            for spread, value in pairs:
                out = module.predicted_change(
                    x_control, state, composed, residual, variation_scale=value, state_spread=spread
                )
                per_value.append(module.apply_log_change(logged_control, out["log_change"], logged_control.mean(0)))
            predicted.append(per_value)
            observed.append(module.log_expression(x))
    module.train()
    if not groups:
        if grid is not None:
            module.set_variation_scale(1.0)
        if spread_grid is not None:
            module.set_state_spread(1.0)
        model.variation_scale_ = {"chosen": float(module.variation_scale)}
        model.state_spread_ = {"chosen": float(module.state_spread)}
        return
    real = torch.cat(observed).double()
    centre = real.mean(dim=0)
    _, _, components = torch.pca_lowrank(real - centre, q=min(n_components, *real.shape), center=False)

    def project(values: torch.Tensor) -> np.ndarray:
        return ((values.double() - centre) @ components).cpu().numpy()

    distances = np.array(
        [
            [energy_distance(project(per_pair[i]), project(observed[c]), max_cells=None) for i in range(len(pairs))]
            for c, per_pair in enumerate(predicted)
        ]
    ).mean(axis=0)
    best_spread, best = pairs[int(np.argmin(distances))]
    module.set_variation_scale(best)
    module.set_state_spread(best_spread)
    table = distances.reshape(len(spreads), len(variations))
    logger.info(
        "Cell-level variation: factor %.2f on the sampled residual and %.2f on the state-dependent spread, chosen on "
        "%d validation conditions (energy distance %.3f; %.3f with both at 1).",
        best,
        best_spread,
        len(groups),
        float(distances.min()),
        float(distances[pairs.index((1.0, 1.0))]) if (1.0, 1.0) in pairs else float("nan"),
    )
    model.variation_scale_ = {"chosen": best, **_by_value(variations, table.min(axis=0))}
    model.state_spread_ = {"chosen": best_spread, **_by_value(spreads, table.min(axis=1))}


def _by_value(values: Sequence[float], distances: np.ndarray) -> dict[str, float]:
    return {f"{v:.2f}": float(d) for v, d in zip(values, distances, strict=True)}
