"""Safe, atomic model files: tensors loaded with ``weights_only=True``, everything else as tagged JSON.

scvi-tools pickles a model's attributes with ``torch.save`` and reads them back with
``torch.load(weights_only=False)``, which executes code found in the file. A model file is something
people download from colleagues, so sxdiff models are written as

- ``weights.pt``: the module's ``state_dict`` (tensors only), read with ``torch.load(weights_only=True)``;
- ``attributes.json``: the registry, init parameters and the other fitted attributes (names ending in
  ``_``) as JSON, with numpy arrays and data frames tagged so that they round-trip exactly;
- ``var_names.json``: the genes (per modality for MuData);
- ``manifest.json``: format name and version, the sxdiff version that wrote it, and the SHA-256 of each
  file, so that a truncated or modified file is refused with a clear error.

Saving writes into a temporary directory beside the target and renames it into place, so an interrupted
save never leaves a half-written model where a good one was.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from sxdiff._files import sha256_file

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ModelFileError",
    "SafeSaveLoadMixin",
    "from_json",
    "raise_gene_mismatch",
    "to_json",
]

logger = logging.getLogger(__name__)

FORMAT = "sxdiff-model"
# 2: composed expected change, EMA (session 5); 3: identities, novelty shrinkage, state anchors; 4: variation scale;
# 5: measured effects; 6: context transfer (τ, ν); 7: state spread
FORMAT_VERSION = 7
_FILES = ("weights.pt", "attributes.json", "var_names.json")


class ModelFileError(ValueError):
    """A model directory that cannot be loaded safely (missing, truncated, tampered or too new)."""


# ------------------------------------------------------------------------------------------ tagged JSON
def to_json(value: Any) -> Any:
    """Plain-JSON form of ``value`` (dicts, lists, numbers, strings, numpy arrays/scalars, data frames)."""
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: to_json(v) for k, v in value.items()}
        return {"__dict_items__": [[to_json(k), to_json(v)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [to_json(v) for v in value]}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OUS":
            items = [to_json(v) for v in value.ravel().tolist()]
            return {"__ndarray__": items, "dtype": "object", "shape": list(value.shape)}
        return {"__ndarray__": value.ravel().tolist(), "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, pd.DataFrame):
        return {
            "__dataframe__": {
                "columns": [to_json(c) for c in value.columns],
                "index": [to_json(i) for i in value.index],
                "data": {str(i): to_json(value[c].to_numpy()) for i, c in enumerate(value.columns)},
            }
        }
    if isinstance(value, pd.Index):
        return {"__index__": to_json(value.to_numpy())}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return {"__float__": repr(value)}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"Cannot store a {type(value).__name__} in a model file.")


def from_json(value: Any) -> Any:
    """Inverse of :func:`to_json`."""
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__ndarray__" in value:
        items = [from_json(v) for v in value["__ndarray__"]]
        if value["dtype"] == "object":
            out = np.empty(len(items), dtype=object)
            out[:] = items
            return out.reshape(value["shape"])
        return np.asarray(items, dtype=np.dtype(value["dtype"])).reshape(value["shape"])
    if "__tuple__" in value:
        return tuple(from_json(v) for v in value["__tuple__"])
    if "__dict_items__" in value:
        return {_hashable(from_json(k)): from_json(v) for k, v in value["__dict_items__"]}
    if "__dataframe__" in value:
        frame = value["__dataframe__"]
        columns = [from_json(c) for c in frame["columns"]]
        data = {c: from_json(frame["data"][str(i)]) for i, c in enumerate(columns)}
        return pd.DataFrame(data, index=[from_json(i) for i in frame["index"]], columns=columns)
    if "__index__" in value:
        return pd.Index(from_json(value["__index__"]))
    if "__float__" in value:
        return float(value["__float__"])
    return {k: from_json(v) for k, v in value.items()}


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


# ------------------------------------------------------------------------------------------ the mixin
class SafeSaveLoadMixin:
    """``save``/``load`` for scvi-tools models without pickle, with checksums and atomic replacement."""

    def save(self, dir_path: str | os.PathLike, overwrite: bool = False, save_anndata: bool = False) -> None:
        """Save the model (and optionally its AnnData/MuData) to ``dir_path``.

        Parameters
        ----------
        dir_path
            Directory to create. It is written under a temporary name and renamed into place.
        overwrite
            Replace an existing directory (only once the new one is complete).
        save_anndata
            Also write the registered data (``adata.h5ad`` / ``mdata.h5mu``).

        Examples
        --------
        >>> model.save("my_model/", overwrite=True)  # doctest: +SKIP
        >>> sxdiff.model.StateXDiff.load("my_model/")  # doctest: +SKIP
        """
        import sxdiff

        target = Path(dir_path)
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} already exists; pass `overwrite=True` to replace it.")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
        try:
            state = {k: v.detach().cpu() for k, v in self.module.state_dict().items()}
            torch.save(state, staging / "weights.pt")
            attributes = {name: value for name, value in vars(self).items() if name.endswith("_") and name[0] != "_"}
            (staging / "attributes.json").write_text(json.dumps(to_json(attributes)))
            (staging / "var_names.json").write_text(json.dumps(to_json(self._var_names_for_file())))
            files = list(_FILES)
            if save_anndata:
                name = "mdata.h5mu" if hasattr(self.adata, "mod") else "adata.h5ad"
                self.adata.write(staging / name)
                files.append(name)
            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "sxdiff_version": sxdiff.__version__,
                "model_class": type(self).__name__,
                "sha256": {name: sha256_file(staging / name) for name in files},
            }
            (staging / "manifest.json").write_text(json.dumps(manifest, indent=1))
            _replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _var_names_for_file(self):
        if hasattr(self.adata, "mod"):
            return {name: list(map(str, mod.var_names)) for name, mod in self.adata.mod.items()}
        return [str(v) for v in self.gene_names_] if hasattr(self, "gene_names_") else list(self.adata.var_names)

    @classmethod
    def load(cls, dir_path: str | os.PathLike, adata=None, device: str = "cpu"):
        """Load a model saved by :meth:`save`; no code from the file is executed.

        Parameters
        ----------
        dir_path
            Directory written by :meth:`save`.
        adata
            AnnData/MuData to attach (set up the same way, same genes); ``None`` uses the saved data when
            there is one, otherwise the model is loaded without data (prediction still works).
        device
            ``"cpu"``, ``"cuda"``, ...

        Raises
        ------
        ModelFileError
            The directory is not a complete sxdiff model (missing or modified files, a pickle-based
            scvi-tools file), or it was written by a newer, incompatible format version.
        """
        from scvi.model.base._save_load import _initialize_model

        import sxdiff

        path = Path(dir_path)
        manifest = _read_manifest(path)
        if manifest["format_version"] > FORMAT_VERSION:
            raise ModelFileError(
                f"{path} was written by sxdiff {manifest.get('sxdiff_version', '?')} (model format "
                f"{manifest['format_version']}); this sxdiff {sxdiff.__version__} reads format {FORMAT_VERSION}. "
                "Upgrade sxdiff to load it."
            )
        if manifest["format_version"] < FORMAT_VERSION:
            raise ModelFileError(
                f"{path} was written by sxdiff {manifest.get('sxdiff_version', '?')} (model format "
                f"{manifest['format_version']}), whose network differs from this sxdiff {sxdiff.__version__} (format "
                f"{FORMAT_VERSION}); retrain the model with this version."
            )
        if manifest.get("model_class") != cls.__name__:
            raise ModelFileError(f"{path} holds a {manifest.get('model_class')}, not a {cls.__name__}.")
        for name, expected in manifest["sha256"].items():
            file = path / name
            if not file.exists() or sha256_file(file) != expected:
                raise ModelFileError(
                    f"{file} is missing, truncated or modified (its SHA-256 does not match the manifest); the model "
                    "cannot be loaded safely. Copy the whole directory again."
                )
        try:
            attributes = from_json(json.loads((path / "attributes.json").read_text()))
            var_names = from_json(json.loads((path / "var_names.json").read_text()))
            state = torch.load(path / "weights.pt", map_location=device, weights_only=True)
        except Exception as error:  # corrupt content with a matching checksum cannot happen, but be explicit
            raise ModelFileError(f"{path} could not be read: {error}") from error
        if adata is None:
            for name in ("adata.h5ad", "mdata.h5mu"):
                if name in manifest["sha256"]:
                    import anndata
                    import mudata

                    adata = anndata.read_h5ad(path / name) if name.endswith("h5ad") else mudata.read_h5mu(path / name)
        registry = attributes.pop("registry_")
        if adata is not None:
            cls._check_var_names(adata, var_names)
            getattr(cls, registry.get("setup_method_name", "setup_anndata"))(
                adata, source_registry=registry, **registry["setup_args"]
            )
        model = _initialize_model(cls, adata, registry, attributes, None)
        model.module.load_state_dict(state)
        model.to_device(device)
        model.module.eval()
        return model

    @staticmethod
    def _check_var_names(adata, var_names) -> None:
        if isinstance(var_names, dict):
            if not hasattr(adata, "mod"):
                raise ValueError("This model was trained on a MuData; pass a MuData with the same modalities.")
            for name, names in var_names.items():
                got = list(map(str, adata.mod[name].var_names)) if name in adata.mod else None
                if got != list(names):
                    raise_gene_mismatch(list(names), got or [], where=f"modality {name!r}")
            return
        base = adata.mod["rna"] if hasattr(adata, "mod") and "rna" in adata.mod else adata
        got = list(map(str, base.var_names))
        if got != list(var_names):
            raise_gene_mismatch(list(var_names), got, where="var_names")


def raise_gene_mismatch(expected: list[str], got: list[str], where: str) -> None:
    """Raise a ``ValueError`` listing missing and unexpected genes (or saying the order differs)."""
    have, known = set(got), set(expected)
    missing = [g for g in expected if g not in have][:10]
    extra = [g for g in got if g not in known][:10]
    order = "; same genes in another order" if not missing and not extra else ""
    raise ValueError(
        f"The {where} differ from the model's {len(expected)} genes (missing e.g. {missing}; unexpected e.g. "
        f"{extra}{order}). Subset and order them like the training data: `adata[:, model_genes]`."
    )


def _read_manifest(path: Path) -> dict:
    manifest_file = path / "manifest.json"
    if not manifest_file.exists():
        if (path / "model.pt").exists():
            raise ModelFileError(
                f"{path} holds a pickle-based scvi-tools file (model.pt), which could execute code when loaded; "
                "sxdiff does not read it. Re-save the model with this sxdiff version in a trusted environment."
            )
        raise ModelFileError(f"{path} is not an sxdiff model directory (no manifest.json).")
    try:
        manifest = json.loads(manifest_file.read_text())
    except json.JSONDecodeError as error:
        raise ModelFileError(f"{manifest_file} is truncated or corrupt: {error}") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or "sha256" not in manifest:
        raise ModelFileError(f"{manifest_file} is not an sxdiff model manifest.")
    return manifest


def _replace(staging: Path, target: Path) -> None:
    """Move the finished ``staging`` directory to ``target``; an old ``target`` is removed only afterwards."""
    if not target.exists():
        os.replace(staging, target)
        return
    backup = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.replace(target, backup)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(backup, target)
        raise
    shutil.rmtree(backup, ignore_errors=True) if backup.is_dir() else backup.unlink()
