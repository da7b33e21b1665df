"""The conditions to predict, as given by a user: labels, or a DataFrame with perturbation (and dose) columns."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

__all__ = ["conditions_frame"]


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
            f"Predictions use doses ({dose_key!r}): give `conditions` as a DataFrame with columns "
            f"{perturbation_key!r} and {dose_key!r}, "
            f"e.g. pd.DataFrame({{{perturbation_key!r}: ['drug'], {dose_key!r}: [1.0]}})."
        )
    else:
        frame["_dose"] = str(1.0 if default_dose is None else default_dose)
        if dose_key is not None:
            frame[dose_key] = frame["_dose"]
    return frame
