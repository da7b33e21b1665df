"""An scvi-tools field that registers perturbation sets (padded drug indices, doses and mask)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import rich
from scvi.data.fields import BaseAnnDataField

from ._perturbation_sets import encode_perturbation_sets, parse_doses, parse_perturbations
from ._validation import resolve_obs_column

__all__ = ["PerturbationSetField", "decode_perturbation_field"]


def decode_perturbation_field(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split the registered ``(n, 3 * width)`` array into ``(indices, doses, mask)``."""
    width = values.shape[1] // 3
    values = np.asarray(values)
    return (
        values[:, :width].astype(np.int64),
        values[:, width : 2 * width].astype(np.float32),
        values[:, 2 * width :] > 0.5,
    )


class PerturbationSetField(BaseAnnDataField):
    """Register each cell's perturbation set as padded drug indices, doses and a mask.

    The labels (``"A"``, ``"A+B"``, controls = the empty set) and doses are parsed from ``obs`` and
    encoded against a vocabulary of perturbation names (the rows of the drug features). The encoded
    array ``[indices | doses | mask]`` is stored in ``obsm[f"_sxdiff_{registry_key}"]``, like scvi-tools
    stores its own encodings. :meth:`transfer_field` encodes new data against the *training* vocabulary
    and appends perturbations never seen in training at its end, so that the model can resolve them
    through their features (SMILES, targets) rather than refusing them.

    Parameters
    ----------
    registry_key
        Key of the field in the registry.
    perturbation_key, control_value, dose_key, delimiter, default_dose
        As in :func:`sxdiff.data.validate_perturbation_data`.
    vocabulary
        Perturbation names; a name's index is its position.
    """

    def __init__(
        self,
        registry_key: str,
        perturbation_key: str,
        control_value: str,
        dose_key: str | None,
        vocabulary: Sequence[str],
        delimiter: str = "+",
        default_dose: float | None = None,
    ) -> None:
        super().__init__()
        self._registry_key = registry_key
        self.perturbation_key, self.control_value, self.dose_key = perturbation_key, control_value, dose_key
        self.delimiter, self.default_dose = delimiter, default_dose
        self.vocabulary = [str(v) for v in vocabulary]

    @property
    def registry_key(self) -> str:
        """Key of the field in the registry."""
        return self._registry_key

    @property
    def attr_name(self) -> str:
        """Where the encoded data lives: ``obsm``."""
        return "obsm"

    @property
    def attr_key(self) -> str:
        """``obsm`` key of the encoded perturbation sets."""
        return f"_sxdiff_{self._registry_key}"

    @property
    def is_empty(self) -> bool:
        """Never empty."""
        return False

    def _encode(self, adata, vocabulary: list[str]) -> tuple[np.ndarray, list[str]]:
        labels = resolve_obs_column(adata, self.perturbation_key)
        sets = parse_perturbations(
            labels, control_value=self.control_value, delimiter=self.delimiter, column=self.perturbation_key
        )
        doses = parse_doses(
            None if self.dose_key is None else resolve_obs_column(adata, self.dose_key).tolist(),
            sets,
            delimiter=self.delimiter,
            default_dose=self.default_dose,
            column=self.dose_key or "dose",
        )
        unseen = sorted({m for s in sets for m in s} - set(vocabulary))
        vocabulary = vocabulary + unseen
        index, dose, mask = encode_perturbation_sets(sets, doses, vocabulary)
        return np.hstack([index.astype(np.float32), dose, mask.astype(np.float32)]), vocabulary

    def validate_field(self, adata) -> None:
        """Check that the perturbation (and dose) columns exist."""
        resolve_obs_column(adata, self.perturbation_key)
        if self.dose_key is not None:
            resolve_obs_column(adata, self.dose_key)

    def register_field(self, adata) -> dict:
        """Encode against the vocabulary; perturbations outside it are an error at training time."""
        self.validate_field(adata)
        encoded, vocabulary = self._encode(adata, list(self.vocabulary))
        missing = vocabulary[len(self.vocabulary) :]
        if missing:
            raise KeyError(
                f"Perturbation(s) {missing[:10]} have no drug features; run `sxdiff.pp.drug_features` on this data "
                "(after any relabelling) before setup."
            )
        adata.obsm[self.attr_key] = encoded
        return {"vocabulary": list(vocabulary), "width": encoded.shape[1] // 3}

    def transfer_field(self, state_registry: dict, adata_target, **kwargs) -> dict:
        """Encode new data with the training vocabulary, appending unseen perturbations at its end."""
        self.validate_field(adata_target)
        encoded, vocabulary = self._encode(adata_target, [str(v) for v in state_registry["vocabulary"]])
        adata_target.obsm[self.attr_key] = encoded
        return {"vocabulary": list(vocabulary), "width": encoded.shape[1] // 3}

    def get_summary_stats(self, state_registry: dict) -> dict:
        """Number of known perturbations and the largest set size."""
        return {"n_perturbations": len(state_registry["vocabulary"]), "max_set_size": state_registry["width"]}

    def view_state_registry(self, state_registry: dict) -> rich.table.Table | None:
        """A table of the vocabulary."""
        table = rich.table.Table(title=f"{self.registry_key} state registry")
        table.add_column("perturbation")
        table.add_column("index")
        for i, name in enumerate(state_registry["vocabulary"]):
            table.add_row(name, str(i))
        return table
