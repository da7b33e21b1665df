"""Reading expression values from AnnData and deciding what scale they are on."""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

from ._on_disk import is_on_disk, row_blocks, stored_values

__all__ = [
    "ExpressionScale",
    "count_negative",
    "detect_expression_scale",
    "get_expression",
    "log_normalize",
    "mean_expression",
]

ExpressionScale = Literal["counts", "log1p", "normal"]
"""``counts``: non-negative integers (UMIs); ``log1p``: log-normalised, non-negative;
``normal``: any real values (e.g. L1000 log2 intensities or z-scores)."""


def get_expression(adata: AnnData, layer: str | None = None):
    """Return ``adata.X`` or ``adata.layers[layer]`` (no copy), with a clear error for a missing layer."""
    if layer is None:
        if adata.X is None:
            raise ValueError("`adata.X` is empty (None). Pass `layer=` naming the layer with expression values.")
        return adata.X
    if layer not in adata.layers:
        raise KeyError(
            f"Layer {layer!r} is not in `adata.layers` (available: {list(adata.layers.keys())}). "
            "Pass `layer=None` to use `adata.X`."
        )
    return adata.layers[layer]


def count_negative(matrix) -> int:
    """Number of negative stored values (block by block for a matrix on disk)."""
    return sum(int((stored_values(block) < 0).sum()) for block in row_blocks(matrix))


def detect_expression_scale(matrix, *, max_entries: int = 2_000_000) -> ExpressionScale:
    """Guess whether values are raw counts, log-normalised or general real values.

    Parameters
    ----------
    matrix
        Dense array, scipy sparse matrix or matrix on disk (assumed finite).
    max_entries
        Only the first ``max_entries`` stored values are inspected, to keep this fast on large data (on disk:
        the first ``max_entries / n_genes`` cells, at least 1,000).

    Returns
    -------
    ``"counts"`` when every value is a non-negative integer, ``"log1p"`` when values are
    non-negative, at most 30 and include zeros (log of sparse counts), ``"normal"`` otherwise (e.g.
    z-scores, or L1000 log2 intensities, which have no zeros).

    Raises
    ------
    ValueError
        Integer values of which a few (under 1 %) are negative: corrupted counts, not real values.

    Examples
    --------
    >>> import numpy as np
    >>> detect_expression_scale(np.array([[0.0, 3.0], [1.0, 7.0]]))
    'counts'
    >>> detect_expression_scale(np.log1p(np.array([[0.0, 3.0], [1.0, 7.0]])))
    'log1p'
    """
    if is_on_disk(matrix):
        n_rows = min(matrix.shape[0], max(1000, max_entries // max(1, matrix.shape[1])))
        matrix = matrix[:n_rows]
    values = stored_values(matrix).ravel()[:max_entries]
    if values.size == 0:
        return "counts"
    if values.min() < 0:
        negative = values < 0
        if np.all(np.mod(values, 1) == 0) and negative.mean() < 0.01:
            raise ValueError(
                f"The values look like counts (all integers) but {int(negative.sum())} are negative (e.g. "
                f"{values[negative][:5].tolist()}); counts cannot be negative. Fix the matrix, or pass "
                "`expression_scale='normal'` if these are not counts."
            )
        return "normal"
    if np.all(np.mod(values, 1) == 0):
        return "counts"
    has_zeros = values.min() == 0 or (sp.issparse(matrix) and matrix.nnz < np.prod(matrix.shape))
    if values.max() <= 30 and has_zeros:
        return "log1p"
    return "normal"


def log_normalize(counts, target_sum: float = 1e4):
    """``log1p`` of counts scaled to ``target_sum`` per cell; sparse stays sparse (CSR), dense becomes float64.

    The one log-normalisation used across sxdiff (translator inputs, protein proxies, scoring counts
    predictions), the same as ``sc.pp.normalize_total(target_sum=1e4)`` followed by ``sc.pp.log1p``.

    Examples
    --------
    >>> import numpy as np
    >>> log_normalize(np.array([[1.0, 3.0]]), target_sum=4).round(3).tolist()
    [[0.693, 1.386]]
    """
    library = np.asarray(counts.sum(axis=1)).ravel().clip(min=1.0)
    if sp.issparse(counts):
        scaled = sp.csr_matrix(sp.diags(target_sum / library) @ counts, dtype=np.float64)
        scaled.data = np.log1p(scaled.data)
        return scaled
    return np.log1p(np.asarray(counts, dtype=np.float64) / library[:, None] * target_sum)


def mean_expression(matrix) -> np.ndarray:
    """Mean over cells (rows) in float64, for dense, sparse or on-disk matrices."""
    if is_on_disk(matrix):
        total = np.zeros(matrix.shape[1])
        for block in row_blocks(matrix):
            block = block.astype(np.float64) if sp.issparse(block) else np.asarray(block, dtype=np.float64)
            total += np.asarray(block.sum(axis=0)).ravel()
        return total / max(1, matrix.shape[0])
    if sp.issparse(matrix):
        return np.asarray(matrix.astype(np.float64).mean(axis=0)).ravel()
    return np.asarray(matrix, dtype=np.float64).mean(axis=0)
