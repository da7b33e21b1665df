"""Validation by context: the perturbed cells of one whole training context are held out."""

import numpy as np

from sxdiff.train._context_holdout import hold_out_context


def test_one_whole_context_validates_and_the_draw_is_seeded():
    contexts = np.repeat(np.array(["k562", "rpe1", "hepg2", "jurkat"], dtype=object), [30, 20, 10, 5])
    cells = np.arange(60, 65).tolist() + np.arange(0, 50).tolist()  # not every cell, out of order
    cells = np.asarray(cells)
    train, validation, held = hold_out_context(contexts, cells, seed=1)
    assert set(contexts[validation]) == {held}
    assert held not in set(contexts[train])
    assert sorted(np.concatenate([train, validation]).tolist()) == sorted(cells.tolist())
    assert (contexts == held)[cells].sum() == len(validation)  # all of its cells, and only them
    again = hold_out_context(contexts, cells, seed=1)
    assert again[2] == held
    assert np.array_equal(again[1], validation)
    drawn = {hold_out_context(contexts, cells, seed=s)[2] for s in range(20)}
    assert drawn == {"k562", "rpe1", "jurkat"}  # hepg2 has no cell among `cells`


def test_fewer_than_three_contexts_hold_nothing_out():
    contexts = np.array(["a"] * 10 + ["b"] * 10, dtype=object)
    assert hold_out_context(contexts, np.arange(20)) is None
    assert hold_out_context(contexts, np.arange(20), minimum=2) is not None
