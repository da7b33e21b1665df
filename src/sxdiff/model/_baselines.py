"""Simple baselines with the same fit/predict interface as the StateXDiff model.

A prediction starts from real control cells of the target context and returns one predicted cell
per (control cell, condition), like ``StateXDiff.predict``.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from anndata import AnnData

from sxdiff.data._expression import get_expression
from sxdiff.data._perturbation_sets import parse_conditions
from sxdiff.data._validation import resolve_obs_column, validate_perturbation_data
from sxdiff.module._decoding import apply_log_change

from ._conditions import conditions_frame

__all__ = ["ControlBaseline", "MeanShiftBaseline"]

logger = logging.getLogger(__name__)


def _dense(matrix) -> np.ndarray:
    return np.asarray(matrix.toarray() if sp.issparse(matrix) else matrix, dtype=np.float32)


class _Baseline(ABC):
    """Shared registration, condition parsing and output assembly."""

    def __init__(
        self,
        *,
        perturbation_key: str = "perturbation",
        control_value: str = "control",
        dose_key: str | None = None,
        context_key: str | None = None,
        layer: str | None = None,
        delimiter: str = "+",
    ) -> None:
        self.perturbation_key = perturbation_key
        self.control_value = control_value
        self.dose_key = dose_key
        self.context_key = context_key
        self.layer = layer
        self.delimiter = delimiter
        self.var_names_: pd.Index | None = None

    def fit(self, adata: AnnData) -> _Baseline:
        """Learn from training cells (perturbed cells and the controls of their contexts)."""
        found = validate_perturbation_data(
            adata,
            perturbation_key=self.perturbation_key,
            control_value=self.control_value,
            dose_key=self.dose_key,
            context_key=self.context_key,
            layer=self.layer,
            delimiter=self.delimiter,
        )
        self.var_names_ = adata.var_names.copy()
        values = get_expression(adata, self.layer)
        self.nonnegative_ = bool((values.min() if sp.issparse(values) else np.min(values)) >= 0)
        self._fit(adata, found)
        return self

    @abstractmethod
    def _fit(self, adata: AnnData, found) -> None:
        """Store what the baseline needs from validated training data."""

    def _check_fitted(self) -> None:
        if self.var_names_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call `.fit(adata_train)` first.")

    def _conditions(self, conditions: Sequence[str] | pd.DataFrame) -> pd.DataFrame:
        frame = conditions_frame(conditions, self.perturbation_key, self.dose_key, default_dose=None)
        return frame.drop(columns="_dose")

    def predict(self, adata_control: AnnData, conditions: Sequence[str] | pd.DataFrame) -> AnnData:
        """Predict every condition for every given control cell.

        Parameters
        ----------
        adata_control
            Real control cells (the sources), e.g. the controls of an unseen context.
        conditions
            Perturbation labels, or a DataFrame with the perturbation (and dose) columns.

        Returns
        -------
        AnnData with one cell per (condition, source cell): ``X`` on the scale of the training data,
        ``obs`` with the condition columns, the source's context and ``source_cell``.
        """
        self._check_fitted()
        if list(adata_control.var_names) != list(self.var_names_):
            raise ValueError(
                "The genes of `adata_control` differ from those the baseline was fitted on; subset them "
                "with `adata_control[:, model.var_names_]`."
            )
        labels = resolve_obs_column(adata_control, self.perturbation_key).astype(str)
        not_control = sorted(set(labels) - {self.control_value})
        if not_control:
            raise ValueError(
                f"`adata_control` holds non-control cells ({not_control[:5]} in {self.perturbation_key!r}); "
                f"predictions start from control cells ({self.control_value!r})."
            )
        frame = self._conditions(conditions)
        X = _dense(get_expression(adata_control, self.layer))
        contexts = (
            resolve_obs_column(adata_control, self.context_key).astype(str).to_numpy()
            if self.context_key
            else np.full(adata_control.n_obs, "all", dtype=object)
        )
        blocks, obs_blocks = [], []
        for row in frame.itertuples(index=False):
            condition = row._asdict()
            blocks.append(self._predict_condition(X, contexts, condition))
            obs = pd.DataFrame({key: [value] * adata_control.n_obs for key, value in condition.items()})
            obs["source_cell"] = adata_control.obs_names.to_numpy()
            if self.context_key:
                obs[self.context_key] = contexts
            obs_blocks.append(obs)
        obs = pd.concat(obs_blocks, ignore_index=True)
        obs.index = [f"pred_{i}" for i in range(len(obs))]
        return AnnData(np.vstack(blocks), obs=obs, var=pd.DataFrame(index=self.var_names_.copy()))

    @abstractmethod
    def _predict_condition(self, X: np.ndarray, contexts: np.ndarray, condition: dict) -> np.ndarray:
        """Predicted expression of the source cells ``X`` under one condition."""

    def _shifted(self, X: np.ndarray, change: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """The source cells ``X`` with the mean of each group of rows moved by ``change`` (``(genes,)`` or per row).

        As StateXDiff applies a change (:func:`~sxdiff.module.apply_log_change`): added to values that may be
        negative; for non-negative data (fitted on), multiplied in proportion to the group's mean, so that zeros
        stay zeros and no value goes below 0 (adding a change to every cell turns genes silent in every source into
        small constants in all predicted cells, which a differential-expression test calls significant).
        """
        change = np.broadcast_to(np.asarray(change, dtype=np.float32), X.shape)
        if not self.nonnegative_:
            return (X + change).astype(X.dtype)
        out = np.empty_like(X)
        for group in pd.unique(groups):
            rows = np.flatnonzero(groups == group)
            values = torch.as_tensor(X[rows])
            out[rows] = apply_log_change(
                values, torch.as_tensor(np.ascontiguousarray(change[rows])), values.mean(dim=0), nonnegative=True
            ).numpy()
        return out


class ControlBaseline(_Baseline):
    """Predict no change: every predicted cell is its source control cell.

    The floor any model must beat. Parameters are those of :class:`MeanShiftBaseline`.

    Examples
    --------
    >>> import sxdiff
    >>> adata = sxdiff.datasets.norman_crispra()
    >>> baseline = ControlBaseline().fit(adata)
    >>> baseline.predict(adata[adata.obs["is_control"]], ["KLF1"]).n_obs
    100
    """

    def _fit(self, adata: AnnData, found) -> None:
        """Nothing to learn: the prediction is the source cell."""

    def _predict_condition(self, X: np.ndarray, contexts: np.ndarray, condition: dict) -> np.ndarray:
        return X.copy()


class MeanShiftBaseline(_Baseline):
    """Add the average training change of a perturbation to the source control cells.

    For each training context, the delta of a condition is the mean of its perturbed cells minus the
    mean of that context's control cells; the baseline averages these deltas over contexts. A
    condition is looked up as (perturbation, dose); an unseen perturbation falls back to the average
    delta of all training perturbations at the same dose, then to the average over all conditions.

    Parameters
    ----------
    perturbation_key
        ``obs`` column with perturbation labels.
    control_value
        Label of control cells.
    dose_key
        ``obs`` column of doses, or ``None``.
    context_key
        ``obs`` column of contexts, or ``None``.
    layer
        Layer to read (``None``: ``X``); predictions are on the same scale.
    delimiter
        Separator of combination members.

    Examples
    --------
    >>> import sxdiff
    >>> adata = sxdiff.datasets.norman_crispra()
    >>> baseline = MeanShiftBaseline(context_key="context").fit(adata)
    >>> pred = baseline.predict(adata[adata.obs["is_control"]], ["KLF1", "KLF1+MAP2K6"])
    >>> pred.n_obs, sorted(pred.obs["perturbation"].unique())
    (200, ['KLF1', 'KLF1+MAP2K6'])
    """

    def _fit(self, adata: AnnData, found) -> None:
        X = _dense(get_expression(adata, self.layer))
        keys = np.array([self.delimiter.join(sorted(s)) for s in found.perturbation_sets], dtype=object)
        doses = np.array([self._dose_key_of(s, d) for s, d in zip(found.perturbation_sets, found.doses, strict=True)])
        deltas: dict[tuple[str, str], list[np.ndarray]] = {}
        for context in pd.unique(found.contexts):
            in_context = found.contexts == context
            control_mean = X[in_context & found.is_control].mean(axis=0)
            treated = in_context & ~found.is_control
            frame = pd.DataFrame({"key": keys[treated], "dose": doses[treated]})
            for (key, dose), rows in frame.groupby(["key", "dose"], sort=True).indices.items():
                cell_rows = np.flatnonzero(treated)[rows]
                deltas.setdefault((key, dose), []).append(X[cell_rows].mean(axis=0) - control_mean)
        self.deltas_ = {k: np.mean(v, axis=0) for k, v in deltas.items()}
        by_dose: dict[str, list[np.ndarray]] = {}
        for (_, dose), delta in self.deltas_.items():
            by_dose.setdefault(dose, []).append(delta)
        self.dose_deltas_ = {dose: np.mean(v, axis=0) for dose, v in by_dose.items()}
        self.global_delta_ = np.mean(list(self.deltas_.values()), axis=0)

    def _dose_key_of(self, members: tuple[str, ...], dose: tuple[float, ...]) -> str:
        if self.dose_key is None:
            return ""
        order = np.argsort(members)
        return self.delimiter.join(f"{dose[i]:g}" for i in order)

    def _parse_condition(self, condition: dict) -> tuple[tuple[str, ...], tuple[float, ...] | None]:
        """Members of a condition and one dose per member (``None`` without a dose column)."""
        sets, doses = parse_conditions(
            [condition[self.perturbation_key]],
            None if self.dose_key is None else [condition[self.dose_key]],
            control_value=self.control_value,
            delimiter=self.delimiter,
            column=self.perturbation_key,
            dose_column=self.dose_key or "dose",
        )
        return sets[0], None if self.dose_key is None else doses[0]

    def _delta_of(self, members: tuple[str, ...], doses: tuple[float, ...] | None) -> np.ndarray:
        """The training delta of a condition, with the fallbacks described in the class docstring."""
        key = self.delimiter.join(sorted(members))
        dose = "" if doses is None else self._dose_key_of(members, doses)
        if (key, dose) in self.deltas_:
            return self.deltas_[(key, dose)]
        if dose in self.dose_deltas_:
            logger.info("%s: %r at dose %s unseen; using the mean delta at that dose.", type(self).__name__, key, dose)
            return self.dose_deltas_[dose]
        logger.info("%s: %r at dose %s unseen; using the mean delta of all conditions.", type(self).__name__, key, dose)
        return self.global_delta_

    def _predict_condition(self, X: np.ndarray, contexts: np.ndarray, condition: dict) -> np.ndarray:
        return self._shifted(X, self._delta_of(*self._parse_condition(condition)), contexts)
