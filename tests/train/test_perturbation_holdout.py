"""Validation by perturbation: whole perturbations (and every combination containing one) are held out."""

import numpy as np

from sxdiff.train._perturbation_holdout import hold_out_perturbations


def _sets(n_drugs=30):
    singles = [(d, -1) for d in range(n_drugs)]
    pairs = [(d, (d + 1) % n_drugs) for d in range(0, n_drugs, 3)]
    rows = [s for s in singles + pairs for _ in range(5)]  # five cells each
    index = np.array([[a, max(b, 0)] for a, b in rows])
    mask = np.array([[True, b >= 0] for _, b in rows])
    return index, mask


def test_held_out_perturbations_never_train_even_inside_a_combination():
    index, mask = _sets()
    cells = np.arange(len(index))
    train, validation, held = hold_out_perturbations(index, mask, cells, fraction=0.1, seed=3)
    assert len(held) == 3
    assert len(np.intersect1d(train, validation)) == 0
    assert len(train) + len(validation) == len(cells)
    trained_members = np.unique(index[train][mask[train]])
    assert not np.isin(held, trained_members).any()
    validating = (np.isin(index[validation], held) & mask[validation]).any(axis=1)
    assert validating.all()  # every validation cell contains a held-out perturbation
    again = hold_out_perturbations(index, mask, cells, fraction=0.1, seed=3)
    assert np.array_equal(again[2], held)  # seeded


def test_too_few_perturbations_hold_out_nothing():
    index, mask = _sets(n_drugs=10)
    assert hold_out_perturbations(index, mask, np.arange(len(index))) is None
