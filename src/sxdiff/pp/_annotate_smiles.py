"""Look up SMILES of drug names in PubChem through pertpy."""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np
import pandas as pd
from anndata import AnnData

from sxdiff._compat import import_optional
from sxdiff.data._perturbation_sets import parse_perturbations
from sxdiff.data._validation import resolve_obs_column

__all__ = ["annotate_smiles"]

logger = logging.getLogger(__name__)

_SMILES_COLUMNS = ("smiles", "isomeric_smiles", "canonical_smiles", "pubchem_smiles")


def annotate_smiles(
    adata: AnnData,
    drug_key: str = "perturbation",
    *,
    control_value: str = "control",
    delimiter: str = "+",
    key_added: str = "smiles",
    copy: bool = False,
) -> AnnData | None:
    """Look up each drug's SMILES in PubChem (through pertpy) and write it per cell into ``obs[key_added]``.

    Needs the ``pertpy`` extra and network access to PubChem. Combination and control cells get no
    SMILES (their members are featurised one by one by :func:`sxdiff.pp.drug_features`); names PubChem
    does not know stay missing and are listed in the log.

    Parameters
    ----------
    adata
        Annotated data.
    drug_key
        ``obs`` column of drug names.
    control_value
        Label of control cells.
    delimiter
        Separator of combination members.
    key_added
        ``obs`` column to write.
    copy
        Return a modified copy instead of writing into ``adata``.

    Raises
    ------
    ImportError
        pertpy is not installed (the message says how to install it).
    ConnectionError
        PubChem cannot be reached (one clear line, no traceback chain).

    Examples
    --------
    >>> sxdiff.pp.annotate_smiles(adata, drug_key="drug")  # doctest: +SKIP
    """
    labels = resolve_obs_column(adata, drug_key)
    sets = parse_perturbations(labels, control_value=control_value, delimiter=delimiter, column=drug_key)
    names = sorted({s[0] for s in sets if len(s) == 1})
    pertpy = import_optional("pertpy", extra="pertpy", purpose="Looking up SMILES in PubChem")
    query = ad.AnnData(obs=pd.DataFrame({"perturbation": names}, index=[f"d{i}" for i in range(len(names))]))
    try:
        annotated = pertpy.metadata.Compound().annotate_compounds(query, query_id="perturbation", copy=True)
    except OSError as error:  # requests' ConnectionError and timeouts are OSErrors
        raise ConnectionError(
            f"PubChem could not be reached ({type(error).__name__}). Check the network, or give SMILES yourself "
            "with `drug_features(..., drug_table=...)` or an obs column (`smiles_key=`)."
        ) from None
    column = next((c for c in _SMILES_COLUMNS if c in annotated.obs.columns), None)
    if column is None:
        raise RuntimeError(
            f"pertpy returned no SMILES column (columns: {list(annotated.obs.columns)}); this pertpy version is "
            "not supported by annotate_smiles."
        )
    found = dict(zip(names, annotated.obs[column].tolist(), strict=True))
    unknown = [n for n, s in found.items() if not isinstance(s, str) or not s]
    if unknown:
        logger.warning("PubChem has no SMILES for %d drug(s): %s", len(unknown), unknown[:20])
    per_cell = [found.get(s[0]) if len(s) == 1 else None for s in sets]
    target = adata.copy() if copy else adata
    target.obs[key_added] = pd.Series(per_cell, index=target.obs_names, dtype=object).replace({np.nan: None})
    return target if copy else None
