"""Protein context for every cell: translated from RNA, or a knowledge proxy from coding-gene mRNA."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from sxdiff.data._expression import detect_expression_scale, get_expression, log_normalize
from sxdiff.data._on_disk import check_finite
from sxdiff.data._protein import coding_genes, is_isotype_control

__all__ = ["knowledge_proxy", "protein_context"]

logger = logging.getLogger(__name__)


def _log_normalised_dense(adata: AnnData, layer: str | None) -> np.ndarray:
    values = get_expression(adata, layer)
    check_finite(values, where="adata.X" if layer is None else f"adata.layers[{layer!r}]")
    if detect_expression_scale(values) == "counts":
        values = log_normalize(values)
    return values.toarray() if sp.issparse(values) else np.asarray(values, dtype=np.float64)


_MAX_RELIABILITY_CELLS = 2000  # cells whose held-out agreement estimates a protein's reliability


def _standardised(values: np.ndarray) -> np.ndarray:
    """Genes centred and scaled to unit variance across cells; constant genes are 0."""
    centred = values - values.mean(axis=0)
    scale = centred.std(axis=0)
    return np.divide(centred, scale, out=np.zeros_like(centred), where=scale > 0)


def _pca_loadings(standardised: np.ndarray, n_pcs: int = 30) -> np.ndarray:
    """Loadings (genes x components) of the first ``n_pcs`` principal components."""
    n_components = min(n_pcs, *standardised.shape)
    _, _, vt = np.linalg.svd(standardised, full_matrices=False)
    return vt[:n_components].T


def _knn_smooth(values: np.ndarray, embedding: np.ndarray, n_neighbors: int) -> np.ndarray:
    """Average each cell with its nearest neighbours (itself included) in ``embedding``."""
    if n_neighbors <= 1 or values.shape[0] <= n_neighbors:
        return values
    squared = (embedding**2).sum(axis=1)
    distance = squared[:, None] + squared[None, :] - 2 * embedding @ embedding.T
    neighbours = np.argsort(distance, axis=1)[:, :n_neighbors]
    return values[neighbours].mean(axis=1)


def _held_out_neighbours(embedding: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """Indices (query cells x ``k``) of each query cell's ``k`` nearest *other* cells in ``embedding``."""
    embedding = embedding.astype(np.float32)  # ranking only: single precision halves time and memory
    squared = (embedding**2).sum(axis=1)
    distance = embedding[query] @ embedding.T
    distance *= -2
    distance += squared[query, None]
    distance += squared[None, :]
    distance[np.arange(query.size), query] = np.inf  # a cell is never its own neighbour
    return np.argpartition(distance, k - 1, axis=1)[:, :k]


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _protein_reliability(
    standardised: np.ndarray, embedding: np.ndarray, loadings: np.ndarray, idx: list[int], k: int, query: np.ndarray
) -> float:
    """Held-out agreement of a protein's coding-gene mRNA with that of the nearest other cells.

    The neighbours are found in the PCA embedding with the coding genes' own contribution removed, so neither
    a cell's own value nor the genes' own noise can make the proxy look predictable.
    """
    if standardised.shape[0] < 3:
        return 0.0
    without = embedding - standardised[:, idx] @ loadings[idx]
    score = standardised[:, idx].mean(axis=1)
    neighbours = _held_out_neighbours(without, query, min(k, standardised.shape[0] - 1))
    return float(np.clip(_pearson(score[query], score[neighbours].mean(axis=1)), 0.0, 1.0))


def _complex_reliability(standardised: np.ndarray, idx: list[int]) -> float:
    """Spearman-Brown reliability of the subunits' mean from their mean pairwise correlation (unsmoothed)."""
    corr = np.nan_to_num(np.corrcoef(standardised[:, idx].T), nan=0.0)
    pairs = corr[np.triu_indices(len(idx), 1)]
    mean = float(np.clip(pairs.mean(), 0.0, 1.0)) if pairs.size else 0.0
    return len(idx) * mean / (1 + (len(idx) - 1) * mean)


def knowledge_proxy(
    adata: AnnData,
    proteins: Sequence[str] | None = None,
    *,
    complexes: Mapping[str, Sequence[str]] | None = None,
    protein_genes: Mapping[str, Sequence[str]] | None = None,
    layer: str | None = None,
    n_neighbors: int = 15,
    min_subunits: int = 2,
) -> tuple[pd.DataFrame, pd.Series]:
    """Protein (or complex) activity inferred from the mRNA of coding genes, when no reference exists.

    Each cell's log-normalised expression is smoothed over its ``n_neighbors`` nearest cells (itself
    included; 30 principal components of the standardised genes), genes are standardised, and a
    protein's activity is the mean over its coding genes (:func:`sxdiff.data.coding_genes`, or
    ``protein_genes``); a complex's activity is the mean over its measured subunits.

    Reliability in [0, 1] is a held-out estimate, so that a gene of pure noise scores about 0 however
    smooth its neighbourhood average is:

    - for a protein, how well the cell state predicts its coding-gene mRNA in cells it was not learned
      from: the Pearson correlation, across cells, between a cell's (unsmoothed, standardised)
      coding-gene mRNA and the mean of the same over its ``max(n_neighbors, 5)`` nearest *other* cells,
      found in the principal components with the coding genes' own contribution removed (on at most
      2,000 cells, a fixed random subset, for large data);
    - for a complex, the agreement of its subunits: the mean pairwise correlation ``r`` of their
      unsmoothed mRNA across cells, turned into the reliability of their mean over ``m`` subunits,
      ``m r / (1 + (m - 1) r)`` (Spearman-Brown); independent noise does not correlate between genes.

    Negative correlations count as 0.

    Parameters
    ----------
    adata
        RNA counts or log-normalised values, gene symbols as ``var_names``.
    proteins
        Protein or antibody names (``"CD4"``, ``"B7-H1 (PD-L1)"``).
    complexes
        Protein complexes, name -> subunit genes (e.g. :func:`sxdiff.drugs.read_corum`).
    protein_genes
        Explicit coding genes per protein, overriding the built-in antibody table.
    layer
        Layer with expression (``None``: ``X``).
    n_neighbors
        Neighbourhood size for smoothing (1 disables it); a protein's reliability uses at least 5 neighbours.
    min_subunits
        Complexes with fewer measured subunits are skipped.

    Returns
    -------
    ``(activity, reliability)``: cells x features DataFrame and a Series per feature. Features whose
    genes are absent, and isotype controls (:func:`sxdiff.data.is_isotype_control`), are dropped (and logged).

    Examples
    --------
    >>> import sxdiff
    >>> adata = sxdiff.datasets.glioblastoma_panobinostat()
    >>> activity, reliability = knowledge_proxy(adata, ["VIM", "CD44"], n_neighbors=5)
    >>> activity.shape, bool((reliability >= 0).all())
    ((5000, 2), True)
    """
    if proteins is None and complexes is None:
        raise ValueError("Give `proteins` and/or `complexes` to infer activities for.")
    genes = [str(g) for g in adata.var_names]
    position = {g: i for i, g in enumerate(genes)}
    features: dict[str, tuple[list[str], str]] = {}
    skipped = []
    for protein in proteins or []:
        if is_isotype_control(protein):  # background binding, no specific signal: never protein context
            skipped.append(protein)
            continue
        chosen = list((protein_genes or {}).get(protein, coding_genes(protein, genes)))
        chosen = [g for g in chosen if g in position]
        (features.__setitem__(protein, (chosen, "protein")) if chosen else skipped.append(protein))
    for name, subunits in (complexes or {}).items():
        present = sorted({g for g in subunits if g in position})
        (features.__setitem__(name, (present, "complex")) if len(present) >= min_subunits else skipped.append(name))
    if skipped:
        logger.info("knowledge_proxy: %d feature(s) without measured genes skipped, e.g. %s", len(skipped), skipped[:5])
    if not features:
        raise ValueError("None of the proteins or complexes has a coding gene among `adata.var_names`.")
    used = sorted({g for members, _ in features.values() for g in members})
    columns = [position[g] for g in used]
    logged = _log_normalised_dense(adata, layer)
    standardised = _standardised(logged)
    loadings = _pca_loadings(standardised)
    embedding = standardised @ loadings
    smooth = _knn_smooth(logged[:, columns], embedding, n_neighbors)
    mean, std = smooth.mean(axis=0), smooth.std(axis=0)
    z = (smooth - mean) / np.where(std > 0, std, 1.0)
    local = {g: i for i, g in enumerate(used)}
    n_cells = logged.shape[0]
    query = np.arange(n_cells)
    if n_cells > _MAX_RELIABILITY_CELLS:
        query = np.sort(np.random.default_rng(0).choice(n_cells, _MAX_RELIABILITY_CELLS, replace=False))
    activity, reliability = {}, {}
    for name, (members, kind) in features.items():
        activity[name] = z[:, [local[g] for g in members]].mean(axis=1)
        idx = [position[g] for g in members]
        if kind == "complex":
            reliability[name] = _complex_reliability(standardised, idx)
        else:
            reliability[name] = _protein_reliability(standardised, embedding, loadings, idx, max(n_neighbors, 5), query)
    frame = pd.DataFrame(activity, index=adata.obs_names.copy())
    return frame, pd.Series(reliability, name="reliability")


def protein_context(
    adata,
    *,
    translator=None,
    proteins: Sequence[str] | None = None,
    complexes: Mapping[str, Sequence[str]] | None = None,
    layer: str | None = None,
    method: Literal["auto", "translator", "knowledge"] = "auto",
    key_added: str = "sxdiff_protein",
    copy: bool = False,
):
    """Give every cell protein context and write it into the object the scanpy way.

    With ``translator`` (a trained :class:`sxdiff.model.ProteinTranslator`) the CLR protein estimates and
    the translator's cross-validated reliabilities are used, isotype controls (``translator.is_isotype_``)
    left out: they measure background binding, not a protein; otherwise (or with ``method="knowledge"``) the knowledge
    proxy from coding-gene mRNA (:func:`knowledge_proxy`). Measured protein needs no estimate: register
    it directly (a ``prot`` modality of a MuData).

    Writes, for an AnnData: ``obsm[key_added]`` (cells x features array), ``uns[key_added]`` with
    ``names``, ``reliability``, ``source`` (``"translator"`` / ``"knowledge"``). For a MuData: a new
    modality ``mod[key_added]`` (cells x features, ``var["reliability"]``), its ``rna`` modality being
    the input. Nothing is written if estimation fails.

    Parameters
    ----------
    adata
        RNA AnnData, or a MuData with an ``rna`` modality (and no measured ``prot`` modality).
    translator
        A trained ProteinTranslator, or ``None``.
    proteins, complexes
        Features of the knowledge proxy (ignored with a translator).
    layer
        Layer with the expression values.
    method
        ``"auto"`` uses the translator when given, the knowledge proxy otherwise.
    key_added
        Where to write (see above).
    copy
        Return a modified copy instead of writing in place.

    Examples
    --------
    >>> import sxdiff
    >>> adata = sxdiff.datasets.glioblastoma_panobinostat()
    >>> sxdiff.pp.protein_context(adata, proteins=["VIM", "CD44", "CD74"])
    >>> adata.obsm["sxdiff_protein"].shape, adata.uns["sxdiff_protein"]["source"]
    ((5000, 3), 'knowledge')
    """
    mods = getattr(adata, "mod", None)
    if mods is not None and "prot" in mods and key_added != "prot":
        raise ValueError(
            "This MuData already has a measured 'prot' modality; measured protein is used as it is "
            "(register it with setup_mudata). Remove it or pass another object to estimate protein."
        )
    rna = mods["rna"] if mods is not None else adata
    if method not in ("auto", "translator", "knowledge"):
        raise ValueError(f"Unknown method {method!r}; choose 'auto', 'translator' or 'knowledge'.")
    if method == "translator" and translator is None:
        raise ValueError("method='translator' needs a trained `translator=`.")
    if translator is not None and method != "knowledge":
        values = translator.predict(rna, layer=layer)
        reliability = pd.Series(translator.reliability_, index=translator.protein_names_).fillna(0.0)
        isotypes = [p for p, flag in zip(translator.protein_names_, translator.is_isotype_, strict=True) if flag]
        if isotypes:  # background binding, no specific signal: never protein context
            logger.info("protein_context: isotype control(s) %s left out.", isotypes)
            values = values.drop(columns=isotypes)
        source = "translator"
    else:
        values, reliability = knowledge_proxy(rna, proteins, complexes=complexes, layer=layer)
        source = "knowledge"
    target = adata.copy() if copy else adata
    names = [str(c) for c in values.columns]
    if mods is not None:
        module = AnnData(
            values.to_numpy(dtype=np.float32),
            obs=pd.DataFrame(index=target.mod["rna"].obs_names.copy()),
            var=pd.DataFrame({"reliability": reliability.loc[names].to_numpy()}, index=names),
        )
        module.uns["source"] = source
        target.mod[key_added] = module
        target.update()
    else:
        target.obsm[key_added] = values.to_numpy(dtype=np.float32)
        target.uns[key_added] = {
            "names": names,
            "reliability": reliability.loc[names].to_numpy(dtype=np.float64),
            "source": source,
        }
    return target if copy else None
