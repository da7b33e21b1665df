"""Protein measurements: CLR normalisation, isotype controls and the genes that code an antibody's target."""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp

__all__ = ["ANTIBODY_GENES", "clr", "coding_genes", "is_isotype_control"]

# Common CITE-seq / ECCITE-seq antibody targets whose gene symbol differs from the antibody name.
ANTIBODY_GENES: dict[str, tuple[str, ...]] = {
    "B220": ("PTPRC",),
    "CD45R": ("PTPRC",),
    "CD45": ("PTPRC",),
    "CD45RA": ("PTPRC",),
    "CD45RO": ("PTPRC",),
    "B7-H1": ("CD274",),
    "PD-L1": ("CD274",),
    "CD274": ("CD274",),
    "C-KIT": ("KIT",),
    "CD117": ("KIT",),
    "CD11A": ("ITGAL",),
    "CD11B": ("ITGAM",),
    "CD11C": ("ITGAX",),
    "CD138": ("SDC1",),
    "CD16": ("FCGR3A", "FCGR3B"),
    "CD32": ("FCGR2A",),
    "CD64": ("FCGR1A",),
    "CD1A": ("CD1A",),
    "CD223": ("LAG3",),
    "LAG3": ("LAG3",),
    "CD26": ("DPP4",),
    "CD3": ("CD3E", "CD3D", "CD3G"),
    "CD366": ("HAVCR2",),
    "TIM3": ("HAVCR2",),
    "CD56": ("NCAM1",),
    "CD62L": ("SELL",),
    "CD66B": ("CEACAM8",),
    "CD8": ("CD8A", "CD8B"),
    "CD8A": ("CD8A",),
    "EPCAM": ("EPCAM",),
    "CD326": ("EPCAM",),
    "HLA-A,B,C": ("HLA-A", "HLA-B", "HLA-C"),
    "HLA-ABC": ("HLA-A", "HLA-B", "HLA-C"),
    "IL7RALPHA": ("IL7R",),
    "CD127": ("IL7R",),
    "MHCII": ("HLA-DRA",),
    "HLA-DR": ("HLA-DRA", "HLA-DRB1"),
    "OX40": ("TNFRSF4",),
    "CD134": ("TNFRSF4",),
    "PD-1": ("PDCD1",),
    "PD1": ("PDCD1",),
    "CD279": ("PDCD1",),
    "PECAM": ("PECAM1",),
    "CD31": ("PECAM1",),
    "SIGLEC-8": ("SIGLEC8",),
    "TCRB": ("TRBC1", "TRBC2"),
    "TCRG": ("TRGC1", "TRGC2"),
    "TCRAB": ("TRAC", "TRBC1", "TRBC2"),
    "TCRGD": ("TRDC", "TRGC1", "TRGC2"),
    "CD25": ("IL2RA",),
    "CD122": ("IL2RB",),
    "CD132": ("IL2RG",),
    "CD127-IL7R": ("IL7R",),
    "CD197": ("CCR7",),
    "CD183": ("CXCR3",),
    "CD184": ("CXCR4",),
    "CD185": ("CXCR5",),
    "CD194": ("CCR4",),
    "CD195": ("CCR5",),
    "CD196": ("CCR6",),
    "CD21": ("CR2",),
    "CD35": ("CR1",),
    "CD10": ("MME",),
    "CD13": ("ANPEP",),
    "CD15": ("FUT4",),
    "CD18": ("ITGB2",),
    "CD29": ("ITGB1",),
    "CD41": ("ITGA2B",),
    "CD49D": ("ITGA4",),
    "CD49F": ("ITGA6",),
    "CD61": ("ITGB3",),
    "CD71": ("TFRC",),
    "CD95": ("FAS",),
    "CD103": ("ITGAE",),
    "CD105": ("ENG",),
    "CD123": ("IL3RA",),
    "CD141": ("THBD",),
    "CD152": ("CTLA4",),
    "CD154": ("CD40LG",),
    "CD161": ("KLRB1",),
    "CD303": ("CLEC4C",),
    "CD335": ("NCR1",),
    "CD357": ("TNFRSF18",),
    "GITR": ("TNFRSF18",),
    "4-1BB": ("TNFRSF9",),
    "CD137": ("TNFRSF9",),
    "LAMP1": ("LAMP1",),
    "CD107A": ("LAMP1",),
    "CD57": ("B3GAT1",),
    "CD77": (),
}
_ISOTYPE = re.compile(r"(isotype|\bigg\d*[a-z]?\b|\bigm\b|\biga\b|^ig[gma]\d*[a-z]?(_|\b)|ctrl|control)", re.IGNORECASE)


def is_isotype_control(name: str) -> bool:
    """Whether an antibody is an isotype control (``IgG1``, ``Mouse IgG2a isotype``, ...).

    Examples
    --------
    >>> [is_isotype_control(n) for n in ["IgG1", "IgG2a", "Rat_IgG2b_isotype", "CD4", "TIGIT"]]
    [True, True, True, False, False]
    """
    return bool(_ISOTYPE.search(str(name)))


def _aliases(name: str) -> list[str]:
    """``"B7-H1 (PD-L1)"`` -> ``["B7-H1", "PD-L1"]``; ``"CD3"`` -> ``["CD3"]``."""
    outer = re.sub(r"\(.*?\)", "", name).strip()
    inner = re.findall(r"\((.*?)\)", name)
    return [a.strip() for a in [outer, *inner] if a.strip()]


def coding_genes(name: str, available: Iterable[str] | None = None) -> tuple[str, ...]:
    """Genes coding an antibody's target (``"CD3"`` -> CD3E, CD3D, CD3G), kept to ``available`` ones.

    Looks up the name and any alias in brackets in :data:`ANTIBODY_GENES`, then tries each alias as a
    gene symbol. Isotype controls and glycolipid targets (CD77) have none.

    Examples
    --------
    >>> coding_genes("B7-H1 (PD-L1)"), coding_genes("CCR7", ["CCR7", "CD4"]), coding_genes("IgG1")
    (('CD274',), ('CCR7',), ())
    """
    if is_isotype_control(name):
        return ()
    available_set = None if available is None else set(available)
    for alias in _aliases(str(name)):
        key = alias.upper().replace(" ", "")
        if key in ANTIBODY_GENES:
            genes = ANTIBODY_GENES[key]
            return tuple(g for g in genes if available_set is None or g in available_set)
    for alias in _aliases(str(name)):
        symbol = alias.upper()
        if available_set is None or symbol in available_set:
            return (symbol,) if available_set is None or symbol in available_set else ()
    return ()


def clr(counts, axis: int = 1) -> np.ndarray:
    """Centred log-ratio transform of protein counts: ``log1p(x) - mean(log1p(x))``.

    Parameters
    ----------
    counts
        Cells x proteins counts (dense or sparse).
    axis
        1 (default): centre each cell over its proteins (as Seurat's ``margin = 2``); 0: centre each
        protein over cells.

    Examples
    --------
    >>> import numpy as np
    >>> print(clr(np.array([[0.0, 3.0, 7.0]])).round(3))
    [[-1.155  0.231  0.924]]
    """
    dense = counts.toarray() if sp.issparse(counts) else np.asarray(counts, dtype=np.float64)
    logged = np.log1p(dense.astype(np.float64))
    return (logged - logged.mean(axis=axis, keepdims=True)).astype(np.float32)
