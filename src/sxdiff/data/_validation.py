"""Validation of perturbation AnnData / MuData against the sxdiff data contract (DESIGN §2).

Validation only reads: the user's object is never modified, whatever the outcome.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from ._expression import ExpressionScale, count_negative, detect_expression_scale, get_expression
from ._on_disk import check_finite
from ._perturbation_sets import parse_doses, parse_perturbations

__all__ = ["PerturbationData", "resolve_obs_column", "validate_perturbation_data"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PerturbationData:
    """What validation found: parsed perturbations, doses and groups, one entry per cell.

    Attributes
    ----------
    perturbation_sets
        One tuple of perturbation names per cell; controls are ``()``.
    doses
        One dose tuple per cell, aligned with ``perturbation_sets``.
    is_control
        Boolean mask of control cells.
    contexts
        Context label per cell (a single ``"all"`` context when no ``context_key`` was given).
    batches
        Batch label per cell, or ``None``.
    expression_scale
        ``"counts"``, ``"log1p"`` or ``"normal"``.
    perturbations
        Sorted names of all single perturbations (drugs, genes) that occur.
    """

    perturbation_sets: list[tuple[str, ...]]
    doses: list[tuple[float, ...]]
    is_control: np.ndarray
    contexts: np.ndarray
    batches: np.ndarray | None
    expression_scale: ExpressionScale
    perturbations: list[str] = field(default_factory=list)

    @property
    def n_cells(self) -> int:
        """Number of cells."""
        return len(self.perturbation_sets)


def resolve_obs_column(data, key: str) -> pd.Series:
    """Return an obs column of an AnnData, or of a MuData (global ``obs`` first, then modalities).

    Raises
    ------
    KeyError
        Naming the missing column and the available ones.
    """
    if key in data.obs.columns:
        return data.obs[key]
    mods = getattr(data, "mod", None)
    if mods is not None:
        for name, mod in mods.items():
            if key in mod.obs.columns and mod.n_obs == data.n_obs:
                return pd.Series(mod.obs[key].to_numpy(), index=data.obs_names, name=key)
            prefixed = f"{name}:{key}"
            if prefixed in data.obs.columns:
                return data.obs[prefixed]
    available = list(data.obs.columns)
    raise KeyError(
        f"Column {key!r} is not in `obs` (available: {available[:30]}{' ...' if len(available) > 30 else ''}). "
        "Check the spelling, or add the column first."
    )


def check_control_spacing(labels: pd.Series, control_value: str, key: str) -> None:
    """Refuse labels that equal ``control_value`` up to surrounding spaces when ``control_value`` is absent.

    Without this, ``"control "`` would silently become a perturbation named ``"control "``.
    """
    values = labels.astype(str)
    if (values == control_value).any():
        return
    stripped = [v for v in pd.unique(values) if v != control_value and v.strip() == control_value.strip()]
    if stripped:
        _check_control_value(labels, control_value, key)


def _check_control_value(labels: pd.Series, control_value: str, key: str) -> None:
    values = labels.astype(str)
    if (values == control_value).any():
        return
    present = pd.unique(values)
    stripped = [v for v in present if v.strip() == control_value.strip()]
    hint = (
        f" The value(s) {stripped!r} differ only by surrounding spaces; strip them, e.g. "
        f"`adata.obs[{key!r}] = adata.obs[{key!r}].str.strip()`."
        if stripped
        else ""
    )
    raise ValueError(
        f"Control value {control_value!r} does not occur in column {key!r}; its values are "
        f"{[str(v) for v in present[:20]]}{' ...' if len(present) > 20 else ''}. Pass the label your "
        f"control (vehicle, non-targeting) cells carry as `control_value`.{hint}"
    )


def _check_expression(adata: AnnData, layer: str | None, expression_scale: str) -> ExpressionScale:
    matrix = get_expression(adata, layer)
    where = "adata.X" if layer is None else f"adata.layers[{layer!r}]"
    check_finite(matrix, where=where)
    if expression_scale == "normal":
        return "normal"
    try:
        detected = detect_expression_scale(matrix)
    except ValueError as error:  # integer values with a few negatives: name the matrix
        raise ValueError(f"{where}: {error}") from None
    if expression_scale == "auto":
        logger.info("Expression values in %s look like %s.", where, detected)
        return detected
    if expression_scale == "counts":
        n_negative = count_negative(matrix)
        if n_negative:
            raise ValueError(
                f"{where} was declared as counts but has {n_negative} negative value(s). Pass the raw "
                "counts (e.g. `layer='counts'`), or declare `expression_scale='normal'` for "
                "log-normalised or z-scored values."
            )
        if detected != "counts":
            raise ValueError(
                f"{where} was declared as counts but holds non-integer values (they look {detected}). "
                "Pass the layer with raw counts, or declare the scale the values are on."
            )
    if expression_scale == "log1p" and detected == "normal":
        raise ValueError(
            f"{where} was declared as log1p but holds negative or very large values. "
            "Declare `expression_scale='normal'` for general real values."
        )
    return expression_scale  # type: ignore[return-value]


def validate_perturbation_data(
    data,
    *,
    perturbation_key: str,
    control_value: str,
    dose_key: str | None = None,
    context_key: str | None = None,
    batch_key: str | None = None,
    layer: str | None = None,
    modality: str = "rna",
    expression_scale: Literal["auto", "counts", "log1p", "normal"] = "auto",
    delimiter: str = "+",
    default_dose: float | None = None,
    require_controls: bool = True,
    check_expression: bool = True,
) -> PerturbationData:
    """Check perturbation data against the data contract and return what was parsed.

    Nothing in ``data`` is modified, whether validation passes or fails.

    Parameters
    ----------
    data
        AnnData, or MuData whose ``modality`` holds the expression values.
    perturbation_key
        ``obs`` column with perturbation labels (``"A"``, ``"A+B"``, or ``control_value``).
    control_value
        Label of control cells (vehicle, non-targeting guides).
    dose_key
        Optional ``obs`` column of doses (numbers, or ``"d1+d2"`` for combinations).
    context_key
        Optional ``obs`` column of cell line / cell type / patient. Every context with perturbed
        cells must have control cells: contexts are represented by their controls.
    batch_key
        Optional ``obs`` column of batches (plates, wells, samples) used for control matching.
    layer
        Layer with expression values; ``None`` uses ``X``.
    modality
        MuData modality with the expression values (ignored for AnnData).
    expression_scale
        What the values are: ``"counts"``, ``"log1p"`` or ``"normal"``; ``"auto"`` detects it.
    delimiter
        Separator of combination members in labels and doses.
    default_dose
        Dose for perturbed cells without one in ``dose_key`` (missing values are an error otherwise). Without a
        ``dose_key`` every perturbation is one unit of dose (or ``default_dose``).
    require_controls
        Whether control cells must exist (always true for training data).
    check_expression
        Check the expression values (finite, scale). ``False`` skips the pass over the matrix (a model re-reading
        data it registered); the scale is then reported as ``expression_scale`` (``"auto"`` becomes ``"normal"``).

    Returns
    -------
    :class:`PerturbationData` with the parsed sets, doses, control mask, contexts and scale.

    Raises
    ------
    ValueError, KeyError
        With a message that names the column, the offending values and the fix.

    Examples
    --------
    >>> import sxdiff
    >>> adata = sxdiff.datasets.glioblastoma_panobinostat()
    >>> found = validate_perturbation_data(
    ...     adata, perturbation_key="perturbation", control_value="control",
    ...     dose_key="dose", context_key="context")
    >>> found.expression_scale, int(found.is_control.sum())
    ('counts', 2500)
    """
    expr = data.mod[modality] if hasattr(data, "mod") else data
    if hasattr(data, "mod") and modality not in data.mod:
        raise KeyError(f"MuData has no modality {modality!r} (modalities: {list(data.mod.keys())}).")
    if data.n_obs == 0 or expr.n_vars == 0:
        raise ValueError(
            f"The data is empty ({data.n_obs} cells x {expr.n_vars} genes). Check any subsetting done before this call."
        )
    if not data.obs_names.is_unique:
        dupes = data.obs_names[data.obs_names.duplicated()].unique()[:5].tolist()
        raise ValueError(f"`obs_names` are not unique (e.g. {dupes}). Call `adata.obs_names_make_unique()` first.")
    labels = resolve_obs_column(data, perturbation_key)
    if labels.isna().any():
        raise ValueError(
            f"Column {perturbation_key!r} has {int(labels.isna().sum())} missing value(s). Label every "
            f"cell; untreated cells carry the control value {control_value!r}."
        )
    if require_controls:
        _check_control_value(labels, control_value, perturbation_key)
    sets = parse_perturbations(labels, control_value=control_value, delimiter=delimiter, column=perturbation_key)
    dose_values = resolve_obs_column(data, dose_key) if dose_key is not None else None
    doses = parse_doses(
        None if dose_values is None else dose_values.tolist(),
        sets,
        delimiter=delimiter,
        default_dose=default_dose,
        column=dose_key or "dose",
    )
    is_control = np.array([len(s) == 0 for s in sets])
    contexts = _group_labels(data, context_key, "all")
    batches = None if batch_key is None else _group_labels(data, batch_key, None)
    if require_controls:
        _check_contexts_have_controls(contexts, is_control, context_key)
        if batches is not None:
            _warn_batches_without_controls(contexts, batches, is_control, batch_key)
    if check_expression:
        scale = _check_expression(expr, layer, expression_scale)
    else:
        scale = "normal" if expression_scale == "auto" else expression_scale
    perturbations = sorted({m for s in sets for m in s})
    return PerturbationData(
        perturbation_sets=sets,
        doses=doses,
        is_control=is_control,
        contexts=contexts,
        batches=batches,
        expression_scale=scale,
        perturbations=perturbations,
    )


def _group_labels(data, key: str | None, default: str | None) -> np.ndarray:
    if key is None:
        return np.full(data.n_obs, default, dtype=object)
    column = resolve_obs_column(data, key)
    if column.isna().any():
        raise ValueError(
            f"Column {key!r} has {int(column.isna().sum())} missing value(s). Fill them (every cell "
            "needs a group) or drop those cells."
        )
    return column.astype(str).to_numpy(dtype=object)


def _check_contexts_have_controls(contexts: np.ndarray, is_control: np.ndarray, context_key: str | None) -> None:
    frame = pd.DataFrame({"context": contexts, "control": is_control})
    n_controls = frame.groupby("context", sort=True)["control"].sum()
    missing = n_controls[n_controls == 0].index.tolist()
    if missing:
        raise ValueError(
            f"Context(s) {missing} in column {context_key!r} have perturbed cells but no control cells. "
            "Contexts are represented by their control cells: add controls for them, or drop these "
            "contexts (e.g. `adata = adata[~adata.obs[context_key].isin([...])].copy()`)."
        )


def _warn_batches_without_controls(
    contexts: np.ndarray, batches: np.ndarray, is_control: np.ndarray, batch_key: str | None
) -> None:
    frame = pd.DataFrame({"context": contexts, "batch": batches, "control": is_control})
    n_controls = frame.groupby(["context", "batch"], sort=True, observed=True)["control"].sum()
    missing = n_controls[n_controls == 0]
    if len(missing):
        logger.warning(
            "%d (context, %s) group(s) have no control cells, e.g. %s; their cells are matched to "
            "controls of the same context in other batches.",
            len(missing),
            batch_key,
            list(missing.index[:3]),
        )
