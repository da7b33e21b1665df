"""Paired minibatches: the order in which cells are read."""

import numpy as np

from sxdiff.data._on_disk import contiguous_runs
from sxdiff.train._paired_data import _BlockPermutation


def test_block_permutation_is_a_seeded_permutation_of_nearby_runs():
    order = list(_BlockPermutation(1000, seed=3, block=16, window=8))
    assert sorted(order) == list(range(1000))
    assert order == list(_BlockPermutation(1000, seed=3, block=16, window=8))
    assert order != list(_BlockPermutation(1000, seed=4, block=16, window=8))
    # a minibatch of 64 touches at most one window (8 blocks of 16 consecutive cells): 8 runs, not 64
    for start in range(0, 1000 - 64, 128):
        batch = np.sort(order[start : start + 64])
        assert len(contiguous_runs(batch, max_gap=16)) <= 8
    assert np.corrcoef(np.arange(1000), order)[0, 1] < 0.2  # the whole order is still shuffled
