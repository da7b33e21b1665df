"""Shared fixtures: tiny synthetic perturbation data and a check that objects stay unchanged."""

from __future__ import annotations

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one thread per worker for every OpenMP / BLAS / numba user, set before any of them loads: a library that
    # raises torch's OpenMP thread count later (Lightning does when OMP_NUM_THREADS is unset) makes two workers
    # run three or four spinning threads on two cores, and a 3-minute training took over 25 minutes
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # numba refuses a changed count
        os.environ.setdefault(variable, "1")
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_configure(config):
    """One torch thread per pytest-xdist worker: two workers on two cores must not oversubscribe them.

    Subnormal floats are flushed for the whole session, before any torch thread exists (the setting is per
    thread; StateXDiff flushes them while it trains, but a worker's earlier tests may have started threads
    without it, and on x86 CPUs every operation on a subnormal is ~100x slower).
    """
    import torch

    torch.set_flush_denormal(True)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


def pytest_runtest_setup(item):
    """Back to one torch thread before every test of a pytest-xdist worker (fixtures included).

    Something in the stack raises the OpenMP thread count of torch's pool during a session; a worker then runs two
    spinning threads next to the other worker, and a 3-minute training fixture took over 25 minutes.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The team's folder of real public data (read, never vendored); skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is not present")
    return SHARED_DATA


@pytest.fixture
def tiny_adata() -> ad.AnnData:
    """12 cells x 5 genes of counts: 2 contexts, controls, single drugs with doses and a combination."""
    rng = np.random.default_rng(0)
    obs = pd.DataFrame(
        {
            "drug": ["control", "control", "A", "A", "B", "A+B"] * 2,
            "dose": ["0", "0", "1", "10", "1", "1+0.5"] * 2,
            "cell_line": ["x"] * 6 + ["y"] * 6,
            "plate": ["p1", "p2"] * 6,
        },
        index=[f"cell{i}" for i in range(12)],
    )
    return ad.AnnData(rng.poisson(5, size=(12, 5)).astype(np.float32), obs=obs)


def assert_adata_unchanged(before: ad.AnnData, after: ad.AnnData) -> None:
    """Assert that two AnnData objects hold identical data, annotations and metadata."""

    def dense(m):
        return m.toarray() if sp.issparse(m) else np.asarray(m)

    np.testing.assert_array_equal(dense(before.X), dense(after.X))
    pd.testing.assert_frame_equal(before.obs, after.obs)
    pd.testing.assert_frame_equal(before.var, after.var)
    assert list(before.layers.keys()) == list(after.layers.keys())
    for key in before.layers:
        np.testing.assert_array_equal(dense(before.layers[key]), dense(after.layers[key]))
    assert list(before.obsm.keys()) == list(after.obsm.keys())
    assert sorted(before.uns.keys()) == sorted(after.uns.keys())
