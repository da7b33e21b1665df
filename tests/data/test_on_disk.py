"""Reading cells from AnnData stores on disk (backed ``.h5ad``): rows read on demand, checks block by block."""

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

import sxdiff
from sxdiff.data._on_disk import RowReader, contiguous_runs, is_on_disk
from sxdiff.datasets.synthetic import perturbation_data

KEYS = {"perturbation_key": "perturbation", "control_value": "control", "dose_key": "dose", "context_key": "context"}


@pytest.mark.parametrize("layout", ["csr", "dense"])
def test_row_reader_returns_rows_in_the_order_asked_from_disk(tmp_path, layout):
    matrix = sp.random(300, 7, density=0.3, format="csr", random_state=0, dtype=np.float32)
    data = ad.AnnData(matrix if layout == "csr" else matrix.toarray())
    data.write_h5ad(tmp_path / "m.h5ad")
    backed = ad.read_h5ad(tmp_path / "m.h5ad", backed="r")
    reader = RowReader(backed.X, max_gap=4)
    assert reader.on_disk
    assert is_on_disk(backed.X)
    assert not is_on_disk(matrix)
    rows = np.array([299, 5, 6, 5, 100, 0, 7, 150, 151, 152])  # unsorted, repeated, runs and gaps
    np.testing.assert_array_equal(reader[rows], matrix.toarray()[rows])
    np.testing.assert_array_equal(reader[10:20], matrix.toarray()[10:20])
    assert contiguous_runs(np.unique(rows), max_gap=4) == [(0, 8), (100, 101), (150, 153), (299, 300)]


def test_row_reader_reads_csc_in_memory_and_refuses_it_on_disk(tmp_path):
    matrix = sp.random(30, 4, density=0.5, format="csc", random_state=1, dtype=np.float32)
    np.testing.assert_array_equal(RowReader(matrix)[np.array([3, 0, 29])], matrix.toarray()[[3, 0, 29]])
    ad.AnnData(matrix).write_h5ad(tmp_path / "csc.h5ad")
    with pytest.raises(ValueError, match=r"stored by columns \(CSC\).*tocsr"):
        RowReader(ad.read_h5ad(tmp_path / "csc.h5ad", backed="r").X)


def test_row_reader_takes_masks_and_negative_rows_on_disk(tmp_path):
    matrix = sp.random(20, 3, density=0.5, format="csr", random_state=2, dtype=np.float32)
    ad.AnnData(matrix).write_h5ad(tmp_path / "m.h5ad")
    reader = RowReader(ad.read_h5ad(tmp_path / "m.h5ad", backed="r").X)
    mask = np.zeros(20, dtype=bool)
    mask[[2, 7]] = True
    np.testing.assert_array_equal(reader[mask], matrix.toarray()[mask])
    np.testing.assert_array_equal(reader[np.array([-1, 0])], matrix.toarray()[[19, 0]])


def test_validation_reads_a_backed_store_in_blocks(tmp_path):
    adata = perturbation_data(n_genes=20, n_contexts=2, n_drugs=2, n_cells_per_condition=10, n_control_cells=30)
    adata.write_h5ad(tmp_path / "cells.h5ad")
    bad = adata.copy()
    bad.X = bad.X.toarray()
    bad.X[7, 3] = np.nan
    bad.write_h5ad(tmp_path / "bad.h5ad")
    with pytest.raises(ValueError, match=r"adata.X contains 1 NaN"):
        sxdiff.data.validate_perturbation_data(ad.read_h5ad(tmp_path / "bad.h5ad", backed="r"), **KEYS)
    found = sxdiff.data.validate_perturbation_data(ad.read_h5ad(tmp_path / "cells.h5ad", backed="r"), **KEYS)
    assert found.expression_scale == "counts"
