"""Reading cells (rows) of expression matrices held in memory or on disk (backed ``.h5ad``, zarr).

AnnData opened with ``backed="r"`` keeps ``X`` in the file: an :class:`h5py.Dataset` (dense) or an
:class:`anndata.abc.CSRDataset` (sparse). Everything that reads expression values goes through
:class:`RowReader`, which reads only the rows asked for, so memory does not grow with the number of cells.
Whole-matrix checks (:func:`check_finite`) read the matrix in blocks of rows (:func:`row_blocks`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

__all__ = ["RowReader", "check_finite", "contiguous_runs", "is_on_disk", "row_blocks", "stored_values"]


def is_on_disk(matrix) -> bool:
    """Whether ``matrix`` is a store on disk (backed h5ad ``X``, zarr array) rather than an in-memory array."""
    if isinstance(matrix, np.ndarray | np.matrix) or sp.issparse(matrix):
        return False
    from anndata.abc import CSCDataset, CSRDataset

    if isinstance(matrix, CSRDataset | CSCDataset):
        return True
    module = type(matrix).__module__
    return module.startswith(("h5py", "zarr"))


def contiguous_runs(rows: np.ndarray, max_gap: int = 0) -> list[tuple[int, int]]:
    """Half-open ``(start, stop)`` runs covering sorted, unique ``rows``, bridging gaps of up to ``max_gap`` rows.

    Examples
    --------
    >>> contiguous_runs(np.array([0, 1, 2, 5, 7, 8]))
    [(0, 3), (5, 6), (7, 9)]
    >>> contiguous_runs(np.array([0, 1, 2, 5, 7, 8]), max_gap=2)
    [(0, 9)]
    """
    if len(rows) == 0:
        return []
    breaks = np.flatnonzero(np.diff(rows) > max_gap + 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [len(rows)]])
    return [(int(rows[a]), int(rows[b - 1]) + 1) for a, b in zip(starts, stops, strict=True)]


def _dense(block, dtype) -> np.ndarray:
    if sp.issparse(block):
        return block.toarray().astype(dtype, copy=False)
    return np.asarray(block, dtype=dtype)


class RowReader:
    """Dense rows of a cells x genes matrix, read on demand from memory or from disk.

    Rows on disk are read in contiguous runs (one read per run of nearby cells, bridging gaps of up to
    ``max_gap`` rows), in file order, and returned in the order asked for. Nothing is cached.

    Parameters
    ----------
    matrix
        NumPy array, SciPy sparse matrix, backed AnnData ``X`` (h5py dataset or ``CSRDataset``) or zarr array.
    dtype
        Type of the returned rows.
    max_gap
        On disk, rows at most this many rows apart are read in one slice (fewer, larger reads).
    check
        What the matrix is (e.g. ``"adata.X"``): when given, its values are checked for NaN / infinite values,
        an in-memory matrix whole and at once, a matrix on disk in every read (it may not fit in memory).

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> reader = RowReader(sp.csr_matrix(np.arange(12.0).reshape(4, 3)))
    >>> reader[np.array([3, 0])].tolist()
    [[9.0, 10.0, 11.0], [0.0, 1.0, 2.0]]
    """

    def __init__(self, matrix, dtype=np.float32, max_gap: int = 16, check: str | None = None) -> None:
        from anndata.abc import CSCDataset

        if isinstance(matrix, CSCDataset):
            raise ValueError(
                "The expression matrix on disk is stored by columns (CSC); reading cells from it means reading the "
                "whole matrix. Store it by rows: `adata.X = adata.X.tocsr()` before writing the file (or "
                "`anndata.io.write_elem` a CSR matrix)."
            )
        if isinstance(matrix, sp.csc_matrix | sp.csc_array):
            matrix = matrix.tocsr()  # in memory: one conversion, then cheap row reads
        self.on_disk = is_on_disk(matrix)
        if self.on_disk and not np.issubdtype(np.dtype(matrix.dtype), np.number):
            raise ValueError(
                f"The expression matrix on disk has dtype {matrix.dtype}; expression values must be numeric."
            )
        self.matrix = matrix
        self.dtype = dtype
        self.max_gap = max_gap
        self.check = check if self.on_disk else None
        if check is not None and not self.on_disk:
            check_finite(matrix, where=check)
        self.shape = tuple(matrix.shape)
        self._csr_parts = None  # (data, indices, indptr) of a backed CSR matrix, read run by run
        group = getattr(matrix, "group", None) if self.on_disk else None
        if group is not None and getattr(matrix, "format", None) == "csr":
            self._csr_parts = (group["data"], group["indices"], np.asarray(group["indptr"][...], dtype=np.int64))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        values = self._read(rows)
        if self.check is not None:
            check_finite(values, where=self.check)
        return values

    def _read(self, rows) -> np.ndarray:
        if isinstance(rows, slice):
            whole = rows == slice(None) and not self.on_disk
            return _dense(self.matrix if whole else self.matrix[rows], self.dtype)  # no sliced copy of the whole
        rows = np.asarray(rows)
        rows = np.flatnonzero(rows) if rows.dtype == bool else np.arange(self.shape[0])[rows]  # masks, negatives
        if not self.on_disk:
            return _dense(self.matrix[rows], self.dtype)
        unique, inverse = np.unique(rows, return_inverse=True)
        out = np.empty((len(unique), self.shape[1]), dtype=self.dtype)
        for start, stop in contiguous_runs(unique, self.max_gap):
            first, last = np.searchsorted(unique, [start, stop])
            out[first:last] = self._run(start, stop)[unique[first:last] - start]
        return out[inverse]

    def _run(self, start: int, stop: int) -> np.ndarray:
        """Dense rows ``start:stop`` from disk (a backed CSR matrix: two reads, bypassing per-call overhead)."""
        if self._csr_parts is None:
            return _dense(self.matrix[start:stop], self.dtype)
        data, indices, indptr = self._csr_parts
        a, b = indptr[start], indptr[stop]
        block = sp.csr_matrix(
            (data[a:b], indices[a:b], indptr[start : stop + 1] - a), shape=(stop - start, self.shape[1])
        )
        return block.toarray().astype(self.dtype, copy=False)


def row_blocks(matrix, rows_per_block: int = 20_000) -> Iterator[object]:
    """Blocks of rows covering the matrix: the matrix itself when in memory, blocks of rows when on disk.

    Blocks are in-memory (NumPy or SciPy sparse), so whole-matrix checks run on stores larger than memory.
    """
    if not is_on_disk(matrix):
        yield matrix
        return
    for start in range(0, matrix.shape[0], rows_per_block):
        yield matrix[start : min(start + rows_per_block, matrix.shape[0])]


def stored_values(matrix) -> np.ndarray:
    """The stored values of a dense or sparse matrix (explicit entries only for sparse)."""
    if sp.issparse(matrix):
        return np.asarray(matrix.data)
    return np.asarray(matrix)


def check_finite(matrix, *, where: str) -> None:
    """Raise ``ValueError`` if the matrix holds NaN or infinite values.

    Parameters
    ----------
    matrix
        Dense array, scipy sparse matrix, or a matrix on disk (backed ``X``), checked block by block.
    where
        What the matrix is (e.g. ``"adata.X"``), used in the message.
    """
    n_nan = n_infinite = 0
    for block in row_blocks(matrix):
        values = stored_values(block)
        if not np.issubdtype(values.dtype, np.number):
            raise ValueError(f"{where} has dtype {values.dtype}; expression values must be numeric.")
        bad = ~np.isfinite(values)
        if bad.any():
            nan = int(np.isnan(values).sum())
            n_nan, n_infinite = n_nan + nan, n_infinite + int(bad.sum()) - nan
    if n_nan or n_infinite:
        raise ValueError(
            f"{where} contains {n_nan} NaN and {n_infinite} infinite value(s). Remove or "
            "impute them (e.g. `adata = adata[~np.isnan(adata.X).any(axis=1)]`) before using sxdiff."
        )
