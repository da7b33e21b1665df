"""The drug table: drug name -> canonical SMILES, signed target genes, mechanism of action."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Literal

import numpy as np
import pandas as pd

from ._bundled_tables import first_smiles_per_name, read_bundled_file
from ._names import normalize_drug_name
from ._structure import canonical_smiles

__all__ = ["ACTION_SIGNS", "DrugTable", "GeneticModality", "action_sign"]

logger = logging.getLogger(__name__)

GeneticModality = Literal["CRISPRa", "CRISPRi", "knockout", "overexpression"]
GENETIC_SIGNS: dict[str, int] = {"crispra": 1, "overexpression": 1, "crispri": -1, "knockout": -1, "knockdown": -1}

ACTION_SIGNS: dict[str, int] = {
    # lowering the target's activity
    "inhibitor": -1,
    "antagonist": -1,
    "blocker": -1,
    "inverse agonist": -1,
    "negative modulator": -1,
    "negative allosteric modulator": -1,
    "allosteric antagonist": -1,
    "antisense inhibitor": -1,
    "degrader": -1,
    "antibody binding": -1,
    "suppressor": -1,
    "channel blocker": -1,
    # raising it
    "agonist": 1,
    "activator": 1,
    "partial agonist": 1,
    "positive allosteric modulator": 1,
    "positive modulator": 1,
    "opener": 1,
    "inducer": 1,
    "stabilizer": 1,
    "releasing agent": 1,
}
"""Sign of a drug's action on its target; anything not listed (``modulator``, ``substrate``, ...) is 0."""

COLUMNS = ["name", "smiles", "targets", "signs", "moa", "kind", "source"]


def action_sign(action: object) -> int:
    """Map an action type (DrugCentral / ChEMBL vocabulary) to -1, +1 or 0 (unknown).

    Examples
    --------
    >>> action_sign("INHIBITOR"), action_sign("Positive allosteric modulator"), action_sign(None)
    (-1, 1, 0)
    >>> action_sign(-1), action_sign("-1"), action_sign("+1.0")  # numbers, also as text (a CSV column)
    (-1, -1, 1)
    """
    if action is None or (isinstance(action, float) and np.isnan(action)):
        return 0
    if isinstance(action, int | np.integer | float) and action in (-1, 0, 1):
        return int(action)
    text = str(action).strip().lower()
    try:
        number = float(text)
    except ValueError:
        return ACTION_SIGNS.get(text, 0)
    return int(number) if number in (-1.0, 0.0, 1.0) else 0


def _split(value: object, sep: str) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, list | tuple | np.ndarray):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(sep) if part.strip()]


class DrugTable:
    """Drugs (and genetic perturbations) with structure and mechanism: a thin wrapper around a DataFrame.

    One row per drug, indexed by the normalised name (:func:`~sxdiff.drugs.normalize_drug_name`), with
    columns ``name`` (as first written), ``smiles`` (canonical parent SMILES or ``None``), ``targets``
    (tuple of gene symbols), ``signs`` (tuple of -1/0/+1, one per target), ``moa``, ``kind``
    (``"drug"`` or ``"genetic"``) and ``source``.

    Build it with :meth:`from_dataframe` (your own table), :meth:`bundled` (the permissive tables
    shipped with sxdiff), :meth:`genetic` (CRISPR perturbations) and combine with :meth:`merge`.

    Examples
    --------
    >>> table = DrugTable.from_dataframe(
    ...     pd.DataFrame({"drug": ["Vorinostat"], "smiles": ["ONC(=O)CCCCCCC(=O)Nc1ccccc1"],
    ...                   "targets": ["HDAC1|HDAC2"], "action": ["INHIBITOR"]}),
    ...     name_col="drug", smiles_col="smiles", targets_col="targets", actions_col="action")
    >>> row = table["vorinostat"]
    >>> row["targets"], row["signs"]
    (('HDAC1', 'HDAC2'), (-1, -1))
    """

    def __init__(self, frame: pd.DataFrame | None = None) -> None:
        if frame is None:
            frame = pd.DataFrame(columns=COLUMNS)
        missing = [c for c in COLUMNS if c not in frame.columns]
        if missing:
            raise KeyError(f"A DrugTable frame needs columns {COLUMNS}; missing {missing}.")
        if not frame.index.is_unique:
            raise ValueError(f"Drug keys are not unique: {frame.index[frame.index.duplicated()].tolist()[:10]}.")
        self._frame = frame[COLUMNS].copy()

    # ----------------------------------------------------------------------------------- building
    @classmethod
    def from_dataframe(
        cls,
        frame: pd.DataFrame,
        *,
        name_col: str = "drug",
        smiles_col: str | None = "smiles",
        targets_col: str | None = None,
        actions_col: str | None = None,
        moa_col: str | None = None,
        target_sep: str = "|",
        source: str = "user",
    ) -> DrugTable:
        """Build a table from a DataFrame with one row per drug (or per drug-target pair).

        Parameters
        ----------
        frame
            The table. Several rows for one drug (e.g. one per target) are merged.
        name_col
            Column of drug names.
        smiles_col
            Column of SMILES (optional).
        targets_col
            Column of target gene symbols, several joined by ``target_sep`` (optional).
        actions_col
            Column of action types (``"INHIBITOR"``, ``"agonist"``, ...) or signs (-1/0/1), one per row
            or one per target joined by ``target_sep``; missing means unknown (0).
        moa_col
            Column of mechanism-of-action labels (optional).
        target_sep
            Separator of several targets (and actions) in one cell.
        source
            Provenance recorded in the ``source`` column.

        Raises
        ------
        KeyError
            A named column is missing.
        ValueError
            Invalid SMILES (every failing drug and its SMILES is listed), or one drug given conflicting
            SMILES (after canonicalisation of the parent molecule).
        """
        for column in (name_col, smiles_col, targets_col, actions_col, moa_col):
            if column is not None and column not in frame.columns:
                raise KeyError(f"Column {column!r} is not in the drug table (columns: {list(frame.columns)}).")
        records: dict[str, dict] = {}
        invalid: list[str] = []
        conflicts: dict[str, set[str]] = {}
        for _, row in frame.iterrows():
            name = row[name_col]
            if name is None or (isinstance(name, float) and np.isnan(name)) or not str(name).strip():
                continue
            key = normalize_drug_name(name)
            record = records.setdefault(
                key, {"name": str(name).strip(), "smiles": None, "targets": [], "signs": [], "moa": None}
            )
            if smiles_col is not None:
                raw = row[smiles_col]
                if isinstance(raw, str) and raw.strip():
                    canonical = canonical_smiles(raw)
                    if canonical is None:
                        invalid.append(f"{str(name).strip()!r}: {raw.strip()!r}")
                    elif record["smiles"] is None:
                        record["smiles"] = canonical
                    elif record["smiles"] != canonical:
                        conflicts.setdefault(str(name).strip(), {record["smiles"]}).add(canonical)
            if targets_col is not None:
                genes = _split(row[targets_col], target_sep)
                actions = _split(row[actions_col], target_sep) if actions_col is not None else []
                if actions and len(actions) not in (1, len(genes)):
                    raise ValueError(
                        f"Drug {name!r} has {len(genes)} targets but {len(actions)} actions; give one action per "
                        f"target (joined by {target_sep!r}) or one for all."
                    )
                for i, gene in enumerate(genes):
                    sign = action_sign(actions[i] if len(actions) == len(genes) else (actions[0] if actions else None))
                    if gene in record["targets"]:
                        j = record["targets"].index(gene)
                        record["signs"][j] = record["signs"][j] or sign
                    else:
                        record["targets"].append(gene)
                        record["signs"].append(sign)
            if moa_col is not None and record["moa"] is None and isinstance(row[moa_col], str) and row[moa_col].strip():
                record["moa"] = row[moa_col].strip()
        if invalid:
            raise ValueError(
                f"{len(invalid)} drug(s) have SMILES that RDKit cannot parse: {'; '.join(invalid)}. Fix or remove "
                "these SMILES (a drug without SMILES can still be described by its targets)."
            )
        if conflicts:
            listed = "; ".join(f"{k!r}: {sorted(v)}" for k, v in list(conflicts.items())[:10])
            raise ValueError(
                f"{len(conflicts)} drug name(s) are given different molecules: {listed}. Keep one SMILES per drug "
                "(names are matched after normalisation of case, punctuation and salt words)."
            )
        return cls._from_records(records, kind="drug", source=source)

    @classmethod
    def _from_records(cls, records: Mapping[str, dict], *, kind: str, source: str) -> DrugTable:
        rows = {
            key: {
                "name": r["name"],
                "smiles": r["smiles"],
                "targets": tuple(r["targets"]),
                "signs": tuple(int(s) for s in r["signs"]),
                "moa": r["moa"],
                "kind": kind,
                "source": source,
            }
            for key, r in records.items()
        }
        frame = pd.DataFrame.from_dict(rows, orient="index", columns=COLUMNS)
        return cls(frame)

    @classmethod
    def genetic(cls, names: Iterable[str], modality: GeneticModality | str = "CRISPRa") -> DrugTable:
        """Genetic perturbations: no structure, one target gene (the name), sign from the modality.

        CRISPRa and overexpression raise their gene (+1); CRISPRi, knock-down and knock-out lower it (-1).

        Examples
        --------
        >>> DrugTable.genetic(["KLF1", "MAP2K6"], modality="CRISPRi")["KLF1"]["signs"]
        (-1,)
        """
        sign = GENETIC_SIGNS.get(str(modality).lower())
        if sign is None:
            raise ValueError(f"Unknown genetic modality {modality!r}; choose one of {list(GENETIC_SIGNS)}.")
        records = {
            str(name): {
                "name": str(name),
                "smiles": None,
                "targets": [str(name)],
                "signs": [sign],
                "moa": str(modality),
            }
            for name in names
        }
        table = cls._from_records(records, kind="genetic", source=f"genetic ({modality})")
        return table

    @classmethod
    def bundled(
        cls, sources: Sequence[Literal["chemcpa", "drugcentral", "lincs"]] = ("chemcpa", "drugcentral", "lincs")
    ):
        """The permissive drug tables shipped with sxdiff, merged in the given order of priority.

        - ``"chemcpa"``: SMILES and pathway of the 188 sci-Plex3 drugs (theislab/chemCPA, MIT);
        - ``"drugcentral"``: drug -> target genes with action types (DrugCentral, CC BY 4.0: cite Avram
          et al., Nucleic Acids Research 2021) and SMILES of the DrugCentral drugs profiled in LINCS;
        - ``"lincs"``: SMILES of ~20,000 LINCS L1000 compounds (dhimmel/lincs, CC0).

        Examples
        --------
        >>> table = DrugTable.bundled()
        >>> "HDAC1" in table["panobinostat"]["targets"]
        True
        """
        return _bundled_tables(tuple(sources))

    @classmethod
    def coerce(cls, drug_table: DrugTable | pd.DataFrame | None) -> DrugTable:
        """A DrugTable from a DrugTable, a DataFrame with standard column names, or ``None`` (empty).

        DataFrame columns are matched case-insensitively: ``drug`` (or ``name``), and optionally ``smiles``,
        ``targets`` (or ``target``), ``action`` (or ``actions``), ``moa``.
        """
        if drug_table is None:
            return cls()
        if isinstance(drug_table, DrugTable):
            return drug_table
        if not isinstance(drug_table, pd.DataFrame):
            raise TypeError(f"A drug table must be a DrugTable or a pandas DataFrame, not {type(drug_table).__name__}.")
        columns = {c.lower(): c for c in drug_table.columns}
        name = columns.get("drug") or columns.get("name")
        if name is None:
            raise KeyError(f"The drug table needs a 'drug' (or 'name') column; it has {list(drug_table.columns)}.")
        return cls.from_dataframe(
            drug_table,
            name_col=name,
            smiles_col=columns.get("smiles"),
            targets_col=columns.get("targets") or columns.get("target"),
            actions_col=columns.get("actions") or columns.get("action"),
            moa_col=columns.get("moa"),
        )

    @classmethod
    def resolve(
        cls,
        names: Iterable[str],
        drug_table: DrugTable | pd.DataFrame | None = None,
        *,
        perturbation_type: str = "drug",
        use_bundled_tables: bool = True,
        extra: DrugTable | None = None,
    ) -> DrugTable:
        """The one policy for where descriptions of perturbations come from (featurising and predicting alike).

        In order of priority: the user's ``drug_table``, then ``extra`` (e.g. SMILES from an ``obs`` column), then
        for drugs the bundled tables (only with ``use_bundled_tables``), for genetic perturbations
        (``perturbation_type`` ``"CRISPRa"``, ``"CRISPRi"``, ...) their own gene as the target.

        Examples
        --------
        >>> mine = pd.DataFrame({"drug": ["KLF1"], "targets": ["KLF1|GATA1"], "action": ["activator"]})
        >>> DrugTable.resolve(["KLF1"], mine, perturbation_type="CRISPRa")["KLF1"]["targets"]
        ('KLF1', 'GATA1')
        >>> "panobinostat" in DrugTable.resolve(["panobinostat"], use_bundled_tables=False)
        False
        """
        table = cls.coerce(drug_table)
        if extra is not None:
            table = table.merge(extra)
        if perturbation_type != "drug":
            names = [str(n) for n in names]
            # genetic rows keep the gene symbol as key: the user's rows for those names move under it, so that
            # they take priority (a normalised key would sit beside the genetic row and never be read)
            own = table._frame.loc[[table.key(n) for n in names if n in table]]
            own.index = [n for n in names if n in table]
            rest = table._frame.drop(index=[table.key(n) for n in names if n in table])
            table = cls(pd.concat([own, rest]) if len(rest) else own)
            return table.merge(cls.genetic(names, modality=perturbation_type))
        return table.merge(cls.bundled()) if use_bundled_tables else table

    def merge(self, other: DrugTable) -> DrugTable:
        """Combine two tables; ``self`` has priority, ``other`` fills missing SMILES, targets and MoA."""
        frame = self._frame.copy()
        shared = other._frame.index.intersection(frame.index)
        for key in shared:
            row = other._frame.loc[key]
            if frame.at[key, "smiles"] is None and row["smiles"] is not None:
                frame.at[key, "smiles"] = row["smiles"]
            if not frame.at[key, "targets"] and row["targets"]:
                frame.at[key, "targets"] = row["targets"]
                frame.at[key, "signs"] = row["signs"]
            if frame.at[key, "moa"] is None and row["moa"] is not None:
                frame.at[key, "moa"] = row["moa"]
        new = other._frame.loc[other._frame.index.difference(frame.index, sort=False)]
        frame = pd.concat([frame, new]) if len(frame) else new.copy()
        return DrugTable(frame)

    # ----------------------------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self._frame)

    def __contains__(self, name: object) -> bool:
        return normalize_drug_name(name) in self._frame.index or str(name) in self._frame.index

    def key(self, name: object) -> str:
        """The row key of a name (normalised; genetic perturbations keep their gene symbol)."""
        if str(name) in self._frame.index:
            return str(name)
        return normalize_drug_name(name)

    def __getitem__(self, name: object) -> pd.Series:
        key = self.key(name)
        if key not in self._frame.index:
            raise KeyError(f"Drug {name!r} (normalised {key!r}) is not in the table of {len(self)} drugs.")
        return self._frame.loc[key]

    def __repr__(self) -> str:
        n_smiles = int(self._frame["smiles"].notna().sum())
        n_targets = int((self._frame["targets"].map(len) > 0).sum())
        return f"DrugTable with {len(self)} entries ({n_smiles} with SMILES, {n_targets} with targets)"

    @property
    def frame(self) -> pd.DataFrame:
        """A copy of the underlying DataFrame."""
        return self._frame.copy()

    def subset(self, names: Iterable[object]) -> DrugTable:
        """Rows for the given names, in that order; names not in the table are skipped."""
        keys = [self.key(n) for n in names]
        keys = list(dict.fromkeys(k for k in keys if k in self._frame.index))
        return DrugTable(self._frame.loc[keys])

    def rename(self, mapping: Mapping[str, str]) -> DrugTable:
        """Return a table whose row keys are the given names (e.g. the labels used in ``obs``)."""
        frame = self._frame.loc[[self.key(n) for n in mapping]].copy()
        frame.index = list(mapping.values())
        return DrugTable(frame)

    # ----------------------------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        """Plain-data representation (strings and lists) for ``uns`` and saved models."""
        f = self._frame
        return {
            "key": [str(k) for k in f.index],
            "name": [str(v) for v in f["name"]],
            "smiles": ["" if v is None else str(v) for v in f["smiles"]],
            "targets": ["|".join(v) for v in f["targets"]],
            "signs": ["|".join(str(s) for s in v) for v in f["signs"]],
            "moa": ["" if v is None else str(v) for v in f["moa"]],
            "kind": [str(v) for v in f["kind"]],
            "source": [str(v) for v in f["source"]],
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Sequence]) -> DrugTable:
        """Inverse of :meth:`to_dict`."""
        rows = {}
        for i, key in enumerate(state["key"]):
            targets = tuple(t for t in str(state["targets"][i]).split("|") if t)
            signs = tuple(int(s) for s in str(state["signs"][i]).split("|") if s != "")
            rows[str(key)] = {
                "name": str(state["name"][i]),
                "smiles": str(state["smiles"][i]) or None,
                "targets": targets,
                "signs": signs,
                "moa": str(state["moa"][i]) or None,
                "kind": str(state["kind"][i]),
                "source": str(state["source"][i]),
            }
        return cls(pd.DataFrame.from_dict(rows, orient="index", columns=COLUMNS))


@cache
def _bundled_table(source: str) -> DrugTable:
    """One bundled table (``"chemcpa"``, ``"drugcentral"`` or ``"lincs"``), built once per process."""
    if source == "chemcpa":
        frame = read_bundled_file("chemcpa_sciplex3_smiles.tsv")
        return DrugTable.from_dataframe(
            frame, name_col="drug", smiles_col="smiles", moa_col="pathway", source="chemCPA"
        )
    if source == "drugcentral":
        targets = read_bundled_file("drugcentral_targets.tsv.gz")
        smiles = read_bundled_file("drugcentral_smiles.tsv.gz")
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
        frame = read_bundled_file("lincs_compounds.tsv.gz")
        frame = frame[~frame["drug"].str.startswith("BRD-")]
        return DrugTable._from_records(first_smiles_per_name(frame), kind="drug", source="LINCS")
    raise ValueError(f"Unknown bundled drug table {source!r}; choose 'chemcpa', 'drugcentral' or 'lincs'.")


@cache
def _bundled_tables(sources: tuple[str, ...]) -> DrugTable:
    """The bundled tables merged in order of priority, built once per process (DrugTables are not mutated)."""
    table = DrugTable()
    for source in sources:
        table = table.merge(_bundled_table(source))
    return table
