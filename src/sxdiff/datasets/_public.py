"""Loaders of large public perturbation datasets: download (checksummed, cached), then standardise.

Each loader returns AnnData in the same schema as the bundled datasets: ``obs["perturbation"]``
(``"control"`` for controls, ``"A+B"`` for combinations), ``obs["dose"]``, ``obs["context"]``,
``obs["is_control"]``, ``obs["batch"]`` where known, and ``uns["sxdiff"]`` describing the keys, the
expression scale and the source. The schema functions (``standardise_*``) are separate so that data
obtained another way (GEO, scPerturb, pertpy) can be brought into the schema too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd

from sxdiff._files import sha256_file
from sxdiff.data._expression import detect_expression_scale

__all__ = [
    "REMOTE_FILES",
    "RemoteFile",
    "combosciplex",
    "fetch",
    "is_downloaded",
    "norman2019",
    "sciplex3",
    "standardise_combosciplex",
    "standardise_norman2019",
    "standardise_sciplex3",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteFile:
    """A public file: where it is, what it is called in the cache, and its checksum if published."""

    url: str
    fname: str
    known_hash: str | None
    hash_source: str


REMOTE_FILES: dict[str, RemoteFile] = {
    "sciplex3": RemoteFile(
        url="https://zenodo.org/records/13350497/files/SrivatsanTrapnell2020_sciplex3.h5ad?download=1",
        fname="SrivatsanTrapnell2020_sciplex3.h5ad",
        known_hash="md5:c9e70629505d98c7ca1a837f62b14e89",
        hash_source="scPerturb v1.4 Zenodo record 13350497 (file md5, 2,526,631,614 bytes)",
    ),
    "norman2019": RemoteFile(
        url="https://figshare.com/ndownloader/files/34027562",
        fname="norman_2019.h5ad",
        known_hash="sha256:b679c157fea550ef5be4dad91da9dff1f5d8287313ad3f3537f6cf14d4bcd434",
        hash_source="the file pertpy.data.norman_2019() downloads (1,703,064,678 bytes)",
    ),
    "combosciplex": RemoteFile(
        url="https://figshare.com/ndownloader/files/44229635",
        fname="combosciplex.h5ad",
        known_hash=None,
        hash_source="none published: the SHA-256 of the first download is recorded and checked afterwards",
    ),
}

Source = Literal["download", "pertpy"]


def _cache_folder(cache_dir: str | Path | None) -> Path:
    """``cache_dir``, or the user cache (``pooch.os_cache("sxdiff")``) when it is ``None``."""
    if cache_dir is not None:
        return Path(cache_dir)
    import pooch

    return Path(pooch.os_cache("sxdiff"))


def fetch(name: str, cache_dir: str | Path | None = None, known_hash: str | None = "registry") -> Path:
    """Download a public file into the cache (once), verify its checksum and return its path.

    Parameters
    ----------
    name
        Key of :data:`REMOTE_FILES`.
    cache_dir
        Cache folder; defaults to the user cache (``pooch.os_cache("sxdiff")``).
    known_hash
        ``"registry"`` uses the published checksum; a ``"md5:..."``/``"sha256:..."`` string overrides it.
        Where no checksum is published, the SHA-256 of the first download is stored beside the file
        (``<file>.sha256``) and every later load is checked against it.
    """
    import pooch

    remote = REMOTE_FILES[name]
    folder = _cache_folder(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    expected = remote.known_hash if known_hash == "registry" else known_hash
    recorded = folder / f"{remote.fname}.sha256"
    if expected is None and recorded.exists():
        expected = "sha256:" + recorded.read_text().strip()
    path = Path(pooch.retrieve(remote.url, known_hash=expected, fname=remote.fname, path=folder, progressbar=True))
    if expected is None:
        recorded.write_text(sha256_file(path) + "\n")
        logger.info("No published checksum for %s; recorded SHA-256 in %s.", remote.fname, recorded)
    return path


def is_downloaded(name: str, cache_dir: str | Path | None = None) -> bool:
    """Whether the public file ``name`` is already in the cache, so that its loader will not download it.

    Parameters
    ----------
    name
        Key of :data:`REMOTE_FILES` (``"sciplex3"``, ``"norman2019"``, ``"combosciplex"``).
    cache_dir
        Cache folder; defaults to the user cache (``pooch.os_cache("sxdiff")``).

    Examples
    --------
    >>> is_downloaded("sciplex3", cache_dir="/nonexistent")
    False
    """
    if name not in REMOTE_FILES:
        raise KeyError(f"Unknown public file {name!r}; known: {sorted(REMOTE_FILES)}.")
    folder = _cache_folder(cache_dir)
    return (folder / REMOTE_FILES[name].fname).is_file()


def _load(name: str, path, cache_dir, source: Source, pertpy_loader: str, known_hash: str | None) -> ad.AnnData:
    if path is not None:
        return ad.read_h5ad(path)
    if source == "pertpy":
        from sxdiff._compat import import_optional

        pertpy = import_optional("pertpy", extra="pertpy", purpose=f"loading {name} through pertpy")
        return getattr(pertpy.data, pertpy_loader)()
    if source != "download":
        raise ValueError(f"Unknown source {source!r}; choose 'download' or 'pertpy'.")
    return ad.read_h5ad(fetch(name, cache_dir, known_hash=known_hash))


def _finish(adata: ad.AnnData, *, dataset: str, source: str, uns: dict) -> ad.AnnData:
    obs = adata.obs
    obs["perturbation"] = pd.Categorical(obs["perturbation"].astype(str))
    obs["context"] = pd.Categorical(obs["context"].astype(str))
    obs["is_control"] = (obs["perturbation"].astype(str) == "control").to_numpy()
    adata.uns["sxdiff"] = {
        "dataset": dataset,
        "perturbation_key": "perturbation",
        "control_value": "control",
        "context_key": "context",
        "expression_scale": detect_expression_scale(adata.X),
        "source": source,
        **uns,
    }
    return adata


def _column(obs: pd.DataFrame, *names: str) -> pd.Series:
    for name in names:
        if name in obs.columns:
            return obs[name]
    raise KeyError(f"None of the columns {list(names)} is in obs (columns: {list(obs.columns)[:30]}).")


def standardise_sciplex3(adata: ad.AnnData) -> ad.AnnData:
    """Bring sci-Plex3 cells into the sxdiff schema (in place; returns ``adata``).

    Accepts the scPerturb / pertpy schema (``perturbation``, ``dose_value`` in nM, ``cell_line``,
    ``replicate``, ``plate``) and the original Srivatsan et al. cell metadata (``product_name`` or
    ``name``, ``dose`` in nM, ``cell_type``, ``vehicle``, ``replicate``, ``SMILES``).

    sci-Plex3 has no combinations but some compound names contain ``+`` (``"(+)-JQ1"``), so the
    perturbation delimiter of this dataset is ``"|"`` (``uns["sxdiff"]["delimiter"]``); pass it as
    ``delimiter=`` to sxdiff functions.

    Examples
    --------
    >>> import anndata as ad, numpy as np, pandas as pd
    >>> obs = pd.DataFrame({"perturbation": ["control", "(+)-JQ1"], "dose_value": [0.0, 100.0],
    ...                     "cell_line": ["A549", "A549"], "replicate": ["rep1", "rep1"]},
    ...                    index=["c1", "c2"])
    >>> adata = standardise_sciplex3(ad.AnnData(np.ones((2, 3), dtype=np.float32), obs=obs))
    >>> adata.obs["dose"].tolist()
    [0.0, 0.1]
    """
    obs = adata.obs
    name = _column(obs, "perturbation", "product_name", "name", "treatment").astype(str).str.strip()
    control = name.str.lower().isin(["control", "vehicle", "dmso", "nan", "na"])
    if "vehicle" in obs.columns:
        control |= obs["vehicle"].astype(str).str.upper().isin(["TRUE", "1"])
    dose_nm = pd.to_numeric(_column(obs, "dose_value", "dose"), errors="coerce").fillna(0.0).astype(float)
    obs["perturbation"] = np.where(control, "control", name)
    obs["dose"] = np.where(control, 0.0, dose_nm / 1000.0)
    obs["dose_nM"] = np.where(control, 0.0, dose_nm)
    obs["context"] = _column(obs, "cell_line", "cell_type").astype(str).to_numpy()
    obs["batch"] = _column(obs, "replicate").astype(str).to_numpy()
    if "SMILES" in obs.columns:
        smiles = obs["SMILES"].astype(str).str.strip()
        obs["smiles"] = np.where(control | smiles.isin(["NA", "nan", ""]), None, smiles)
    obs["perturbation_type"] = np.where(control, "control", "drug")
    return _finish(
        adata,
        dataset="sciplex3",
        source="Srivatsan et al. 2020, Science 367:45 (sci-Plex3; A549, K562, MCF7 x 188 compounds x 4 doses)",
        uns={"dose_key": "dose", "dose_unit": "uM", "batch_key": "batch", "delimiter": "|"},
    )


def standardise_combosciplex(adata: ad.AnnData) -> ad.AnnData:
    """Bring combosciplex cells (pertpy / CellFlow schema) into the sxdiff schema (in place).

    Uses ``Drug1`` and ``Drug2`` (``"control"`` where absent) or ``condition`` (``"control+X"``).
    Every drug was given at one fixed concentration, so ``obs["dose"]`` is ``1`` per member.

    Examples
    --------
    >>> import anndata as ad, numpy as np, pandas as pd
    >>> obs = pd.DataFrame({"Drug1": ["control", "control", "Dacinostat"],
    ...                     "Drug2": ["control", "Panobinostat", "Givinostat"],
    ...                     "cell_type": ["A549"] * 3}, index=["a", "b", "c"])
    >>> standardise_combosciplex(ad.AnnData(np.ones((3, 2), dtype=np.float32), obs=obs)).obs["perturbation"].tolist()
    ['control', 'Panobinostat', 'Dacinostat+Givinostat']
    """
    obs = adata.obs
    if {"Drug1", "Drug2"}.issubset(obs.columns):
        pairs = zip(obs["Drug1"].astype(str), obs["Drug2"].astype(str), strict=True)
    else:
        pairs = (tuple(c.split("+")) for c in _column(obs, "condition").astype(str))
    members = [[d.strip() for d in pair if d.strip().lower() != "control"] for pair in pairs]
    obs["perturbation"] = ["+".join(m) if m else "control" for m in members]
    obs["dose"] = ["+".join("1" for _ in m) if m else "0" for m in members]
    obs["context"] = _column(obs, "cell_type", "cell_line").astype(str).to_numpy()
    obs["perturbation_type"] = ["drug" if m else "control" for m in members]
    return _finish(
        adata,
        dataset="combosciplex",
        source="combosciplex (sci-Plex drug combinations in A549), as distributed by pertpy",
        uns={"dose_key": "dose", "dose_unit": "fixed concentration per drug"},
    )


def standardise_norman2019(adata: ad.AnnData) -> ad.AnnData:
    """Bring Norman et al. 2019 K562 CRISPRa cells (pertpy / scPerturb schema) into the sxdiff schema.

    Uses ``perturbation_name`` (pertpy: ``"control"``, ``"A+B"``) or ``perturbation`` (scPerturb:
    ``"A_B"``); ``gemgroup`` becomes ``obs["batch"]``.

    Examples
    --------
    >>> import anndata as ad, numpy as np, pandas as pd
    >>> obs = pd.DataFrame({"perturbation_name": ["control", "CBL+CNN1"], "gemgroup": [1, 2]}, index=["a", "b"])
    >>> standardise_norman2019(ad.AnnData(np.ones((2, 2), dtype=np.float32), obs=obs)).obs["dose"].tolist()
    ['0', '1+1']
    """
    obs = adata.obs
    if "perturbation_name" in obs.columns:
        labels = obs["perturbation_name"].astype(str).str.strip()
    else:
        labels = _column(obs, "perturbation").astype(str).str.strip().str.replace("_", "+", regex=False)
    members = [[] if lab.lower() in {"control", "ctrl", ""} else [m for m in lab.split("+") if m] for lab in labels]
    obs["perturbation"] = ["+".join(m) if m else "control" for m in members]
    obs["dose"] = ["+".join("1" for _ in m) if m else "0" for m in members]
    obs["context"] = "K562"
    if "gemgroup" in obs.columns:
        obs["batch"] = obs["gemgroup"].astype(str).to_numpy()
    obs["perturbation_type"] = ["CRISPRa" if m else "control" for m in members]
    return _finish(
        adata,
        dataset="norman2019",
        source="Norman et al. 2019, Science 365:786 (K562 CRISPRa singles and pairs)",
        uns={"dose_key": "dose", "dose_unit": "guides", "batch_key": "batch" if "batch" in obs else None},
    )


def sciplex3(
    path: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    source: Source = "download",
    known_hash: str | None = "registry",
) -> ad.AnnData:
    """sci-Plex3 (Srivatsan et al. 2020): ~800k cells, 3 cell lines x 188 compounds x 4 doses.

    Downloads the scPerturb h5ad (2.5 GB) once into the cache with a progress bar and checks its
    published MD5, or reads ``path``, or delegates to ``pertpy.data.srivatsan_2020_sciplex3()``;
    then applies :func:`standardise_sciplex3`.

    Parameters
    ----------
    path
        A local copy of the file; skips the download.
    cache_dir
        Download cache; defaults to the user cache folder.
    source
        ``"download"`` (checksummed) or ``"pertpy"`` (requires the ``pertpy`` extra).
    known_hash
        ``"registry"`` checks the checksum in :data:`REMOTE_FILES`; ``"md5:..."`` / ``"sha256:..."`` overrides
        it (e.g. if the host republishes the file); ``None`` trusts the first download and records its SHA-256.

    Returns
    -------
    AnnData in the sxdiff schema; raw counts in ``X``, doses in uM (``obs["dose_nM"]`` too),
    ``uns["sxdiff"]["delimiter"] == "|"`` because some names contain ``+``.

    Examples
    --------
    >>> adata = sxdiff.datasets.sciplex3()  # doctest: +SKIP
    """
    return standardise_sciplex3(_load("sciplex3", path, cache_dir, source, "srivatsan_2020_sciplex3", known_hash))


def combosciplex(
    path: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    source: Source = "download",
    known_hash: str | None = "registry",
) -> ad.AnnData:
    """combosciplex: A549 cells under single drugs and pairwise combinations (sci-Plex).

    Downloads the file pertpy distributes (no published checksum: the SHA-256 of the first download
    is recorded and checked on every later load), reads ``path``, or delegates to
    ``pertpy.data.combosciplex()``; then applies :func:`standardise_combosciplex`. Parameters as in
    :func:`sciplex3`.

    Examples
    --------
    >>> adata = sxdiff.datasets.combosciplex()  # doctest: +SKIP
    """
    return standardise_combosciplex(_load("combosciplex", path, cache_dir, source, "combosciplex", known_hash))


def norman2019(
    path: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    source: Source = "download",
    known_hash: str | None = "registry",
) -> ad.AnnData:
    """Norman et al. 2019: ~110k K562 cells with CRISPRa single-gene and two-gene activations.

    Downloads the file pertpy distributes (1.7 GB, SHA-256 checked), reads ``path``, or delegates
    to ``pertpy.data.norman_2019()``; then applies :func:`standardise_norman2019`. Parameters as in
    :func:`sciplex3`.

    Examples
    --------
    >>> adata = sxdiff.datasets.norman2019()  # doctest: +SKIP
    """
    return standardise_norman2019(_load("norman2019", path, cache_dir, source, "norman_2019", known_hash))
