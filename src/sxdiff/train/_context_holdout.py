"""Validation by context: one whole training context held out, to learn how far state effects transfer to new ones."""

from __future__ import annotations

import numpy as np

__all__ = ["MIN_CONTEXTS_TO_HOLD_OUT", "hold_out_context"]

MIN_CONTEXTS_TO_HOLD_OUT = 3


def hold_out_context(
    contexts: np.ndarray,
    cells: np.ndarray,
    *,
    minimum: int = MIN_CONTEXTS_TO_HOLD_OUT,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, object] | None:
    """Split perturbed training cells so that the perturbed cells of one random context are never trained on.

    A prediction for a context whose perturbed cells the model never saw (an unseen cell type, patient or cell line)
    reads its cells through the states of the training contexts; whether the state-dependent part of the effects
    learnt there transfers is measured on one training context held out the same way. At least ``minimum`` contexts
    must hold perturbed cells (so that at least two remain to learn state effects from); otherwise nothing is held
    out.

    Parameters
    ----------
    contexts
        Context label of every cell.
    cells
        Indices of the perturbed training cells to split.
    minimum
        Hold out nothing below this many contexts with perturbed cells.
    seed
        Seed of the draw.

    Returns
    -------
    ``(train_cells, validation_cells, held_out_context)``, or ``None``.

    Examples
    --------
    >>> import numpy as np
    >>> contexts = np.repeat(np.array(["a", "b", "c"], dtype=object), 4)
    >>> train, validation, held = hold_out_context(contexts, np.arange(12))
    >>> len(train), len(validation), bool((contexts[validation] == held).all())
    (8, 4, True)
    >>> hold_out_context(contexts, np.arange(8)) is None  # two contexts only
    True
    """
    cells = np.asarray(cells)
    labels = np.asarray(contexts, dtype=object)[cells]
    present = sorted(set(labels.tolist()), key=str)
    if len(present) < minimum:
        return None
    held = present[int(np.random.default_rng(seed).integers(len(present)))]
    inside = labels == held
    return cells[~inside], cells[inside], held
