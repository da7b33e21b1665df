"""Molecular structure features from SMILES with RDKit: canonical SMILES, Morgan counts, 2D descriptors.

Features are computed from the *parent* molecule (largest fragment, so salts and counter-ions do not
change them) and cached by canonical SMILES. Descriptors are standardised with statistics learnt on
the training drugs and stored, so that an unseen drug is put on exactly the same scale.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

__all__ = [
    "StructureFeaturizer",
    "canonical_smiles",
    "morgan_counts",
    "rdkit_descriptors",
    "tanimoto",
    "tanimoto_matrix",
]

logger = logging.getLogger(__name__)


@contextmanager
def _quiet_rdkit():
    """Silence RDKit's own stderr messages; sxdiff reports failures itself."""
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")
    try:
        yield
    finally:
        RDLogger.EnableLog("rdApp.*")


@lru_cache(maxsize=65536)
def _parent_mol(smiles: str):
    from rdkit import Chem
    from rdkit.Chem.MolStandardize import rdMolStandardize

    with _quiet_rdkit():
        mol = Chem.MolFromSmiles(smiles.strip()) if smiles and smiles.strip() else None
        if mol is None:
            return None
        return rdMolStandardize.LargestFragmentChooser(preferOrganic=True).choose(mol)


def canonical_smiles(smiles: str) -> str | None:
    """Canonical isomeric SMILES of the parent molecule (largest fragment), or ``None`` if invalid.

    Examples
    --------
    >>> canonical_smiles("OCC") == canonical_smiles("C(O)C")
    True
    >>> canonical_smiles("CC(=O)[O-].[Na+]")
    'CC(=O)[O-]'
    >>> canonical_smiles("not a molecule") is None
    True
    """
    from rdkit import Chem

    mol = _parent_mol(str(smiles))
    return None if mol is None else Chem.MolToSmiles(mol)


@lru_cache(maxsize=65536)
def _morgan(smiles: str, radius: int, n_bits: int) -> np.ndarray:
    from rdkit.Chem import rdFingerprintGenerator

    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    return generator.GetCountFingerprintAsNumPy(_require_mol(smiles)).astype(np.float32)


def _require_mol(smiles: str):
    mol = _parent_mol(smiles)
    if mol is None:
        raise ValueError(f"Invalid SMILES {smiles!r}: RDKit cannot parse it.")
    return mol


def morgan_counts(smiles: Sequence[str], radius: int = 2, n_bits: int = 1024) -> np.ndarray:
    """Morgan count fingerprints (``rdFingerprintGenerator``), one row per molecule.

    Parameters
    ----------
    smiles
        SMILES strings.
    radius
        Morgan radius (2 corresponds to ECFP4).
    n_bits
        Fingerprint length (folded).

    Returns
    -------
    Array ``(len(smiles), n_bits)`` of substructure counts (float32).

    Examples
    --------
    >>> morgan_counts(["CCO", "c1ccccc1"], n_bits=64).shape
    (2, 64)
    """
    return (
        np.stack([_morgan(canonical_smiles(s) or s, radius, n_bits) for s in smiles])
        if len(smiles)
        else (np.zeros((0, n_bits), dtype=np.float32))
    )


def descriptor_names() -> list[str]:
    """Names of the RDKit 2D descriptors this RDKit version computes."""
    return list(_descriptors("C"))


@lru_cache(maxsize=65536)
def _descriptors(smiles: str) -> dict[str, float]:
    from rdkit.Chem import Descriptors

    with _quiet_rdkit():
        return {k: float(v) for k, v in Descriptors.CalcMolDescriptors(_require_mol(smiles)).items()}


def rdkit_descriptors(smiles: Sequence[str], names: Sequence[str] | None = None) -> np.ndarray:
    """RDKit 2D descriptors (molecular weight, logP, TPSA, ring counts, ...), one row per molecule.

    Values are returned raw (non-finite values become NaN); :class:`StructureFeaturizer` transforms and
    standardises them.

    Examples
    --------
    >>> x = rdkit_descriptors(["CCO"], names=["MolWt", "NumHDonors"])
    >>> x.round(2).tolist()
    [[46.07, 1.0]]
    """
    names = list(names) if names is not None else descriptor_names()
    rows = []
    for s in smiles:
        values = _descriptors(canonical_smiles(s) or s)
        missing = [n for n in names if n not in values]
        if missing:
            raise KeyError(f"RDKit does not compute descriptor(s) {missing[:5]} in this version.")
        rows.append([values[n] for n in names])
    out = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(names))
    out[~np.isfinite(out)] = np.nan
    return out


def _bit_fingerprint(smiles: str, radius: int, n_bits: int):
    from rdkit.Chem import rdFingerprintGenerator

    return rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits).GetFingerprint(_require_mol(smiles))


def tanimoto(smiles_a: str, smiles_b: str, radius: int = 2, n_bits: int = 2048) -> float:
    """Tanimoto similarity of the Morgan bit fingerprints of two molecules.

    Examples
    --------
    >>> tanimoto("CCO", "OCC")
    1.0
    """
    from rdkit import DataStructs

    return float(
        DataStructs.TanimotoSimilarity(
            _bit_fingerprint(smiles_a, radius, n_bits), _bit_fingerprint(smiles_b, radius, n_bits)
        )
    )


def tanimoto_matrix(
    smiles_a: Sequence[str], smiles_b: Sequence[str], radius: int = 2, n_bits: int = 2048
) -> np.ndarray:
    """Pairwise Tanimoto similarities, shape ``(len(smiles_a), len(smiles_b))``."""
    from rdkit import DataStructs

    fps_b = [_bit_fingerprint(s, radius, n_bits) for s in smiles_b]
    return np.array(
        [DataStructs.BulkTanimotoSimilarity(_bit_fingerprint(s, radius, n_bits), fps_b) for s in smiles_a]
    ).reshape(len(smiles_a), len(smiles_b))


@dataclass
class StructureFeaturizer:
    """Morgan count fingerprints and standardised RDKit descriptors, with stored statistics.

    ``fit`` learns per-descriptor means and standard deviations on the training drugs (after a
    signed ``log1p``, which tames heavy-tailed descriptors); ``transform`` applies the *stored*
    statistics, so unseen drugs land on the training scale. Fingerprint counts are ``log1p``-scaled.
    The state is plain data (:meth:`to_dict` / :meth:`from_dict`) and is saved with a model.

    Parameters
    ----------
    radius
        Morgan radius.
    n_bits
        Morgan fingerprint length.
    use_descriptors
        Whether to compute RDKit 2D descriptors.

    Examples
    --------
    >>> featurizer = StructureFeaturizer(n_bits=128).fit(["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1"])
    >>> features = featurizer.transform(["CCN"])  # an unseen molecule, training statistics
    >>> features.shape[0], features.shape[1] == 128 + len(featurizer.descriptor_names_)
    (1, True)
    """

    radius: int = 2
    n_bits: int = 1024
    use_descriptors: bool = True
    descriptor_names_: list[str] = field(default_factory=list)
    descriptor_mean_: np.ndarray | None = None
    descriptor_std_: np.ndarray | None = None

    def fit(self, smiles: Sequence[str]) -> StructureFeaturizer:
        """Learn descriptor statistics on the given (training) molecules."""
        if self.use_descriptors:
            names = descriptor_names()
            raw = _signed_log1p(rdkit_descriptors(smiles, names))
            mean = np.nanmean(raw, axis=0) if len(smiles) else np.zeros(len(names))
            std = np.nanstd(raw, axis=0) if len(smiles) else np.ones(len(names))
            mean = np.where(np.isfinite(mean), mean, 0.0)
            std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)
            self.descriptor_names_ = names
            self.descriptor_mean_, self.descriptor_std_ = mean, std
        else:
            self.descriptor_names_ = []
            self.descriptor_mean_, self.descriptor_std_ = np.zeros(0), np.ones(0)
        return self

    @property
    def n_features(self) -> int:
        """Length of a feature row."""
        return self.n_bits + len(self.descriptor_names_)

    def transform(self, smiles: Sequence[str]) -> np.ndarray:
        """Features ``[log1p(Morgan counts), standardised descriptors]`` (float32), one row per molecule."""
        if self.descriptor_mean_ is None:
            raise RuntimeError("StructureFeaturizer is not fitted; call `.fit(training_smiles)` first.")
        morgan = np.log1p(morgan_counts(smiles, self.radius, self.n_bits))
        if not self.descriptor_names_:
            return morgan.astype(np.float32)
        raw = _signed_log1p(rdkit_descriptors(smiles, self.descriptor_names_))
        scaled = (raw - self.descriptor_mean_) / self.descriptor_std_
        scaled = np.clip(np.nan_to_num(scaled, nan=0.0), -10.0, 10.0)
        return np.hstack([morgan, scaled]).astype(np.float32)

    def to_dict(self) -> dict:
        """Plain-data state (numbers, lists, arrays) for saving with a model or in ``uns``."""
        return {
            "radius": self.radius,
            "n_bits": self.n_bits,
            "use_descriptors": self.use_descriptors,
            "descriptor_names": list(self.descriptor_names_),
            "descriptor_mean": np.asarray(self.descriptor_mean_, dtype=np.float64),
            "descriptor_std": np.asarray(self.descriptor_std_, dtype=np.float64),
        }

    @classmethod
    def from_dict(cls, state: dict) -> StructureFeaturizer:
        """Rebuild a fitted featurizer from :meth:`to_dict` output."""
        return cls(
            radius=int(state["radius"]),
            n_bits=int(state["n_bits"]),
            use_descriptors=bool(state["use_descriptors"]),
            descriptor_names_=[str(n) for n in state["descriptor_names"]],
            descriptor_mean_=np.asarray(state["descriptor_mean"], dtype=np.float64),
            descriptor_std_=np.asarray(state["descriptor_std"], dtype=np.float64),
        )


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))
