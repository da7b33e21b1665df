"""Parsing of perturbation labels and doses into order-free perturbation sets.

A perturbation label is one ``obs`` value such as ``"panobinostat"`` or ``"KLF1+MAP2K6"``. Controls
are encoded as the *empty* set, never as a token. Doses are numbers or strings such as ``"1+0.5"``
whose parts follow the order of the label's parts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = [
    "encode_perturbation_sets",
    "parse_conditions",
    "parse_doses",
    "parse_perturbations",
]


def _split_label(label: str, delimiter: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in label.split(delimiter))


def _balanced(name: str) -> bool:
    """Whether brackets balance: ``"("`` and ``")-JQ1"`` from splitting ``"(+)-JQ1"`` on ``+`` do not."""
    return all(name.count(o) == name.count(c) for o, c in ("()", "[]", "{}"))


def _parse_label(label: str, control_value: str, delimiter: str) -> tuple[str, ...] | None:
    """Members of one label (``()`` for controls), or ``None`` when malformed."""
    if label == control_value:
        return ()
    members = _split_label(label, delimiter)
    if any(m == "" or not _balanced(m) for m in members) or len(set(members)) != len(members):
        return None
    return members


def parse_perturbations(
    values: Iterable[object],
    *,
    control_value: str,
    delimiter: str = "+",
    column: str = "perturbation",
) -> list[tuple[str, ...]]:
    """Parse perturbation labels into tuples of perturbation names.

    Parameters
    ----------
    values
        One label per cell, e.g. ``adata.obs["drug"]``.
    control_value
        The label of control cells; they become the empty tuple.
    delimiter
        Separator of the members of a combination (``"A+B"``).
    column
        Name of the column the values came from, used in error messages.

    Returns
    -------
    One tuple per cell, members in the order written (the model treats them as a set).

    Raises
    ------
    ValueError
        If a label is missing (NaN/None), empty, has an empty member (``"A++B"``) or repeats a
        member (``"A+A"``).

    Examples
    --------
    >>> parse_perturbations(["control", "A", "A+B"], control_value="control")
    [(), ('A',), ('A', 'B')]
    """
    parsed: list[tuple[str, ...]] = []
    missing, malformed = 0, set()
    known: dict[str, tuple[str, ...] | None] = {}  # each distinct label parsed once; cells share the tuple
    for value in values:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            missing += 1
            continue
        label = str(value)
        if label not in known:
            known[label] = _parse_label(label, control_value, delimiter)
        members = known[label]
        if members is None:
            malformed.add(label)
            continue
        parsed.append(members)
    if missing:
        raise ValueError(
            f"Column {column!r} has {missing} missing value(s) (NaN/None). Every cell needs a "
            f"perturbation label; label untreated cells with the control value {control_value!r}."
        )
    if malformed:
        raise ValueError(
            f"Column {column!r} has malformed combination label(s) {sorted(malformed)[:10]}: empty, "
            f"repeated or bracket-splitting members around the delimiter {delimiter!r}. Write combinations "
            f"as 'A{delimiter}B' with distinct members, or pass the delimiter your data uses (names such "
            "as '(+)-JQ1' contain '+': use e.g. `delimiter='|'`)."
        )
    return parsed


def _parse_dose_value(value: object, n_members: int, delimiter: str) -> tuple[float, ...] | None:
    """Return the dose tuple, or None when the value is missing."""
    if value is None:
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
        if math.isnan(number):
            return None
        return (number,) * n_members if n_members > 1 else (number,)
    text = str(value).strip()
    if text == "" or text.lower() in {"nan", "none", "na"}:
        return None
    parts = text.split(delimiter)
    numbers = tuple(float(p) for p in parts)  # ValueError for text that is not a number
    if len(numbers) == 1 and n_members > 1:
        return numbers * n_members
    return numbers


def _dose_outcome(
    value: object, members: tuple[str, ...], delimiter: str, default_dose: float | None
) -> tuple[str, tuple[float, ...]]:
    """Parse one cell's dose into ``(kind, dose)``.

    ``kind`` is ``"ok"``, ``"not_number"``, ``"missing"``, ``"mismatched"`` (count differs from the members) or
    ``"invalid"`` (negative or infinite); ``dose`` is ``()`` when there is none.
    """
    try:
        dose = _parse_dose_value(value, len(members), delimiter)
    except ValueError:
        return "not_number", ()
    if dose is None:
        if default_dose is None:
            return "missing", ()
        dose = (float(default_dose),) * len(members)
    if len(dose) != len(members):
        return "mismatched", dose
    if any((not math.isfinite(d)) or d < 0 for d in dose):
        return "invalid", dose
    return "ok", dose


def parse_doses(
    doses: Iterable[object] | None,
    perturbation_sets: Sequence[tuple[str, ...]],
    *,
    delimiter: str = "+",
    default_dose: float | None = None,
    column: str = "dose",
) -> list[tuple[float, ...]]:
    """Parse doses so that each perturbation set has one dose per member.

    Parameters
    ----------
    doses
        One dose per cell: a number, or a string like ``"1+0.5"`` matching the combination's members.
        A single number for a combination applies to every member. ``None`` means no dose column: every
        perturbation is then one unit of dose (``default_dose`` if given), as for a stimulation or a knock-down.
    perturbation_sets
        Output of :func:`parse_perturbations`.
    delimiter
        Separator of the per-member doses.
    default_dose
        Dose used where a perturbed cell has no dose (NaN), and for every perturbation when there is no dose
        column (1.0 if not given). Missing values in a dose column are an error unless this is given.
    column
        Name of the dose column, used in error messages.

    Returns
    -------
    One tuple per cell, aligned with the perturbation set (empty for controls).

    Raises
    ------
    ValueError
        Doses that are not numbers, negative or infinite, a dose count that does not match the
        combination, or a missing value in a dose column without ``default_dose``.

    Examples
    --------
    >>> parse_doses(["0", "1+0.5"], [(), ("A", "B")])
    [(), (1.0, 0.5)]
    >>> parse_doses(None, [(), ("IFNB",)])  # no dose column: one unit of dose
    [(), (1.0,)]
    """
    sets = list(perturbation_sets)
    if doses is None:
        unit = 1.0 if default_dose is None else float(default_dose)
        return [(unit,) * len(s) if s else () for s in sets]
    dose_list = list(doses)
    if len(dose_list) != len(sets):
        raise ValueError(f"Got {len(dose_list)} doses for {len(sets)} perturbation labels.")
    parsed: list[tuple[float, ...]] = []
    not_numbers: dict[str, int] = {}
    mismatched: list[str] = []
    invalid: list[str] = []
    n_missing = 0
    known: dict = {}  # each distinct (dose, members) pair parsed once; cells share the tuple
    for value, members in zip(dose_list, sets, strict=True):
        if not members:
            parsed.append(())
            continue
        key = (value, members)
        try:
            kind, dose = known[key]
        except KeyError:
            kind, dose = known[key] = _dose_outcome(value, members, delimiter, default_dose)
        except TypeError:  # an unhashable value
            kind, dose = _dose_outcome(value, members, delimiter, default_dose)
        if kind == "not_number":
            not_numbers[str(value)] = not_numbers.get(str(value), 0) + 1
        elif kind == "missing":
            n_missing += 1
        elif kind == "mismatched":
            mismatched.append(f"{delimiter.join(members)!r} with dose {value!r}")
        elif kind == "invalid":
            invalid.append(repr(value))
        parsed.append(dose)
    if not_numbers:
        raise ValueError(
            f"Column {column!r} has values that are not numbers: {sorted(not_numbers)[:10]}. "
            f"Doses must be numbers, or strings of numbers joined by {delimiter!r} for combinations."
        )
    if mismatched:
        raise ValueError(
            f"Column {column!r}: the number of doses does not match the number of perturbations for "
            f"{len(mismatched)} cell(s), e.g. {mismatched[:5]}. Give one dose per member "
            f"(e.g. '1{delimiter}0.5' for 'A{delimiter}B') or a single dose for all members."
        )
    if invalid:
        raise ValueError(f"Column {column!r} has negative or infinite doses: {sorted(set(invalid))[:10]}.")
    if n_missing:
        raise ValueError(
            f"Column {column!r} has {n_missing} perturbed cell(s) without a dose (NaN). Fill them, or "
            "pass `default_dose=1.0` to use a dose of 1 where none is given."
        )
    return parsed


def encode_perturbation_sets(
    perturbation_sets: Sequence[tuple[str, ...]],
    doses: Sequence[tuple[float, ...]],
    vocabulary: Sequence[str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encode perturbation sets as padded index, dose and mask arrays.

    Parameters
    ----------
    perturbation_sets
        One tuple of perturbation names per cell (empty for controls).
    doses
        One dose tuple per cell, aligned with ``perturbation_sets``.
    vocabulary
        Perturbation names; the index of a name is its position here.

    Returns
    -------
    ``(indices, dose_values, mask)`` of shape ``(n_cells, max_set_size)`` (at least one column);
    padding has index 0, dose 0 and mask ``False``.

    Raises
    ------
    KeyError
        If a perturbation is not in the vocabulary.

    Examples
    --------
    >>> idx, dose, mask = encode_perturbation_sets([(), ("B", "A")], [(), (1.0, 2.0)], ["A", "B"])
    >>> idx.tolist(), mask.tolist()
    ([[0, 0], [1, 0]], [[False, False], [True, True]])
    """
    position = {name: i for i, name in enumerate(vocabulary)}
    unknown = sorted({m for s in perturbation_sets for m in s if m not in position})
    if unknown:
        raise KeyError(
            f"Perturbation(s) {unknown[:10]} are not in the vocabulary of {len(position)} known "
            "perturbations. Add them to the drug table (with SMILES and/or targets) first."
        )
    width = max([len(s) for s in perturbation_sets] + [1])
    n = len(perturbation_sets)
    indices = np.zeros((n, width), dtype=np.int64)
    dose_values = np.zeros((n, width), dtype=np.float32)
    mask = np.zeros((n, width), dtype=bool)
    for row, (members, dose) in enumerate(zip(perturbation_sets, doses, strict=True)):
        for col, (name, d) in enumerate(zip(members, dose, strict=True)):
            indices[row, col] = position[name]
            dose_values[row, col] = d
            mask[row, col] = True
    return indices, dose_values, mask


def parse_conditions(
    labels: Iterable[object],
    doses: Iterable[object] | None,
    *,
    control_value: str,
    delimiter: str = "+",
    default_dose: float | None = None,
    column: str = "perturbation",
    dose_column: str = "dose",
) -> tuple[list[tuple[str, ...]], list[tuple[float, ...]]]:
    """Conditions to predict (labels and doses) as perturbation sets with one dose per member.

    The same parsing as training data (:func:`parse_perturbations`, :func:`parse_doses`), for every consumer of
    condition labels (``StateXDiff.predict``, the baselines); the control label is refused, since a control is no
    perturbation to predict.

    Examples
    --------
    >>> parse_conditions(["A", "A+B"], ["2", "1+0.5"], control_value="control")
    ([('A',), ('A', 'B')], [(2.0,), (1.0, 0.5)])
    """
    sets = parse_perturbations(list(labels), control_value=control_value, delimiter=delimiter, column=column)
    if any(len(s) == 0 for s in sets):
        raise ValueError(
            f"{control_value!r} is the control label, not a perturbation to predict: the control cells themselves are "
            "its prediction. Ask for perturbations only."
        )
    dose_list = None if doses is None else list(doses)
    return sets, parse_doses(dose_list, sets, delimiter=delimiter, default_dose=default_dose, column=dose_column)
