"""Where predicted cells go: a preallocated in-memory matrix, or an .h5ad file written batch by batch."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

__all__ = ["PredictionStore"]


class PredictionStore:
    """Collect predicted expression, states and protein for ``n_obs`` cells, one batch at a time.

    In memory, each array is allocated once at its final size (no list of blocks stacked at the end, which
    would need twice the memory). With ``path``, the arrays are datasets of an ``.h5ad`` file (anndata's
    on-disk format) and only one batch is in memory at a time; :meth:`finish` returns the file opened
    with ``backed="r"``.
    """

    def __init__(
        self, n_obs: int, n_vars: int, n_state: int, n_protein: int, path: str | os.PathLike | None = None
    ) -> None:
        self.path = None if path is None else Path(path)
        shapes = {"X": (n_obs, n_vars), "X_sxdiff": (n_obs, n_state)}
        if n_protein:
            shapes["sxdiff_protein"] = (n_obs, n_protein)
        if self.path is None:
            self._file = None
            self.arrays = {name: np.empty(shape, dtype=np.float32) for name, shape in shapes.items()}
            return
        import h5py

        if self.path.exists():
            raise FileExistsError(f"{self.path} exists; predictions are not written over an existing file.")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = h5py.File(self.path, "w")
        obsm = self._file.create_group("obsm")
        obsm.attrs.update({"encoding-type": "dict", "encoding-version": "0.1.0"})
        self.arrays = {}
        for name, shape in shapes.items():
            group = self._file if name == "X" else obsm
            chunks = (min(max(shape[0], 1), max(1, (1 << 20) // max(4 * shape[1], 1))), shape[1])
            dataset = group.create_dataset(name, shape=shape, dtype="float32", chunks=chunks if shape[0] else None)
            dataset.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
            self.arrays[name] = dataset

    def write(self, start: int, expression: np.ndarray, state: np.ndarray, protein: np.ndarray | None) -> None:
        """Store one batch of cells at rows ``start:start + len(expression)``."""
        stop = start + expression.shape[0]
        self.arrays["X"][start:stop] = expression
        self.arrays["X_sxdiff"][start:stop] = state
        if protein is not None and "sxdiff_protein" in self.arrays:
            self.arrays["sxdiff_protein"][start:stop] = protein

    def finish(self, obs: pd.DataFrame, var: pd.DataFrame, uns: dict) -> AnnData:
        """The predicted cells as an AnnData (in memory, or backed by the written file)."""
        if self._file is None:
            result = AnnData(self.arrays["X"], obs=obs, var=var)
            result.obsm["X_sxdiff"] = self.arrays["X_sxdiff"]
            if "sxdiff_protein" in self.arrays:
                result.obsm["sxdiff_protein"] = self.arrays["sxdiff_protein"]
            result.uns.update(uns)
            return result
        import anndata
        from anndata.io import write_elem

        with self._file as handle:
            write_elem(handle, "obs", obs)
            write_elem(handle, "var", var)
            write_elem(handle, "uns", uns)
            for name in ("layers", "obsp", "varm", "varp"):
                write_elem(handle, name, {})
            handle.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
        return anndata.read_h5ad(self.path, backed="r")

    def abort(self) -> None:
        """Close and delete a partly written file (prediction failed)."""
        if self._file is not None:
            self._file.close()
            self.path.unlink(missing_ok=True)
