"""Turning user conditions and drug descriptions into what StateXDiff.predict needs."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from sxdiff.drugs._table import DrugTable

__all__ = ["conditions_frame", "drug_table_for"]


def conditions_frame(
    conditions: Sequence[str] | pd.DataFrame | str,
    perturbation_key: str,
    dose_key: str | None,
    default_dose: float | None,
) -> pd.DataFrame:
    """A DataFrame with the perturbation column, the dose column (if any) and the resolved ``_dose``."""
    if isinstance(conditions, str):
        conditions = [conditions]
    frame = (
        conditions.reset_index(drop=True).copy()
        if isinstance(conditions, pd.DataFrame)
        else pd.DataFrame({perturbation_key: list(conditions)})
    )
    if perturbation_key not in frame.columns:
        raise KeyError(f"`conditions` needs a column {perturbation_key!r} (it has {list(frame.columns)}).")
    if len(frame) == 0:
        raise ValueError("`conditions` is empty; name at least one perturbation.")
    if dose_key is not None and dose_key in frame.columns:
        frame["_dose"] = frame[dose_key].astype(str)
    elif dose_key is not None and default_dose is None:
        raise KeyError(
            f"The model uses doses: give `conditions` as a DataFrame with columns {perturbation_key!r} and "
            f"{dose_key!r}, e.g. pd.DataFrame({{{perturbation_key!r}: ['drug'], {dose_key!r}: [1.0]}})."
        )
    else:
        frame["_dose"] = str(1.0 if default_dose is None else default_dose)
        if dose_key is not None:
            frame[dose_key] = frame["_dose"]
    return frame


def drug_table_for(names: Sequence[str], drug_table, perturbation_type: str) -> DrugTable:
    """Descriptions of perturbations unseen in training: the user's table, then the bundled tables."""
    if perturbation_type != "drug":
        return DrugTable.genetic(names, modality=perturbation_type)
    from sxdiff.pp._drug_features import _as_table

    return _as_table(drug_table).merge(DrugTable.bundled())
