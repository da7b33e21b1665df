"""Baselines from the literature: the challenge's perturbed mean and a linear model on gene embeddings."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from anndata import AnnData

from ._baselines import MeanShiftBaseline

__all__ = ["LinearEmbeddingBaseline", "PerturbedMeanBaseline"]

logger = logging.getLogger(__name__)


class PerturbedMeanBaseline(MeanShiftBaseline):
    """Predict every condition with the average change of all training perturbations.

    The baseline of the Virtual Cell Challenge (cell-eval's ``build_base_mean_adata`` with
    ``as_delta=True``): each training condition's delta (its mean minus the control mean of its context,
    averaged over contexts as in :class:`MeanShiftBaseline`) is averaged over conditions, so every
    condition counts once whatever its number of cells, and that one change is added to the source control
    cells for every query condition. It knows what perturbing does in general and nothing about which
    perturbation; on control-referenced metrics it often scores well, on the perturbation-centred Pearson
    and the discrimination score it cannot.

    Parameters are those of :class:`MeanShiftBaseline`.

    Examples
    --------
    >>> import sxdiff
    >>> adata = sxdiff.datasets.norman_crispra()
    >>> baseline = PerturbedMeanBaseline(context_key="context").fit(adata)
    >>> pred = baseline.predict(adata[adata.obs["is_control"]], ["KLF1", "SGK1"])
    >>> bool((pred.X[:100] == pred.X[100:]).all())
    True
    """

    def _predict_condition(self, X: np.ndarray, contexts: np.ndarray, condition: dict) -> np.ndarray:
        return self._shifted(X, self.global_delta_, contexts)


class LinearEmbeddingBaseline(MeanShiftBaseline):
    """Linear model of perturbation effects on gene embeddings (Ahlmann-Eltze et al., Nat. Methods 2025).

    The training deltas ``Y`` (genes x training conditions, from :class:`MeanShiftBaseline`) are modelled as
    ``Y ≈ G W Pᵀ + b``: ``G`` (genes x K) are gene embeddings, the first ``n_components`` principal
    components of the training effects; ``P`` (conditions x K) are perturbation embeddings, the sum of the
    members' embeddings for a combination; ``W`` (K x K) is fitted by ridge regression (penalty ``ridge``)
    and ``b`` is the intercept (targets and embeddings are centred over the fitted conditions). A query
    condition whose members all have an embedding is predicted as ``b + G W p``; any other condition gets
    the :class:`MeanShiftBaseline` delta with its fallbacks (logged).

    Perturbation embeddings (``embedding``):

    - ``"gene"`` (the paper's): a genetic perturbation's embedding is the row of ``G`` of its target gene,
      so an unseen perturbation of a measured gene can be predicted. ``G`` is the PCA of the centred deltas
      of the training conditions whose targets are all measured genes; those conditions are fitted.
    - ``"training"`` (for readouts that do not include the targeted genes, as the bundled data's highly
      variable genes): a member's embedding is its measured single effect's coordinates ``Gᵀ y_m`` on the
      principal components of the training singles' deltas. Measured singles keep their own delta; ``W``
      and ``b`` are fitted on the training *combinations* only, so the model learns how combinations
      depart from the sum of their members (none fitted without training combinations: then it is the
      mean shift).
    - ``"auto"``: ``"gene"`` when at least half of the training singles target a measured gene, else
      ``"training"``.

    Parameters
    ----------
    n_components
        Dimension K of the embeddings (reduced to the rank of the training effects).
    ridge
        Ridge penalty of ``W`` (0.1, as in the paper).
    embedding
        ``"gene"``, ``"training"`` or ``"auto"`` (see above).
    **kwargs
        Parameters of :class:`MeanShiftBaseline`.

    Attributes
    ----------
    gene_embedding_
        ``G``, genes x K.
    weights_, intercept_
        ``W`` and ``b`` (``None`` when no condition could be fitted).
    embedding_
        The embedding used (``"gene"`` or ``"training"``).

    Examples
    --------
    >>> import sxdiff
    >>> adata = sxdiff.datasets.norman_crispra()
    >>> baseline = LinearEmbeddingBaseline(context_key="context", dose_key="dose").fit(adata)
    >>> baseline.embedding_, baseline.gene_embedding_.shape
    ('training', (500, 10))
    """

    def __init__(
        self,
        *,
        n_components: int = 10,
        ridge: float = 0.1,
        embedding: Literal["gene", "training", "auto"] = "auto",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if embedding not in ("gene", "training", "auto"):
            raise ValueError(f"embedding must be 'gene', 'training' or 'auto'; got {embedding!r}.")
        if n_components < 1 or ridge < 0:
            raise ValueError(f"n_components must be >= 1 and ridge >= 0; got {n_components}, {ridge}.")
        self.n_components = n_components
        self.ridge = ridge
        self.embedding = embedding

    def _fit(self, adata: AnnData, found) -> None:
        super()._fit(adata, found)
        self.genes_ = {gene: i for i, gene in enumerate(adata.var_names)}
        members = {key: tuple(key.split(self.delimiter)) for key, _ in self.deltas_}
        self.singles_ = {key: delta for (key, _), delta in self.deltas_.items() if len(members[key]) == 1}
        measured = np.mean([key in self.genes_ for key in self.singles_]) if self.singles_ else 0.0
        self.embedding_ = self.embedding if self.embedding != "auto" else ("gene" if measured >= 0.5 else "training")
        if self.embedding_ == "gene":
            fitted = [(key, d) for (key, _), d in self.deltas_.items() if all(m in self.genes_ for m in members[key])]
            basis = np.array([d for _, d in fitted]).T if fitted else np.zeros((adata.n_vars, 0))
            basis = basis - basis.mean(axis=1, keepdims=True) if fitted else basis
        else:
            fitted = [(key, d) for (key, _), d in self.deltas_.items() if len(members[key]) > 1]
            fitted = [(key, d) for key, d in fitted if all(m in self.singles_ for m in members[key])]
            basis = np.array(list(self.singles_.values())).T if self.singles_ else np.zeros((adata.n_vars, 0))
        self.gene_embedding_ = self._principal_components(basis)
        self.weights_ = self.intercept_ = None
        if len(fitted) < 2 or self.gene_embedding_.shape[1] == 0:
            logger.info("LinearEmbeddingBaseline: %d condition(s) to fit; predicting mean shifts.", len(fitted))
            return
        P = np.vstack([self._embed(members[key]) for key, _ in fitted])
        Y = np.vstack([d for _, d in fitted]).T
        P_mean, Y_mean = P.mean(axis=0), Y.mean(axis=1)
        Pc, Yc = P - P_mean, Y - Y_mean[:, None]
        G = self.gene_embedding_
        k = G.shape[1]
        left = np.linalg.solve(G.T @ G + self.ridge * np.eye(k), G.T @ Yc)
        self.weights_ = left @ Pc @ np.linalg.inv(Pc.T @ Pc + self.ridge * np.eye(k))
        self.intercept_ = Y_mean - G @ self.weights_ @ P_mean
        logger.info("LinearEmbeddingBaseline (%s): %d conditions fitted, K = %d", self.embedding_, len(fitted), k)

    def _principal_components(self, basis: np.ndarray) -> np.ndarray:
        if basis.shape[1] == 0:
            return np.zeros((basis.shape[0], 0))
        U, s, _ = np.linalg.svd(basis, full_matrices=False)
        rank = int(np.sum(s > s.max() * 1e-5)) if s.size else 0  # float32 expression
        return U[:, : min(self.n_components, rank)]

    def _embed(self, members: tuple[str, ...]) -> np.ndarray | None:
        """Sum of the members' embeddings, or ``None`` when a member has none."""
        total = np.zeros(self.gene_embedding_.shape[1])
        for member in members:
            if self.embedding_ == "gene" and member in self.genes_:
                total += self.gene_embedding_[self.genes_[member]]
            elif self.embedding_ == "training" and member in self.singles_:
                total += self.gene_embedding_.T @ self.singles_[member]
            else:
                return None
        return total

    def _predict_condition(self, X: np.ndarray, contexts: np.ndarray, condition: dict) -> np.ndarray:
        members, doses = self._parse_condition(condition)
        p = self._embed(members) if self.weights_ is not None else None
        use_model = p is not None and (self.embedding_ == "gene" or len(members) > 1)
        if not use_model:
            return self._shifted(X, self._delta_of(members, doses), contexts)
        delta = self.intercept_ + self.gene_embedding_ @ self.weights_ @ p
        return self._shifted(X, delta, contexts)
