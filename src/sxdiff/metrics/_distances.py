"""Distribution distances between predicted and true cells in a PCA space fitted on training cells."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
from scipy.spatial.distance import cdist

__all__ = ["PCASpace", "energy_distance", "mmd"]


def _subsample(X: np.ndarray, max_cells: int | None, rng: np.random.Generator) -> np.ndarray:
    if max_cells is None or X.shape[0] <= max_cells:
        return X
    return X[np.sort(rng.choice(X.shape[0], size=max_cells, replace=False))]


def _check_pair(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1]:
        raise ValueError(f"Expected two cells x features matrices with the same features; got {X.shape} and {Y.shape}.")
    if X.shape[0] == 0 or Y.shape[0] == 0:
        raise ValueError("Both sets need at least one cell.")
    return X, Y


def energy_distance(X: np.ndarray, Y: np.ndarray, *, max_cells: int | None = 1000, seed: int = 0) -> float:
    """Energy distance ``2 E||x - y|| - E||x - x'|| - E||y - y'||`` between two sets of cells.

    Euclidean distances; the expectations are means over all pairs, including each cell with itself
    (the V-statistic of :class:`pertpy.tools.Distance` ``"edistance"``, which this matches exactly on the
    same inputs). Zero for identical sets, larger the further apart the distributions are (location
    and spread).

    Parameters
    ----------
    X, Y
        Cells x features (e.g. 50 principal components).
    max_cells
        Each set is subsampled to at most this many cells (without replacement, ``seed``) to bound the
        quadratic cost; ``None`` uses all cells.
    seed
        Seed of the subsampling.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.zeros((3, 2))
    >>> round(energy_distance(X, X + [3.0, 4.0]), 3)
    10.0
    """
    X, Y = _check_pair(X, Y)
    rng = np.random.default_rng(seed)
    X, Y = _subsample(X, max_cells, rng), _subsample(Y, max_cells, rng)
    return float(2 * cdist(X, Y).mean() - cdist(X, X).mean() - cdist(Y, Y).mean())


def mmd(
    X: np.ndarray,
    Y: np.ndarray,
    *,
    kernel: Literal["rbf", "linear"] = "rbf",
    gamma: float = 1.0,
    max_cells: int | None = 1000,
    seed: int = 0,
) -> float:
    """Squared maximum mean discrepancy ``mean k(x, x') + mean k(y, y') - 2 mean k(x, y)``.

    The biased (V-statistic) estimate with all pairs, as :class:`pertpy.tools.Distance` ``"mmd"``
    computes it (matched exactly on the same inputs and ``kernel``/``gamma``). ``rbf``:
    ``k(x, y) = exp(-gamma ||x - y||^2)``; ``linear``: ``x . y`` (then MMD is the squared distance of
    the means).

    Parameters
    ----------
    X, Y
        Cells x features.
    kernel, gamma
        Kernel and RBF bandwidth. :class:`PCASpace` sets one ``gamma`` from its reference cells so that
        every method is scored with the same kernel.
    max_cells, seed
        Subsampling as in :func:`energy_distance`.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.zeros((2, 2))
    >>> round(mmd(X, X, gamma=0.5), 6), round(mmd(X, X + 1.0, kernel="linear"), 6)
    (0.0, 2.0)
    """
    X, Y = _check_pair(X, Y)
    rng = np.random.default_rng(seed)
    X, Y = _subsample(X, max_cells, rng), _subsample(Y, max_cells, rng)
    if kernel == "linear":
        xx, yy, xy = X @ X.T, Y @ Y.T, X @ Y.T
    elif kernel == "rbf":
        xx = np.exp(-gamma * cdist(X, X, "sqeuclidean"))
        yy = np.exp(-gamma * cdist(Y, Y, "sqeuclidean"))
        xy = np.exp(-gamma * cdist(X, Y, "sqeuclidean"))
    else:
        raise ValueError(f"Unknown kernel {kernel!r}; choose 'rbf' or 'linear'.")
    return float(xx.mean() + yy.mean() - 2 * xy.mean())


@dataclass(frozen=True)
class PCASpace:
    """A principal-component space fitted on reference (training) cells, to compare cell distributions.

    Attributes
    ----------
    mean
        Gene means of the reference cells.
    components
        ``(n_comps, n_genes)`` principal axes.
    gamma
        RBF bandwidth for :func:`mmd`: one over the median squared distance between reference cells in
        this space (the median heuristic), fixed here so every method is scored with the same kernel.
    """

    mean: np.ndarray
    components: np.ndarray
    gamma: float

    @classmethod
    def fit(cls, X, n_comps: int = 50, *, max_cells: int = 20_000, seed: int = 0) -> PCASpace:
        """Fit on a cells x genes matrix (log-normalised), subsampled to ``max_cells`` cells.

        Examples
        --------
        >>> import numpy as np
        >>> space = PCASpace.fit(np.random.default_rng(0).normal(size=(100, 20)), n_comps=5)
        >>> space.transform(np.zeros((3, 20))).shape
        (3, 5)
        """
        rng = np.random.default_rng(seed)
        X = np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64)
        if X.shape[0] < 2:
            raise ValueError("A PCA space needs at least two reference cells.")
        X = _subsample(X, max_cells, rng)
        mean = X.mean(axis=0)
        n_comps = min(n_comps, X.shape[0] - 1, X.shape[1])
        centred = X - mean
        if centred.shape[1] <= min(centred.shape[0], 2000):  # small gene covariance: exact eigenvectors
            values, vectors = np.linalg.eigh(centred.T @ centred)
            components = vectors[:, np.argsort(values)[::-1][:n_comps]].T
        else:  # many genes: randomized SVD, never a genes x genes matrix
            from sklearn.utils.extmath import randomized_svd

            components = randomized_svd(centred, n_comps, n_iter=5, random_state=seed)[2]
        sample = _subsample(centred @ components.T, 2000, rng)
        squared = cdist(sample, sample, "sqeuclidean")[np.triu_indices(sample.shape[0], 1)]
        median = float(np.median(squared)) if squared.size else 1.0
        return cls(mean=mean, components=components, gamma=1.0 / median if median > 0 else 1.0)

    def transform(self, X) -> np.ndarray:
        """Project cells x genes onto the principal axes."""
        X = np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64)
        if X.shape[1] != self.mean.shape[0]:
            raise ValueError(f"The PCA space was fitted on {self.mean.shape[0]} genes; got {X.shape[1]}.")
        return (X - self.mean) @ self.components.T
