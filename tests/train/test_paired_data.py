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


def _paired(drug_index, drug_mask, train, batch_size=4):
    from sxdiff.data._control_matcher import ControlMatcher
    from sxdiff.train import PairedPerturbationData

    n = drug_index.shape[0]
    is_control = drug_mask.sum(axis=1) == 0
    return PairedPerturbationData(
        np.zeros((n, 3), dtype=np.float32),
        None,
        drug_index,
        np.ones(drug_index.shape, dtype=np.float32),
        drug_mask,
        ControlMatcher(is_control),
        np.asarray(train),
        np.empty(0, dtype=np.int64),
        batch_size=batch_size,
    )


def test_perturbations_in_lists_members_and_those_measured_alone():
    # cells: control, drug 2 alone, pair (2, 5), pair (7, 5) whose padding slot holds index 9
    index = np.array([[0, 0], [2, 0], [2, 5], [7, 5], [3, 9]])
    mask = np.array([[0, 0], [1, 0], [1, 1], [1, 1], [1, 0]])
    data = _paired(index, mask, train=[1, 2, 3])
    members, alone = data.perturbations_in(np.array([1, 2, 3]))
    assert members.tolist() == [2, 5, 7]
    assert alone.tolist() == [2]
    members, alone = data.perturbations_in(np.array([2, 4]))
    assert members.tolist() == [2, 3, 5]  # the padded 9 is not a member
    assert alone.tolist() == [3]


def test_stage_epochs_split_the_step_budget_by_each_stages_own_epoch_length():
    from sxdiff.train._budget import DEFAULT_STEPS, stage_epochs

    index = np.zeros((1000, 1), dtype=np.int64)
    mask = np.r_[np.zeros(200), np.ones(800)].astype(np.int64)[:, None]
    data = _paired(index, mask, train=np.arange(200, 1000), batch_size=100)  # 8 steps per epoch
    state_data = data.with_controls()  # 1,000 cells: 10 steps per epoch
    assert stage_epochs("all", None, None, None, data, state_data) == [
        ("state", round(0.6 * DEFAULT_STEPS / 10)),
        ("diffusion", round(0.4 * DEFAULT_STEPS / 8)),
    ]
    assert stage_epochs("all", None, None, 400, data, state_data) == [("state", 24), ("diffusion", 20)]
    assert stage_epochs("diffusion", None, None, 400, data, state_data) == [("diffusion", 50)]
    assert stage_epochs("all", 10, None, None, data, state_data) == [("state", 6), ("diffusion", 4)]
    assert stage_epochs("all", 10, 3, None, data, state_data) == [("state", 3), ("diffusion", 7)]
    assert stage_epochs("all", None, 5, 16, data, state_data) == [("state", 5), ("diffusion", 2)]  # at least 2
