"""Gene sets and protein complexes used to propagate drug targets: GMT files and CORUM tables."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

__all__ = ["CORUM_URL", "download_corum", "read_corum", "read_gmt"]

logger = logging.getLogger(__name__)

CORUM_URL = "https://mips.helmholtz-muenchen.de/corum/download/coreComplexes.txt.zip"


def read_gmt(path: str | Path) -> dict[str, list[str]]:
    r"""Read gene sets from a GMT file (``name<TAB>description<TAB>gene<TAB>gene...``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "sets.gmt"
    >>> _ = path.write_text("HDAC_SET\tna\tHDAC1\tHDAC2\tSIN3A\n")
    >>> read_gmt(path)
    {'HDAC_SET': ['HDAC1', 'HDAC2', 'SIN3A']}
    """
    sets: dict[str, list[str]] = {}
    for line_number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 3:
            raise ValueError(f"{path}:{line_number} is not a GMT line (name, description, genes separated by tabs).")
        sets[parts[0]] = [g.strip() for g in parts[2:] if g.strip()]
    return sets


def read_corum(path: str | Path, organism: str | None = "Human") -> dict[str, list[str]]:
    """Read protein complexes from a CORUM table (``coreComplexes.txt`` or ``allComplexes.txt``).

    Parameters
    ----------
    path
        Tab-separated CORUM file (zipped or not).
    organism
        Keep complexes of this organism (``None``: all).

    Returns
    -------
    Complex name -> subunit gene symbols.
    """
    frame = pd.read_csv(path, sep="\t", low_memory=False)
    gene_column = next(
        (c for c in ("subunits(Gene name)", "subunits_gene_name", "subunits (Gene name)") if c in frame.columns), None
    )
    name_column = next((c for c in ("ComplexName", "complex_name") if c in frame.columns), None)
    if gene_column is None or name_column is None:
        raise KeyError(
            f"{path} does not look like a CORUM table: need a complex-name and a 'subunits(Gene name)' column "
            f"(columns: {list(frame.columns)[:12]})."
        )
    organism_column = next((c for c in ("Organism", "organism") if c in frame.columns), None)
    if organism is not None and organism_column is not None:
        frame = frame[frame[organism_column].astype(str).str.lower() == organism.lower()]
    complexes: dict[str, list[str]] = {}
    for name, genes in zip(frame[name_column].astype(str), frame[gene_column], strict=True):
        members = [g.strip() for g in str(genes).split(";") if g.strip() and g.strip().lower() != "none"]
        if len(members) > 1:
            complexes[name] = sorted(set(complexes.get(name, [])) | set(members))
    return complexes


def download_corum(cache_dir: str | Path | None = None, organism: str | None = "Human") -> dict[str, list[str]]:
    """Download CORUM core complexes once into the cache and read them with :func:`read_corum`.

    CORUM (Tsitsiridis et al., Nucleic Acids Research 2023) is free for academic, non-commercial use
    only (CC BY-NC 4.0); it is therefore not shipped with sxdiff. Check that your use is allowed. No
    checksum is published: the file's SHA-256 is logged at first download.
    """
    import pooch

    folder = Path(cache_dir) if cache_dir is not None else Path(pooch.os_cache("sxdiff"))
    files = pooch.retrieve(
        CORUM_URL,
        known_hash=None,
        fname="corum_coreComplexes.txt.zip",
        path=folder,
        processor=pooch.Unzip(),
        progressbar=True,
    )
    table = next(Path(f) for f in files if f.endswith(".txt"))
    return read_corum(table, organism=organism)
