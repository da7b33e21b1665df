"""The state-matched shift: a per-cell-state mean shift, the baseline a context-aware model must beat."""

from __future__ import annotations

import logging

import numpy as np
from anndata import AnnData

from sxdiff.data._expression import get_expression

from ._baselines import MeanShiftBaseline, _dense

__all__ = ["StateMatchedBaseline"]

logger = logging.getLogger(__name__)


class StateMatchedBaseline(MeanShiftBaseline):
    """Apply to each query control cell the training delta of its cell state.

    Training control cells are clustered into ``n_states`` cell states (k-means on a PCA of the controls).
    For every training context and condition, the perturbed cells are assigned to states after removing
    the condition's mean shift in that context (so that the perturbation itself does not move them
    across states), and a state's delta is the mean of its perturbed cells minus the mean of the
    context's controls in the same state; deltas are averaged over contexts. A query control cell gets
    the delta of its nearest state; states or conditions without enough cells (``min_cells`` perturbed
    and control cells in a context) fall back to the condition's :class:`MeanShiftBaseline` delta.

    On real data this simple baseline matches published models for unseen contexts: a model that does
    not beat it has not learned context.

    Parameters
    ----------
    n_states
        Number of cell states (reduced when there are fewer than ``min_cells`` controls per state).
    n_comps
        Principal components of the control cells used for clustering.
    min_cells
        Minimum perturbed and control cells of a state in a context for its delta to count.
    seed
        Seed of k-means.
    **kwargs
        Parameters of :class:`MeanShiftBaseline`.

    Examples
    --------
    >>> import pandas as pd, sxdiff
    >>> adata = sxdiff.datasets.glioblastoma_panobinostat()
    >>> train = adata[adata.obs["context"] != "PW034"].copy()
    >>> baseline = StateMatchedBaseline(dose_key="dose", context_key="context").fit(train)
    >>> query = adata[(adata.obs["context"] == "PW034") & adata.obs["is_control"]]
    >>> pred = baseline.predict(query, pd.DataFrame({"perturbation": ["panobinostat"], "dose": [0.2]}))
    >>> pred.n_obs == query.n_obs
    True
    """

    def __init__(self, *, n_states: int = 8, n_comps: int = 20, min_cells: int = 5, seed: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        if n_states < 1 or min_cells < 1:
            raise ValueError(f"n_states and min_cells must be positive; got {n_states} and {min_cells}.")
        self.n_states = n_states
        self.n_comps = n_comps
        self.min_cells = min_cells
        self.seed = seed

    def _fit(self, adata: AnnData, found) -> None:
        from sklearn.cluster import KMeans

        from sxdiff.metrics import PCASpace

        super()._fit(adata, found)
        X = _dense(get_expression(adata, self.layer))
        controls = X[found.is_control]
        n_states = max(1, min(self.n_states, controls.shape[0] // self.min_cells))
        self.space_ = PCASpace.fit(controls, n_comps=self.n_comps, seed=self.seed)
        self.kmeans_ = KMeans(n_clusters=n_states, n_init=10, random_state=self.seed).fit(
            self.space_.transform(controls)
        )
        keys = np.array([self.delimiter.join(sorted(s)) for s in found.perturbation_sets], dtype=object)
        doses = np.array([self._dose_key_of(s, d) for s, d in zip(found.perturbation_sets, found.doses, strict=True)])
        collected: dict[tuple[str, str], dict[int, list[np.ndarray]]] = {}
        for context in np.unique(found.contexts):
            in_context = found.contexts == context
            ctrl = X[in_context & found.is_control]
            ctrl_states = self.kmeans_.predict(self.space_.transform(ctrl))
            ctrl_mean = ctrl.mean(axis=0)
            treated = np.flatnonzero(in_context & ~found.is_control)
            for condition in {(keys[i], doses[i]) for i in treated}:
                rows = treated[(keys[treated] == condition[0]) & (doses[treated] == condition[1])]
                cells = X[rows]
                centred = cells - (cells.mean(axis=0) - ctrl_mean)
                states = self.kmeans_.predict(self.space_.transform(centred))
                for state in np.unique(states):
                    n_ctrl = int((ctrl_states == state).sum())
                    if (states == state).sum() < self.min_cells or n_ctrl < self.min_cells:
                        continue
                    delta = cells[states == state].mean(axis=0) - ctrl[ctrl_states == state].mean(axis=0)
                    collected.setdefault(condition, {}).setdefault(int(state), []).append(delta)
        self.state_deltas_ = {
            condition: {state: np.mean(deltas, axis=0) for state, deltas in by_state.items()}
            for condition, by_state in collected.items()
        }
        logger.info("StateMatchedBaseline: %d states, %d conditions with state deltas", n_states, len(collected))

    def _predict_condition(self, X: np.ndarray, contexts: np.ndarray, condition: dict) -> np.ndarray:
        members, doses = self._parse_condition(condition)
        fallback = self._delta_of(members, doses)
        key = self.delimiter.join(sorted(members))
        dose = "" if doses is None else self._dose_key_of(members, doses)
        by_state = self.state_deltas_.get((key, dose), {})
        states = self.kmeans_.predict(self.space_.transform(X))
        deltas = np.vstack([by_state.get(int(state), fallback) for state in range(self.kmeans_.n_clusters)])
        return (X + deltas[states]).astype(X.dtype)
