import numpy as np
import pytest

import sxdiff
from sxdiff.datasets.synthetic import perturbation_data
from tests.conftest import assert_adata_unchanged

KEYS = {"perturbation_key": "perturbation", "control_value": "control", "context_key": "context", "dose_key": "dose"}


@pytest.fixture(scope="module")
def synthetic():
    return perturbation_data(
        n_genes=20, n_contexts=3, n_drugs=6, n_combinations=3, n_cells_per_condition=5, n_control_cells=10, seed=1
    )


def _split(adata, kind, holdout=None, **kwargs):
    out = sxdiff.pp.ood_split(adata, kind, holdout, **{**KEYS, **kwargs}, copy=True)
    return out.obs["sxdiff_split"].astype(str).to_numpy(), out


def _members(adata):
    return [set() if p == "control" else set(p.split("+")) for p in adata.obs["perturbation"].astype(str)]


def test_random_split_fractions_and_controls_stay_in_training(synthetic):
    split, out = _split(synthetic, "random", test_fraction=0.25, validation_fraction=0.1)
    perturbed = ~synthetic.obs["is_control"].to_numpy()
    assert (split[~perturbed] == "train").all()
    assert np.isclose((split[perturbed] == "test").mean(), 0.25, atol=0.01)
    assert list(out.obs["sxdiff_split"].cat.categories) == ["train", "validation", "test"]
    assert out.uns["sxdiff_split"]["kind"] == "random"


def test_unseen_drug_never_in_training_at_any_dose_or_combination(synthetic):
    split, _ = _split(synthetic, "unseen_drug", ["drug_1", "drug_4"])
    members = _members(synthetic)
    for cell_members, label in zip(members, split, strict=True):
        if cell_members & {"drug_1", "drug_4"}:
            assert label == "test"
        else:
            assert label != "test"
    training_drugs = set().union(*(m for m, s in zip(members, split, strict=True) if s != "test"))
    assert not training_drugs & {"drug_1", "drug_4"}


def test_unseen_drug_random_holdout_is_deterministic(synthetic):
    a, out_a = _split(synthetic, "unseen_drug", seed=7)
    b, out_b = _split(synthetic, "unseen_drug", seed=7)
    c, out_c = _split(synthetic, "unseen_drug", seed=8)
    np.testing.assert_array_equal(a, b)
    assert out_a.uns["sxdiff_split"]["holdout"] == out_b.uns["sxdiff_split"]["holdout"]
    assert not np.array_equal(a, c) or out_a.uns["sxdiff_split"]["holdout"] != out_c.uns["sxdiff_split"]["holdout"]


def test_unseen_context_keeps_its_controls_as_sources(synthetic):
    split, _ = _split(synthetic, "unseen_context", ["context_2"])
    context = synthetic.obs["context"].astype(str).to_numpy()
    control = synthetic.obs["is_control"].to_numpy()
    assert (split[(context == "context_2") & ~control] == "test").all()
    assert (split[(context == "context_2") & control] == "train").all()
    assert not ((split == "test") & (context != "context_2")).any()
    assert not ((split != "test") & (context == "context_2") & ~control).any()


def test_unseen_combination_members_all_in_training(synthetic):
    combos = list(synthetic.uns["synthetic_truth"]["combinations"])
    held = combos[0]
    reversed_label = "+".join(reversed(held.split("+")))
    split, _ = _split(synthetic, "unseen_combination", [reversed_label])
    labels = synthetic.obs["perturbation"].astype(str).to_numpy()
    assert (split[labels == held] == "test").all()
    assert not ((split == "test") & (labels != held)).any()
    training = set().union(*(m for m, s in zip(_members(synthetic), split, strict=True) if s != "test"))
    assert set(held.split("+")) <= training


def test_unseen_combination_default_picks_combinations_with_measured_singles(synthetic):
    split, out = _split(synthetic, "unseen_combination", test_fraction=0.5)
    held = out.uns["sxdiff_split"]["holdout"]
    assert all("+" in h for h in held)
    labels = synthetic.obs["perturbation"].astype(str).to_numpy()
    assert set(labels[split == "test"]) == set(held)


def test_unseen_dose_holds_out_dose_levels(synthetic):
    split, _ = _split(synthetic, "unseen_dose", [10.0])
    doses = synthetic.obs["dose"].astype(str).to_numpy()
    assert (split[doses == "10.0"] == "test").all()
    assert not ((split == "test") & (doses != "10.0")).any()


def test_split_written_in_place_returns_none(synthetic):
    adata = synthetic.copy()
    assert sxdiff.pp.ood_split(adata, "random", key_added="my_split", **KEYS) is None
    assert "my_split" in adata.obs


@pytest.mark.parametrize(
    ("kind", "holdout", "extra", "message"),
    [
        ("unseen_drug", ["drug_99"], {}, r"Holdout drug\(s\) \['drug_99'\] do not occur"),
        ("unseen_context", ["context_9"], {}, r"Holdout context\(s\) \['context_9'\] do not occur in column 'context'"),
        ("unseen_combination", ["drug_0+drug_99"], {}, "do not occur"),
        ("unseen_combination", ["drug_0"], {}, "are not combinations"),
        ("unseen_dose", [3.3], {}, r"Holdout dose\(s\) \[3.3\] do not occur"),
        ("unseen_drug", "drug_1", {}, "not a string"),
        ("unseen_context", ["context_1"], {"context_key": None}, "needs `context_key`"),
        ("unseen_dose", [1.0], {"dose_key": None}, "needs `dose_key`"),
        ("sideways", None, {}, "Unknown split kind"),
        ("unseen_drug", [], {}, "`holdout` is empty"),
    ],
)
def test_bad_holdouts_are_named_and_data_unchanged(synthetic, kind, holdout, extra, message):
    adata = synthetic.copy()
    before = adata.copy()
    with pytest.raises((ValueError, TypeError), match=message):
        sxdiff.pp.ood_split(adata, kind, holdout, **{**KEYS, **extra})
    assert_adata_unchanged(before, adata)


def test_combination_whose_member_is_unseen_is_refused(tiny_adata):
    # "B" occurs only alone and in "A+B"; holding out both B and A+B via unseen_combination must fail
    tiny_adata.obs["drug"] = tiny_adata.obs["drug"].replace({"B": "C"})
    with pytest.raises(ValueError, match=r"Member\(s\) \['B'\]"):
        sxdiff.pp.ood_split(tiny_adata, "unseen_combination", ["A+B"], perturbation_key="drug")


def test_empty_anndata_is_refused(synthetic):
    with pytest.raises(ValueError, match="empty"):
        sxdiff.pp.ood_split(synthetic[:0].copy(), "random", **KEYS)


def test_glioblastoma_unseen_patient_counts():
    adata = sxdiff.datasets.glioblastoma_panobinostat()
    sxdiff.pp.ood_split(adata, "unseen_context", ["PW034"], context_key="context", validation_fraction=0.0)
    counts = adata.obs["sxdiff_split"].value_counts().to_dict()
    assert counts == {"train": 4500, "test": 500, "validation": 0}
