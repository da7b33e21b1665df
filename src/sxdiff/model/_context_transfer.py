"""How far a trained StateXDiff carries its effects into a context it has no perturbed cells of: ``(τ, ν)``."""

from __future__ import annotations

import logging

import numpy as np
import torch

from sxdiff.train import PairedPerturbationData

from ._novelty_shrinkage import perturbation_keys

__all__ = ["MIN_CELLS", "choose_context_transfer", "transfer_weights"]

logger = logging.getLogger(__name__)

MIN_CELLS = 5
"""Fewest perturbed (and control) cells of a condition, or of a state within it, whose mean change is used."""


def transfer_weights(observed: np.ndarray, context_free: np.ndarray, state_matched: np.ndarray) -> tuple[float, float]:
    """Least-squares ``(τ, ν)`` of ``observed ≈ τ (context_free + ν (state_matched - context_free))``.

    Rows are (held-out context, condition) pairs, columns genes. ``observed`` is a condition's measured mean change in
    one training context; ``context_free`` the mean of its measured changes in the other training contexts (the mean
    shift's prediction); ``state_matched`` the other contexts' per-state changes weighted by the context's own state
    composition (the state-matched shift's prediction). The two-term fit ``α a + β (s - a)`` gives ``τ = α`` and
    ``ν = β / α``, both clipped to [0, 1]. Noise in the other contexts' means attenuates both toward 0, which is the
    point: what the training contexts do not reproduce in each other is not carried into a new one.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a, s = rng.normal(size=(20, 50)), rng.normal(size=(20, 50))
    >>> tau, nu = transfer_weights(0.5 * a + 0.25 * (s - a), a, s)
    >>> round(tau, 3), round(nu, 3)
    (0.5, 0.5)
    >>> transfer_weights(rng.normal(size=(20, 50)), a, s)[0] < 0.1  # responses unrelated across contexts
    True
    """
    y = np.asarray(observed, dtype=float).ravel()
    design = np.stack(
        [np.asarray(context_free, float).ravel(), (np.asarray(state_matched, float) - context_free).ravel()]
    )
    gram = design @ design.T
    if gram[0, 0] <= 1e-12:
        return 0.0, 0.0
    if gram[1, 1] <= 1e-12 * gram[0, 0]:  # states add nothing (a single state, or no state effect measurable)
        return float(np.clip(design[0] @ y / gram[0, 0], 0.0, 1.0)), 0.0
    alpha, beta = np.linalg.solve(gram, design @ y)
    tau = float(np.clip(alpha, 0.0, 1.0))
    return tau, float(np.clip(beta / alpha, 0.0, 1.0)) if alpha > 1e-6 else 0.0


@torch.no_grad()
def _measured_changes(model, data: PairedPerturbationData, max_cells: int) -> tuple[dict, dict]:
    """Per (context, condition): measured mean change and per-state changes; per context: its state shares.

    States are the module's anchors (the states the composer reads). A perturbed cell is assigned after removing its
    condition's mean shift in latent space, so that the perturbation does not move it across states.
    """
    module, device = model.module, model.device
    n_states = max(1, int(module.n_anchors))
    rng = np.random.default_rng(data.seed)
    contexts = data.matcher.contexts
    everything = np.union1d(data.train_set.cells, data.validation_set.cells)
    perturbed = everything[~data.matcher.is_control[everything]]
    keys = perturbation_keys(data, perturbed).to_numpy()

    def read(indices):
        indices = np.sort(rng.choice(indices, size=min(len(indices), max_cells), replace=False))
        x = torch.as_tensor(np.asarray(data.expression[indices]), device=device)
        protein = None if data.protein is None or not module.use_protein else data.protein[indices]
        protein = None if protein is None else torch.as_tensor(protein, device=device)
        z = module.encode(x, protein).z
        return module.log_expression(x).double().cpu().numpy(), z

    def states(z):
        return module.anchor_index(z).cpu().numpy()

    changes: dict = {}
    shares: dict = {}
    module.eval()
    with module.averaged_weights():
        for context in np.unique(contexts[perturbed]):
            controls = np.flatnonzero(data.matcher.is_control & (contexts == context))
            if len(controls) < MIN_CELLS:
                continue
            logged_control, z_control = read(controls)
            control_state = states(z_control)
            shares[context] = np.bincount(control_state, minlength=n_states) / len(control_state)
            for key in np.unique(keys[contexts[perturbed] == context]):
                members = perturbed[(contexts[perturbed] == context) & (keys == key)]
                if len(members) < MIN_CELLS:
                    continue
                logged, z = read(members)
                state = states(z - z.mean(dim=0) + z_control.mean(dim=0))
                by_state = {}
                for s in range(n_states):
                    if (state == s).sum() >= MIN_CELLS and (control_state == s).sum() >= MIN_CELLS:
                        by_state[s] = logged[state == s].mean(0) - logged_control[control_state == s].mean(0)
                changes[(context, key)] = (logged.mean(0) - logged_control.mean(0), by_state)
    module.train()
    return changes, shares


def choose_context_transfer(model, data: PairedPerturbationData, max_cells: int = 512) -> None:
    """Choose ``(τ, ν)`` (see :class:`~sxdiff.module.PerturbationComposer`) by leaving each training context out.

    A context with perturbed training cells is treated in turn as if it were new: each of its conditions (perturbation
    set, dose) also measured in another training context is predicted from the others, context-free (their mean
    change) and state-matched (their per-state changes, in the states the composer reads, weighted by the held-out
    context's state composition), and :func:`transfer_weights` fits how much of each the measured change carries.
    Needs at least two training contexts with perturbed cells and a condition shared by two of them; otherwise
    ``(1, 1)`` stays (nothing to learn it from, and no new context to apply it to in most such designs). The fit uses
    the measured data only, not the network's predictions (the network trained on every context, so it would
    reproduce the held-out one); it tells how far the data's responses, context-free and per state, carry over
    between contexts, and the network's own change is weighted accordingly for sources of new contexts.

    Sets ``model.context_transfer_``: ``tau``, ``nu``, the number of contexts and (context, condition) pairs used.
    """
    changes, shares = _measured_changes(model, data, max_cells)
    contexts = sorted({context for context, _ in changes})
    observed, context_free, state_matched = [], [], []
    for context, key in changes:
        others = [c for c in contexts if c != context and (c, key) in changes]
        if not others:
            continue
        mean_change = np.mean([changes[(c, key)][0] for c in others], axis=0)
        per_state = []
        for s, share in enumerate(shares[context]):
            found = [changes[(c, key)][1][s] for c in others if s in changes[(c, key)][1]]
            per_state.append(share * (np.mean(found, axis=0) if found else mean_change))
        observed.append(changes[(context, key)][0])
        context_free.append(mean_change)
        state_matched.append(np.sum(per_state, axis=0))
    if not observed:
        tau, nu = 1.0, 1.0
        logger.info("Context transfer: no condition measured in two training contexts; effects carried over whole.")
    else:
        tau, nu = transfer_weights(np.array(observed), np.array(context_free), np.array(state_matched))
        logger.info(
            "Context transfer to contexts without perturbed training cells: whole change x %.2f, state deviation x "
            "%.2f (fitted on %d conditions of %d training contexts, each predicted from the others).",
            tau,
            nu,
            len(observed),
            len(contexts),
        )
    model.module.set_context_transfer(tau, nu)
    model.context_transfer_ = {"tau": tau, "nu": nu, "contexts": len(contexts), "conditions": len(observed)}
