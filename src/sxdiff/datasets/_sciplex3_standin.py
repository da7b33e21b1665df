"""A small generated stand-in for sci-Plex3: the same schema and shape of design, simulated counts.

Tutorial 06 and tests run the large-data workflow on it when the 2.5 GB sci-Plex3 file is not at hand.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from sxdiff.drugs._bundled_tables import read_bundled_file

from ._public import standardise_sciplex3

__all__ = ["sciplex3_standin"]

CELL_LINES = ("A549", "K562", "MCF7")
DOSES_NM = (10.0, 100.0, 1000.0, 10000.0)


def sciplex3_standin(
    n_compounds: int = 24,
    n_genes: int = 2000,
    n_cells_per_condition: int = 30,
    n_control_cells: int = 300,
    seed: int = 0,
) -> ad.AnnData:
    """Simulated counts in sci-Plex3's design and schema, for running its workflow without the download.

    Real sci-Plex3 compound names (with SMILES, from the bundled chemCPA table) at sci-Plex3's four doses
    (10 nM to 10 µM) in its three cell lines (A549, K562, MCF7), two replicates, controls labelled
    ``"control"``. The cells are written in the scPerturb schema and passed through
    :func:`~sxdiff.datasets.standardise_sciplex3`, so the result has exactly the columns and
    ``uns["sxdiff"]`` of :func:`~sxdiff.datasets.sciplex3` (delimiter ``"|"``), except ``dataset`` and
    ``source``, which say that the values are simulated.

    The values are not biology: each gene has a baseline per cell line (about 20 % non-zero counts, like
    2,000 highly variable genes); each compound's change is its pathway's signature (shared by compounds of
    the same pathway in the chemCPA table) plus its own, scaled by a Hill-type dose response
    ``d / (d + ec50)`` and by a cell-line response scale; counts are negative binomial.

    Parameters
    ----------
    n_compounds
        Compounds drawn from sci-Plex3's 187 with a SMILES in the bundled table (sorted by name after drawing).
    n_genes
        Genes (``gene_0``, ...).
    n_cells_per_condition
        Cells per (cell line, compound, dose).
    n_control_cells
        Control cells per cell line.
    seed
        Random seed.

    Returns
    -------
    AnnData with raw counts in ``X`` (CSR), ``obs`` columns ``perturbation``, ``dose`` (µM), ``dose_nM``,
    ``context``, ``batch``, ``is_control``, and ``uns["sxdiff"]`` as for sci-Plex3. The ground truth is in
    ``uns["synthetic_truth"]``: ``compounds``, their full-strength log-fold changes ``effects``
    (compounds x genes), ``ec50_nM``, and the ``contexts`` with their ``context_scale``.

    Examples
    --------
    >>> adata = sciplex3_standin(n_compounds=4, n_genes=50, n_cells_per_condition=5, n_control_cells=20)
    >>> adata.uns["sxdiff"]["delimiter"], sorted(adata.obs["context"].unique())
    ('|', ['A549', 'K562', 'MCF7'])
    >>> sorted(adata.obs["dose"].unique().tolist())
    [0.0, 0.01, 0.1, 1.0, 10.0]
    """
    rng = np.random.default_rng(seed)
    table = read_bundled_file("chemcpa_sciplex3_smiles.tsv").dropna(subset=["smiles"])
    table = table[~table["drug"].str.lower().isin(["control", "vehicle", "dmso"])].reset_index(drop=True)
    if not 1 <= n_compounds <= len(table):
        raise ValueError(
            f"n_compounds must be between 1 and {len(table)} (sci-Plex3's compounds with a SMILES), got {n_compounds}."
        )
    chosen = table.iloc[np.sort(rng.choice(len(table), size=n_compounds, replace=False))]
    pathways = sorted(chosen["pathway"].fillna("unknown").unique())

    base = rng.normal(-1.8, 1.0, size=n_genes)
    baselines = base + rng.normal(0.0, 0.4, size=(len(CELL_LINES), n_genes))
    scales = rng.uniform(0.6, 1.4, size=len(CELL_LINES))
    pathway_effect = {p: _signature(rng, n_genes, n_genes // 25, 1.0) for p in pathways}
    effects = {
        row.drug: pathway_effect[row.pathway if isinstance(row.pathway, str) else "unknown"]
        + _signature(rng, n_genes, n_genes // 50, 0.7)
        for row in chosen.itertuples()
    }
    ec50 = dict(zip(chosen["drug"], np.exp(rng.uniform(np.log(30.0), np.log(3000.0), size=n_compounds)), strict=True))

    blocks, rows = [], []
    for line, cell_line in enumerate(CELL_LINES):
        conditions = [("control", 0.0, n_control_cells)]
        conditions += [(drug, dose, n_cells_per_condition) for drug in chosen["drug"] for dose in DOSES_NM]
        for drug, dose, n in conditions:
            log_mean = baselines[line].copy()
            if drug != "control":
                log_mean += scales[line] * effects[drug] * dose / (dose + ec50[drug])
            size_factor = np.exp(rng.normal(0.0, 0.3, size=(n, 1)))
            mean = size_factor * np.exp(log_mean)[None, :]
            blocks.append(rng.poisson(rng.gamma(10.0, mean / 10.0)).astype(np.float32))
            replicate = rng.choice(["rep1", "rep2"], size=n)
            rows += [(drug, dose, cell_line, r) for r in replicate]
    obs = pd.DataFrame(rows, columns=["perturbation", "dose_value", "cell_line", "replicate"])
    obs.index = [f"cell_{i}" for i in range(len(obs))]
    adata = standardise_sciplex3(ad.AnnData(sp.csr_matrix(np.vstack(blocks)), obs=obs))
    adata.var_names = [f"gene_{g}" for g in range(n_genes)]
    adata.obs = adata.obs.drop(columns=["dose_value", "cell_line", "replicate"])
    adata.uns["sxdiff"]["dataset"] = "sciplex3_standin"
    adata.uns["sxdiff"]["source"] = f"sxdiff.datasets.synthetic.sciplex3_standin(seed={seed}): simulated counts"
    adata.uns["synthetic_truth"] = {
        "compounds": chosen["drug"].to_numpy(dtype=str),
        "effects": np.vstack([effects[d] for d in chosen["drug"]]),
        "ec50_nM": np.array([ec50[d] for d in chosen["drug"]]),
        "contexts": np.array(CELL_LINES),
        "context_scale": scales,
    }
    return adata


def _signature(rng: np.random.Generator, n_genes: int, n_affected: int, size: float) -> np.ndarray:
    """A sparse signed log-fold-change vector: ``n_affected`` genes moved by about ``size``."""
    effect = np.zeros(n_genes)
    genes = rng.choice(n_genes, size=max(n_affected, 1), replace=False)
    effect[genes] = rng.choice([-1.0, 1.0], size=len(genes)) * rng.uniform(0.5, 1.5, size=len(genes)) * size
    return effect
