"""Readers of the permissive drug tables shipped in ``sxdiff/drugs/_data``."""

from __future__ import annotations

from functools import cache
from importlib import resources

import pandas as pd

from ._table import DrugTable

__all__ = ["load_bundled_table", "load_bundled_tables"]


def _read(name: str) -> pd.DataFrame:
    path = resources.files("sxdiff.drugs").joinpath("_data", name)
    with resources.as_file(path) as file:
        return pd.read_csv(file, sep="\t")


@cache
def _load(source: str) -> DrugTable:
    if source == "chemcpa":
        frame = _read("chemcpa_sciplex3_smiles.tsv")
        return DrugTable.from_dataframe(
            frame, name_col="drug", smiles_col="smiles", moa_col="pathway", source="chemCPA"
        )
    if source == "drugcentral":
        targets = _read("drugcentral_targets.tsv.gz")
        smiles = _read("drugcentral_smiles.tsv.gz")
        structure = DrugTable.from_dataframe(smiles, name_col="drug", smiles_col="smiles", source="DrugCentral")
        mechanism = DrugTable.from_dataframe(
            targets,
            name_col="drug",
            smiles_col=None,
            targets_col="genes",
            actions_col="action_type",
            source="DrugCentral",
        )
        return structure.merge(mechanism)
    if source == "lincs":
        frame = _read("lincs_compounds.tsv.gz")
        frame = frame[~frame["drug"].str.startswith("BRD-")]
        return _first_smiles_per_name(frame)
    raise ValueError(f"Unknown bundled drug table {source!r}; choose 'chemcpa', 'drugcentral' or 'lincs'.")


def _first_smiles_per_name(frame: pd.DataFrame) -> DrugTable:
    """LINCS lists some names under several ids with salt-form SMILES; keep the first valid one per name."""
    from ._names import normalize_drug_name
    from ._structure import canonical_smiles

    seen: dict[str, dict] = {}
    for name, smiles in zip(frame["drug"], frame["smiles"], strict=True):
        key = normalize_drug_name(name)
        if key in seen or not key:
            continue
        canonical = canonical_smiles(smiles)
        if canonical is not None:
            seen[key] = {"name": name, "smiles": canonical, "targets": [], "signs": [], "moa": None}
    return DrugTable._from_records(seen, kind="drug", source="LINCS")


def load_bundled_table(source: str) -> DrugTable:
    """One bundled table as a :class:`DrugTable` (``"chemcpa"``, ``"drugcentral"`` or ``"lincs"``)."""
    return _load(source)


@cache
def load_bundled_tables(sources: tuple[str, ...]) -> DrugTable:
    """The bundled tables merged in order of priority, built once per process (DrugTables are not mutated)."""
    table = DrugTable()
    for source in sources:
        table = table.merge(load_bundled_table(source))
    return table
