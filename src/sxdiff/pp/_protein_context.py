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


def _knn_smooth(values: np.ndarray, n_neighbors: int, n_pcs: int = 30) -> np.ndarray:
    """Average each cell with its nearest neighbours in a PCA of the standardised expression."""
    if n_neighbors <= 1 or values.shape[0] <= n_neighbors:
        return values
    centred = values - values.mean(axis=0)
    scale = centred.std(axis=0)
    centred = centred[:, scale > 0] / scale[scale > 0]
    n_components = min(n_pcs, *centred.shape)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    embedding = u[:, :n_components] * s[:n_components]
    squared = (embedding**2).sum(axis=1)
    distance = squared[:, None] + squared[None, :] - 2 * embedding @ embedding.T
    neighbours = np.argsort(distance, axis=1)[:, :n_neighbors]
    return values[neighbours].mean(axis=1)


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

    Each cell's log-normalised expression is smoothed over its ``n_neighbors`` nearest cells (PCA
    space), genes are standardised, and a protein's activity is the mean over its coding genes
    (:func:`sxdiff.data.coding_genes`, or ``protein_genes``); a complex's activity is the mean over
    its measured subunits. Reliability in [0, 1]:

    - for a complex, the coherence of its subunits: the mean pairwise correlation of their smoothed
      mRNA across cells (clipped at 0) — subunits that rise and fall together indicate an active complex;
    - for a protein, how much of the coding gene's raw variation its neighbourhood shares: the
      correlation between raw and smoothed expression (clipped at 0).

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
        Neighbourhood size for smoothing (1 disables it).
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
    raw = logged[:, columns]
    smooth = _knn_smooth(logged, n_neighbors)[:, columns]
    mean, std = smooth.mean(axis=0), smooth.std(axis=0)
    z = (smooth - mean) / np.where(std > 0, std, 1.0)
    local = {g: i for i, g in enumerate(used)}
    activity, reliability = {}, {}
    for name, (members, kind) in features.items():
        idx = [local[g] for g in members]
        activity[name] = z[:, idx].mean(axis=1)
        if kind == "complex":
            corr = np.corrcoef(smooth[:, idx].T)
            pairs = corr[np.triu_indices(len(idx), 1)]
            reliability[name] = float(np.clip(np.nanmean(pairs), 0.0, 1.0)) if pairs.size else 0.0
        else:
            scores = [
                np.corrcoef(raw[:, i], smooth[:, i])[0, 1] if raw[:, i].std() > 0 and smooth[:, i].std() > 0 else 0.0
                for i in idx
            ]
            reliability[name] = float(np.clip(np.nanmean(scores), 0.0, 1.0))
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
