"""The ProteinTranslator's reference: checks of the paired CITE-seq data, and the cell splits of training."""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from mudata import MuData

from sxdiff.data._on_disk import check_finite

logger = logging.getLogger(__name__)


def _split_indices(n: int, train_size: float, validation_size: float | None, seed: int) -> list[np.ndarray]:
    """Training, validation and test cell indices as scvi-tools' DataSplitter sizes them, drawn from ``seed``."""
    if not 0 < train_size <= 1 or (
        validation_size is not None and (validation_size < 0 or train_size + validation_size > 1)
    ):
        raise ValueError(
            f"train_size={train_size} and validation_size={validation_size} must be fractions with "
            "0 < train_size <= 1 and train_size + validation_size <= 1."
        )
    n_train = min(n, int(np.ceil(train_size * n)))
    n_validation = n - n_train if validation_size is None else min(n - n_train, int(np.floor(validation_size * n)))
    order = np.random.default_rng(seed).permutation(n)
    return [order[:n_train], order[n_train : n_train + n_validation], order[n_train + n_validation :]]


def _validate_reference(mdata: MuData, modalities: dict[str, str], protein_layer: str | None) -> None:
    """Refuse a reference without paired modalities, with non-finite, negative or entirely zero protein counts."""
    for role in ("rna_layer", "protein_layer"):
        if role not in modalities:
            raise KeyError(f"`modalities` must name the {role!r} modality, e.g. {{'{role}': ...}}.")
        if modalities[role] not in mdata.mod:
            raise KeyError(
                f"The reference has no {modalities[role]!r} modality for {role} (modalities: "
                f"{list(mdata.mod.keys())}). A ProteinTranslator needs paired RNA and protein counts."
            )
    prot = mdata.mod[modalities["protein_layer"]]
    values = prot.X if protein_layer is None else prot.layers[protein_layer]
    where = f"mdata[{modalities['protein_layer']!r}]" + ("" if protein_layer is None else f".layers[{protein_layer!r}]")
    check_finite(values, where=where)
    dense = values.toarray() if sp.issparse(values) else np.asarray(values)
    if (dense < 0).any():
        raise ValueError(f"{where} has negative values; the translator needs raw antibody counts.")
    if not dense.any():
        raise ValueError(
            f"{where} is zero in every cell for every protein: there is no protein signal to learn from. Check "
            "that the layer holds the antibody (ADT) counts."
        )
    silent = [str(p) for p, total in zip(prot.var_names, dense.sum(axis=0), strict=True) if total == 0]
    if silent:
        logger.warning(
            "Protein(s) %s are zero in every reference cell; their predictions are constant and their "
            "reliability is 0.",
            silent[:20],
        )
