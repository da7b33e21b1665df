"""Readers of the permissive drug tables shipped in ``sxdiff/drugs/_data`` (plain frames and records).

:meth:`DrugTable.bundled <sxdiff.drugs.DrugTable.bundled>` turns them into drug tables; this module knows the
files, not the table class, so the two import one way only.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from ._names import normalize_drug_name
from ._structure import canonical_smiles

__all__ = ["first_smiles_per_name", "read_bundled_file"]


def read_bundled_file(name: str) -> pd.DataFrame:
    """One tab-separated file of ``sxdiff/drugs/_data`` (e.g. ``"lincs_compounds.tsv.gz"``) as a DataFrame."""
    path = resources.files("sxdiff.drugs").joinpath("_data", name)
    with resources.as_file(path) as file:
        return pd.read_csv(file, sep="\t")


def first_smiles_per_name(frame: pd.DataFrame) -> dict[str, dict]:
    """Drug records keyed by normalised name, keeping the first valid SMILES per name.

    LINCS lists some names under several ids with salt-form SMILES. ``frame`` has columns ``drug`` and
    ``smiles``; each record has ``name``, canonical ``smiles``, empty ``targets`` and ``signs``, and no ``moa``.

    Examples
    --------
    >>> frame = pd.DataFrame({"drug": ["Aspirin", "aspirin"], "smiles": ["CC(=O)Oc1ccccc1C(=O)O", "C"]})
    >>> first_smiles_per_name(frame)["aspirin"]["smiles"]
    'CC(=O)Oc1ccccc1C(=O)O'
    """
    seen: dict[str, dict] = {}
    for name, smiles in zip(frame["drug"], frame["smiles"], strict=True):
        key = normalize_drug_name(name)
        if key in seen or not key:
            continue
        canonical = canonical_smiles(smiles)
        if canonical is not None:
            seen[key] = {"name": name, "smiles": canonical, "targets": [], "signs": [], "moa": None}
    return seen
