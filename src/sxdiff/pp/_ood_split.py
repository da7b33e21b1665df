"""Out-of-distribution train/validation/test splits of perturbation data."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from sxdiff.data._perturbation_sets import parse_doses, parse_perturbations
from sxdiff.data._validation import check_control_spacing, resolve_obs_column

__all__ = ["SPLIT_LABELS", "SplitKind", "ood_split"]

logger = logging.getLogger(__name__)

SplitKind = Literal["random", "unseen_drug", "unseen_context", "unseen_combination", "unseen_dose"]
SPLIT_LABELS = ("train", "validation", "test")


def ood_split(
    adata: AnnData,
    kind: SplitKind,
    holdout: Sequence[object] | None = None,
    *,
    perturbation_key: str = "perturbation",
    control_value: str = "control",
    context_key: str | None = None,
    dose_key: str | None = None,
    delimiter: str = "+",
    test_fraction: float = 0.2,
    validation_fraction: float = 0.1,
    seed: int = 0,
    key_added: str = "sxdiff_split",
    copy: bool = False,
) -> AnnData | None:
    """Split cells into ``"train"``, ``"validation"`` and ``"test"`` for out-of-distribution evaluation.

    Control cells are never ``"test"``: they are the sources that predictions start from and the
    reference every metric is computed against, so they stay ``"train"`` in every split kind
    (including the controls of a held-out context). ``"validation"`` cells are a random
    ``validation_fraction`` of the perturbed training cells (in distribution); choose
    hyperparameters on them, never on ``"test"``.

    Parameters
    ----------
    adata
        Annotated data matrix.
    kind
        How to hold out test cells:

        ``"random"``
            A random ``test_fraction`` of perturbed cells.
        ``"unseen_drug"``
            Every cell whose perturbation contains a held-out drug, at every dose and in every
            combination, so the drug never occurs in training.
        ``"unseen_context"``
            The perturbed cells of held-out contexts (``context_key``); their controls stay in
            training as prediction sources.
        ``"unseen_combination"``
            Held-out combinations whose single members all occur in training.
        ``"unseen_dose"``
            Perturbed cells at held-out dose values (``dose_key``; a combination is held out when any
            member's dose is).
    holdout
        What to hold out: drug names, context labels, combination labels (``"A+B"``, order-free) or
        dose values, by ``kind``. ``None`` draws a ``test_fraction`` of them at random with ``seed``
        (at least one). Ignored for ``"random"``.
    perturbation_key
        ``obs`` column with perturbation labels.
    control_value
        Label of control cells.
    context_key
        ``obs`` column of contexts; required for ``"unseen_context"``.
    dose_key
        ``obs`` column of doses; required for ``"unseen_dose"``.
    delimiter
        Separator of combination members.
    test_fraction
        Fraction of cells (``"random"``) or of candidates (``holdout=None``) held out as test.
    validation_fraction
        Fraction of the remaining perturbed cells labelled ``"validation"``.
    seed
        Random seed; the split is a deterministic function of the data, arguments and seed.
    key_added
        ``obs`` column to write (categorical with categories train/validation/test). The arguments
        are recorded in ``uns[key_added]``.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None``, or a copy of ``adata`` with the split when ``copy=True``.

    Raises
    ------
    ValueError, KeyError
        Unknown split kind, holdout values that do not exist (listed), missing columns, or a
        combination holdout whose members are not all in training.

    Examples
    --------
    >>> import sxdiff
    >>> adata = sxdiff.datasets.glioblastoma_panobinostat()
    >>> sxdiff.pp.ood_split(adata, kind="unseen_context", holdout=["PW034"], context_key="context")
    >>> adata.obs["sxdiff_split"].value_counts().to_dict()
    {'train': 4300, 'test': 500, 'validation': 200}
    """
    if kind not in SplitKind.__args__:  # type: ignore[attr-defined]
        raise ValueError(f"Unknown split kind {kind!r}; choose one of {list(SplitKind.__args__)}.")  # type: ignore[attr-defined]
    if not 0 < test_fraction < 1 or not 0 <= validation_fraction < 1:
        raise ValueError("`test_fraction` must be in (0, 1) and `validation_fraction` in [0, 1).")
    if adata.n_obs == 0:
        raise ValueError("The AnnData is empty (0 cells); there is nothing to split.")
    labels = resolve_obs_column(adata, perturbation_key)
    if labels.isna().any():
        raise ValueError(f"Column {perturbation_key!r} has missing values; label every cell first.")
    check_control_spacing(labels, control_value, perturbation_key)
    sets = parse_perturbations(labels, control_value=control_value, delimiter=delimiter, column=perturbation_key)
    if dose_key is not None:  # read doses now, so malformed ones fail before anything is written
        parse_doses(resolve_obs_column(adata, dose_key).tolist(), sets, delimiter=delimiter, column=dose_key)
    is_control = np.array([len(s) == 0 for s in sets])
    if is_control.all():
        raise ValueError(
            f"Column {perturbation_key!r} holds only the control value {control_value!r}; no cell to test."
        )
    rng = np.random.default_rng(seed)

    if kind == "random":
        perturbed = np.flatnonzero(~is_control)
        n_test = max(1, round(test_fraction * len(perturbed)))
        is_test = np.zeros(adata.n_obs, dtype=bool)
        is_test[rng.choice(perturbed, size=n_test, replace=False)] = True
        chosen: list[object] = []
    elif kind == "unseen_drug":
        is_test, chosen = _unseen_drug(sets, holdout, test_fraction, rng, perturbation_key)
    elif kind == "unseen_context":
        is_test, chosen = _unseen_context(adata, is_control, context_key, holdout, test_fraction, rng)
    elif kind == "unseen_combination":
        is_test, chosen = _unseen_combination(sets, holdout, test_fraction, rng, delimiter, perturbation_key)
    else:
        is_test, chosen = _unseen_dose(adata, sets, dose_key, holdout, test_fraction, rng, delimiter)

    if not is_test.any():
        raise ValueError(f"The {kind!r} split with holdout {chosen!r} leaves no test cells.")
    split = np.full(adata.n_obs, "train", dtype=object)
    split[is_test] = "test"
    candidates = np.flatnonzero(~is_test & ~is_control)
    n_val = round(validation_fraction * len(candidates))
    if n_val:
        split[rng.choice(candidates, size=n_val, replace=False)] = "validation"
    if not ((split == "train") & ~is_control).any():
        raise ValueError(f"The {kind!r} split with holdout {chosen!r} leaves no perturbed cells for training.")

    target = adata.copy() if copy else adata
    target.obs[key_added] = pd.Categorical(split, categories=list(SPLIT_LABELS))
    target.uns[key_added] = {
        "kind": kind,
        "holdout": [str(h) for h in chosen],
        "seed": int(seed),
        "perturbation_key": perturbation_key,
        "control_value": control_value,
    }
    logger.info(
        "ood_split(%s): %d train, %d validation, %d test cells; holdout %s",
        kind,
        int((split == "train").sum()),
        int((split == "validation").sum()),
        int((split == "test").sum()),
        chosen,
    )
    return target if copy else None


def _draw(candidates: list, holdout: Sequence[object] | None, fraction: float, rng: np.random.Generator) -> list:
    if holdout is not None:
        return list(holdout)
    n = max(1, round(fraction * len(candidates)))
    order = rng.permutation(len(candidates))[:n]
    return [candidates[i] for i in sorted(order)]


def _check_known(requested: Sequence[object], known: Sequence[object], what: str, column: str | None) -> None:
    if isinstance(requested, str):
        raise TypeError(f"`holdout` must be a list of {what}s, e.g. [{requested!r}], not a string.")
    known_set = set(known)
    missing = [r for r in requested if r not in known_set]
    if missing:
        where = f" in column {column!r}" if column else ""
        raise ValueError(f"Holdout {what}(s) {missing} do not occur{where}. Available: {sorted(map(str, known))[:30]}.")
    if len(requested) == 0:
        raise ValueError(f"`holdout` is empty; name at least one {what} or pass `holdout=None`.")


def _unseen_drug(sets, holdout, fraction, rng, column) -> tuple[np.ndarray, list]:
    drugs = sorted({m for s in sets for m in s})
    if holdout is not None:
        _check_known(holdout, drugs, "drug", column)
    if len(drugs) < 2:
        raise ValueError(f"Column {column!r} has fewer than two perturbations; an unseen-drug split needs two.")
    chosen = _draw(drugs, holdout, fraction, rng)
    held = set(chosen)
    is_test = np.array([bool(held.intersection(s)) for s in sets])
    return is_test, chosen


def _unseen_context(adata, is_control, context_key, holdout, fraction, rng) -> tuple[np.ndarray, list]:
    if context_key is None:
        raise ValueError("kind='unseen_context' needs `context_key`, the obs column of cell lines / patients.")
    contexts = resolve_obs_column(adata, context_key).astype(str).to_numpy()
    known = sorted(set(contexts[~is_control]))
    if holdout is not None:
        holdout = [str(h) for h in holdout] if not isinstance(holdout, str) else holdout
        _check_known(holdout, sorted(set(contexts)), "context", context_key)
    if len(known) < 2:
        raise ValueError(f"Column {context_key!r} has fewer than two contexts with perturbed cells.")
    chosen = _draw(known, holdout, fraction, rng)
    missing_controls = [c for c in chosen if not (is_control & (contexts == c)).any()]
    if missing_controls:
        raise ValueError(
            f"Held-out context(s) {missing_controls} have no control cells, so nothing to predict from. "
            "Hold out contexts that have controls."
        )
    is_test = np.isin(contexts, chosen) & ~is_control
    return is_test, chosen


def _unseen_combination(sets, holdout, fraction, rng, delimiter, column) -> tuple[np.ndarray, list]:
    keys = np.array([delimiter.join(sorted(s)) for s in sets], dtype=object)
    combos = sorted({k for k, s in zip(keys, sets, strict=True) if len(s) > 1})
    singles = {s[0] for s in sets if len(s) == 1}
    if holdout is not None:
        if isinstance(holdout, str):
            raise TypeError(f"`holdout` must be a list of combinations, e.g. [{holdout!r}], not a string.")
        canonical = [delimiter.join(sorted(p.strip() for p in str(h).split(delimiter))) for h in holdout]
        not_combos = [h for h, c in zip(holdout, canonical, strict=True) if delimiter not in c]
        if not_combos:
            raise ValueError(f"Holdout value(s) {not_combos} are not combinations (no {delimiter!r}).")
        _check_known(canonical, combos, "combination", column)
        training_drugs = {m for k, s in zip(keys, sets, strict=True) if k not in set(canonical) for m in s}
        unseen = sorted({m for c in canonical for m in c.split(delimiter)} - training_drugs)
        if unseen:
            raise ValueError(
                f"Member(s) {unseen} of the held-out combinations occur in no training cell, so this is "
                "not an unseen-combination split; use kind='unseen_drug' for them."
            )
        chosen = canonical
    else:
        candidates = [c for c in combos if all(m in singles for m in c.split(delimiter))]
        if not candidates:
            raise ValueError(
                f"No combination in column {column!r} has all its members measured as single perturbations."
            )
        chosen = _draw(candidates, None, fraction, rng)
    is_test = np.isin(keys, chosen)
    return is_test, chosen


def _unseen_dose(adata, sets, dose_key, holdout, fraction, rng, delimiter) -> tuple[np.ndarray, list]:
    if dose_key is None:
        raise ValueError("kind='unseen_dose' needs `dose_key`, the obs column of doses.")
    doses = parse_doses(resolve_obs_column(adata, dose_key).tolist(), sets, delimiter=delimiter, column=dose_key)
    levels = sorted({d for dose in doses for d in dose})
    if holdout is not None:
        if isinstance(holdout, str):
            raise TypeError(f"`holdout` must be a list of doses, e.g. [{holdout}], not a string.")
        values = [float(h) for h in holdout]
        missing = [h for h in values if not any(np.isclose(h, lv) for lv in levels)]
        if missing:
            raise ValueError(f"Holdout dose(s) {missing} do not occur in column {dose_key!r}. Available: {levels}.")
        chosen = values
    else:
        if len(levels) < 2:
            raise ValueError(f"Column {dose_key!r} has fewer than two dose levels among perturbed cells.")
        chosen = _draw(levels, None, fraction, rng)
    is_test = np.array([any(np.isclose(d, c) for d in dose for c in chosen) for dose in doses])
    return is_test, chosen
