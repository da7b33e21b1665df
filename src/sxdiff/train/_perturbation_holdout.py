"""Validation by perturbation: whole perturbations held out, to learn how far their descriptions transfer."""

from __future__ import annotations

import numpy as np

__all__ = ["MIN_PERTURBATIONS_TO_HOLD_OUT", "hold_out_perturbations"]

MIN_PERTURBATIONS_TO_HOLD_OUT = 20


def hold_out_perturbations(
    drug_index: np.ndarray,
    drug_mask: np.ndarray,
    cells: np.ndarray,
    *,
    fraction: float = 0.1,
    minimum: int = MIN_PERTURBATIONS_TO_HOLD_OUT,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Split training cells so that a random ``fraction`` of the perturbations is never trained on.

    Every cell whose perturbation set contains a held-out perturbation validates (a combination with one held-out
    member included), the others train. With fewer than ``minimum`` distinct perturbations among the cells, or if
    either side would be empty, nothing is held out.

    Parameters
    ----------
    drug_index, drug_mask
        Padded perturbation sets of all cells ``(cells, set size)``.
    cells
        Indices of the training cells to split.
    fraction
        Fraction of the distinct perturbations to hold out (at least 2).
    minimum
        Hold out nothing below this many distinct perturbations.
    seed
        Seed of the draw.

    Returns
    -------
    ``(train_cells, validation_cells, held_out_perturbations)``, or ``None``.

    Examples
    --------
    >>> import numpy as np
    >>> index = np.arange(40).reshape(40, 1)
    >>> train, validation, held = hold_out_perturbations(index, np.ones((40, 1), bool), np.arange(40))
    >>> len(train), len(validation), len(held)
    (36, 4, 4)
    """
    cells = np.asarray(cells)
    index, mask = drug_index[cells], drug_mask[cells].astype(bool)
    members = np.unique(index[mask])
    if len(members) < minimum:
        return None
    rng = np.random.default_rng(seed)
    held = np.sort(rng.choice(members, size=max(2, round(fraction * len(members))), replace=False))
    contains = (np.isin(index, held) & mask).any(axis=1)
    if contains.all() or not contains.any():
        return None
    return cells[~contains], cells[contains], held
