"""Synthetic perturbation counts written straight to a backed ``.h5ad`` (CSR), block by block.

Used by ``benchmarks/throughput_on_disk.py``. The file never exists in memory as a whole: each block of
cells is simulated, converted to CSR and appended to the ``X`` datasets, so 1M cells x 2,000 genes can be
written on a machine with little memory.
"""

from __future__ import annotations

import time
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

N_CONTEXTS = 4
N_DRUGS = 40
CONTROL_FRACTION = 0.1
N_TARGETS = 20
CHUNK = 1 << 14  # values per HDF5 chunk (64 KiB): a random cell reads one or two chunks, not megabytes


def drug_table(n_genes: int, seed: int = 0) -> pd.DataFrame:
    """Targets and actions of the simulated drugs (for ``sxdiff.pp.drug_features``)."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(N_DRUGS):
        targets = rng.choice(n_genes, N_TARGETS, replace=False)
        rows.append(
            {
                "drug": f"drug_{d}",
                "targets": "|".join(f"gene_{t}" for t in targets),
                "action": "|".join(rng.choice(["INHIBITOR", "AGONIST"], N_TARGETS)),
            }
        )
    return pd.DataFrame(rows)


def write_counts(path: str | Path, n_cells: int, n_genes: int = 2000, block: int = 50_000, seed: int = 0) -> Path:
    """Write ``n_cells`` x ``n_genes`` negative-binomial counts with perturbation annotations to ``path``.

    Cells are in random order of context and condition (as in a pooled screen); about 10 % are controls.
    The mean count is about 0.3 per gene (``X`` is about 20 % non-zero, like 2,000 highly variable genes).
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    table = drug_table(n_genes, seed)
    base = rng.normal(-1.8, 1.0, size=(N_CONTEXTS, n_genes))
    effects = np.zeros((N_DRUGS, n_genes))
    for d, row in table.iterrows():
        genes = [int(g.split("_")[1]) for g in row["targets"].split("|")]
        signs = np.where(np.array(row["action"].split("|")) == "INHIBITOR", -1.0, 1.0)
        effects[d, genes] = signs * rng.uniform(0.5, 1.5, N_TARGETS)
    is_control = rng.random(n_cells) < CONTROL_FRACTION
    drug = np.where(is_control, -1, rng.integers(0, N_DRUGS, n_cells))
    dose = np.where(is_control, 0.0, rng.choice([0.1, 1.0, 10.0], n_cells))
    context = rng.integers(0, N_CONTEXTS, n_cells)
    obs = pd.DataFrame(
        {
            "perturbation": pd.Categorical(np.where(is_control, "control", [f"drug_{d}" for d in drug])),
            "dose": dose,
            "context": pd.Categorical([f"context_{c}" for c in context]),
        },
        index=[f"cell_{i}" for i in range(n_cells)],
    )
    var = pd.DataFrame(index=[f"gene_{g}" for g in range(n_genes)])
    ad.AnnData(obs=obs, var=var).write_h5ad(path)  # obs, var, empty X; X is replaced below
    with h5py.File(path, "a") as f:
        if "X" in f:
            del f["X"]
        group = f.create_group("X")
        group.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": (n_cells, n_genes)})
        data = group.create_dataset("data", shape=(0,), maxshape=(None,), dtype=np.float32, chunks=(CHUNK,))
        indices = group.create_dataset("indices", shape=(0,), maxshape=(None,), dtype=np.int32, chunks=(CHUNK,))
        indptr = [np.zeros(1, dtype=np.int64)]
        for start in range(0, n_cells, block):
            stop = min(start + block, n_cells)
            strength = np.log10(dose[start:stop] * 10 + 1)[:, None] / 2  # 0.02, 0.5, 1.0
            log_mean = base[context[start:stop]] + np.where(
                is_control[start:stop, None], 0.0, effects[drug[start:stop]] * strength
            )
            size = rng.lognormal(0.0, 0.3, size=(stop - start, 1))
            mean = size * np.exp(log_mean)
            counts = rng.poisson(rng.gamma(10.0, mean / 10.0)).astype(np.float32)
            block_csr = sp.csr_matrix(counts)
            n_old = data.shape[0]
            data.resize((n_old + block_csr.nnz,))
            indices.resize((n_old + block_csr.nnz,))
            data[n_old:] = block_csr.data
            indices[n_old:] = block_csr.indices
            indptr.append(block_csr.indptr[1:].astype(np.int64) + n_old)
        indptr = np.concatenate(indptr)
        # int32 like scipy / anndata when nnz < 2**31: mixed index dtypes make scipy copy the matrix per indexing
        group.create_dataset("indptr", data=indptr.astype(np.int32 if indptr[-1] < 2**31 else np.int64))
    return path


def counts_file(data_dir: str | Path, n_cells: int) -> Path:
    """``data_dir/cells_<n_cells>.h5ad``, written by :func:`write_counts` unless it is there already (reused)."""
    path = Path(data_dir) / f"cells_{n_cells}.h5ad"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        write_counts(path, n_cells)
        print(f"wrote {path} in {time.perf_counter() - start:.0f} s", flush=True)
    return path
