"""Datasets: small real datasets bundled with sxdiff, loaders of large public ones, synthetic data."""

from . import synthetic
from ._bundled import glioblastoma_panobinostat, l1000_kinase_inhibitors, mcfaline23_crispri, norman_crispra
from ._public import (
    REMOTE_FILES,
    combosciplex,
    fetch,
    is_downloaded,
    norman2019,
    sciplex3,
    standardise_combosciplex,
    standardise_norman2019,
    standardise_sciplex3,
)

__all__ = [
    "REMOTE_FILES",
    "combosciplex",
    "fetch",
    "glioblastoma_panobinostat",
    "is_downloaded",
    "l1000_kinase_inhibitors",
    "mcfaline23_crispri",
    "norman2019",
    "norman_crispra",
    "sciplex3",
    "standardise_combosciplex",
    "standardise_norman2019",
    "standardise_sciplex3",
    "synthetic",
]
