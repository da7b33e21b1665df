import numpy as np
import pytest

from sxdiff.data import ControlMatcher


def test_controls_come_from_same_context_and_batch():
    is_control = np.array([True, True, True, True, False, False, False, False])
    contexts = np.array(["a", "a", "b", "b", "a", "a", "b", "b"])
    batches = np.array(["1", "2", "1", "2", "1", "2", "1", "2"])
    matcher = ControlMatcher(is_control, contexts, batches)
    drawn = matcher.sample(np.array([4, 5, 6, 7]), n_per_cell=20, rng=np.random.default_rng(0))
    assert drawn.shape == (4, 20)
    np.testing.assert_array_equal(drawn[:, 0], [0, 1, 2, 3])
    assert (drawn == drawn[:, :1]).all()  # one control per (context, batch) here


def test_falls_back_to_context_when_batch_has_no_controls():
    is_control = np.array([True, True, False])
    matcher = ControlMatcher(is_control, ["a", "a", "a"], ["1", "1", "2"])
    drawn = matcher.sample(np.array([2]), n_per_cell=50, rng=np.random.default_rng(1))
    assert set(drawn.ravel()) == {0, 1}


def test_draws_cover_the_pool_and_are_seeded():
    is_control = np.array([True] * 10 + [False] * 5)
    matcher = ControlMatcher(is_control)
    a = matcher.sample(np.arange(10, 15), n_per_cell=100, rng=np.random.default_rng(3))
    b = matcher.sample(np.arange(10, 15), n_per_cell=100, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert set(a.ravel()) == set(range(10))


def test_context_without_controls_is_named():
    matcher = ControlMatcher(np.array([True, False]), ["a", "b"])
    with pytest.raises(KeyError, match="Context 'b' has no control cells"):
        matcher.sample(np.array([1]))
    np.testing.assert_array_equal(matcher.controls_of("a"), [0])
    assert matcher.context_names == ["a"]
