"""Matching perturbed cells to control cells of the same context (and batch)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

__all__ = ["ControlMatcher"]

logger = logging.getLogger(__name__)


class ControlMatcher:
    """Draw control cells for perturbed cells from the same context, and the same batch when known.

    The training loop uses it to pair each perturbed cell with a control cell (the diffusion target
    is the difference of their states); prediction uses it to find the source cells of a context.
    Where a (context, batch) group has no control cells, controls of the same context in any batch
    are used instead.

    Parameters
    ----------
    is_control
        Boolean mask of control cells, one entry per cell.
    contexts
        Context label per cell (cell line, patient). ``None`` puts every cell in one context.
    batches
        Batch label per cell (plate, sample), or ``None``.

    Examples
    --------
    >>> import numpy as np
    >>> matcher = ControlMatcher(np.array([True, True, False, False]), contexts=np.array(["a", "b", "a", "b"]))
    >>> matcher.sample(np.array([2, 3]), rng=np.random.default_rng(0)).ravel().tolist()
    [0, 1]
    """

    def __init__(
        self,
        is_control: np.ndarray,
        contexts: Sequence[object] | np.ndarray | None = None,
        batches: Sequence[object] | np.ndarray | None = None,
    ) -> None:
        is_control = np.asarray(is_control, dtype=bool)
        n = is_control.shape[0]
        contexts = np.full(n, "all", dtype=object) if contexts is None else np.asarray(contexts, dtype=object)
        if contexts.shape[0] != n or (batches is not None and len(batches) != n):
            raise ValueError("`is_control`, `contexts` and `batches` must have one entry per cell.")
        self.is_control = is_control
        self.contexts = contexts
        self.batches = None if batches is None else np.asarray(batches, dtype=object)
        control_idx = np.flatnonzero(is_control)
        self._by_context = _group_indices(control_idx, contexts[control_idx])
        self._by_context_batch: dict[tuple[object, object], np.ndarray] = {}
        if self.batches is not None:
            keys = list(zip(contexts[control_idx], self.batches[control_idx], strict=True))
            self._by_context_batch = _group_indices(control_idx, keys)

    @property
    def context_names(self) -> list[object]:
        """Contexts that have control cells."""
        return list(self._by_context)

    def controls_of(self, context: object, batch: object | None = None) -> np.ndarray:
        """Indices of the control cells of a context (and batch, falling back to the context).

        Raises
        ------
        KeyError
            If the context has no control cells.
        """
        if batch is not None and (context, batch) in self._by_context_batch:
            return self._by_context_batch[(context, batch)]
        if context not in self._by_context:
            raise KeyError(
                f"Context {context!r} has no control cells (contexts with controls: "
                f"{self.context_names[:20]}). Predictions for a context start from its control cells."
            )
        return self._by_context[context]

    def sample(
        self,
        cell_indices: np.ndarray,
        n_per_cell: int = 1,
        *,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Draw ``n_per_cell`` control indices (with replacement) for each given cell.

        Parameters
        ----------
        cell_indices
            Indices of the cells to match (usually perturbed cells).
        n_per_cell
            Number of controls to draw per cell.
        rng
            Random generator; a fresh unseeded one when ``None``.

        Returns
        -------
        Integer array of shape ``(len(cell_indices), n_per_cell)`` of control-cell indices.
        """
        rng = np.random.default_rng() if rng is None else rng
        cell_indices = np.asarray(cell_indices, dtype=np.int64)
        out = np.empty((cell_indices.shape[0], n_per_cell), dtype=np.int64)
        batches = self.batches[cell_indices] if self.batches is not None else [None] * len(cell_indices)
        keys = list(zip(self.contexts[cell_indices], batches, strict=True))
        for (context, batch), positions in _group_indices(np.arange(len(keys)), keys).items():
            pool = self.controls_of(context, batch)
            out[positions] = rng.choice(pool, size=(len(positions), n_per_cell), replace=True)
        return out


def _group_indices(indices: np.ndarray, keys: Sequence[object]) -> dict:
    """Map each distinct key (in order of first appearance) to the indices carrying it."""
    groups: dict[object, list[int]] = {}
    for index, key in zip(indices.tolist(), keys, strict=True):
        groups.setdefault(key, []).append(index)
    return {key: np.asarray(members, dtype=np.int64) for key, members in groups.items()}
