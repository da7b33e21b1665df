"""Property-based bad-input suite: any mix of malformations gives a documented error naming the problem,
and the user's AnnData is unchanged after any failure (issue: reliability and security)."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sxdiff
from sxdiff.datasets.synthetic import perturbation_data
from tests.conftest import assert_adata_unchanged

KEYS = {"perturbation_key": "perturbation", "control_value": "control", "dose_key": "dose", "context_key": "context"}
ERRORS = (ValueError, KeyError, TypeError)


def _base():
    adata = perturbation_data(n_genes=12, n_contexts=2, n_drugs=3, n_cells_per_condition=3, n_control_cells=6, seed=0)
    adata.obs["dose"] = adata.obs["dose"].astype(str)
    return adata


def _set_obs(adata, column, values):
    adata.obs[column] = values


def _drop_perturbation(a):
    del a.obs["perturbation"]


def _words_as_doses(a):
    _set_obs(a, "dose", np.where(a.obs["is_control"], "0", "high"))


def _nan_expression(a):
    a.X = a.X.astype(np.float32)
    a.X[1, 2] = np.nan


def _inf_expression(a):
    a.X = a.X.astype(np.float32)
    a.X[0, 0] = np.inf


def _duplicated_obs_names(a):
    names = a.obs_names.to_numpy().copy()
    names[1] = names[0]
    a.obs_names = names


def _control_with_trailing_space(a):
    if "perturbation" not in a.obs:
        return
    _set_obs(a, "perturbation", a.obs["perturbation"].astype(str).replace("control", "control "))


def _context_without_controls(a):
    labels = a.obs["context"].astype(str).to_numpy().copy()
    perturbed = np.flatnonzero(~a.obs["is_control"].to_numpy())
    labels[perturbed[:2]] = "orphan"
    _set_obs(a, "context", labels)


def _negative_counts(a):
    a.X = a.X.astype(np.int64)
    a.X[0, 1] = -3


def _dose_length_mismatch(a):
    doses = a.obs["dose"].astype(str).to_numpy().copy()
    doses[np.flatnonzero(~a.obs["is_control"].to_numpy())[0]] = "1+2+3"
    _set_obs(a, "dose", doses)


def _missing_dose(a):
    doses = a.obs["dose"].astype(object).to_numpy().copy()
    doses[np.flatnonzero(~a.obs["is_control"].to_numpy())[0]] = None
    _set_obs(a, "dose", doses)


# benign variations: must be accepted
def _unused_category(a):
    _set_obs(a, "perturbation", a.obs["perturbation"].astype("category").cat.add_categories(["never_used"]))


def _sparse_expression(a):
    a.X = sp.csr_matrix(a.X)


def _strings_not_categories(a):
    for column in ("perturbation", "context"):
        _set_obs(a, column, a.obs[column].astype(str).to_numpy())


MALFORMED = {
    _drop_perturbation: ("perturbation",),
    _words_as_doses: ("dose",),
    _nan_expression: ("nan",),
    _inf_expression: ("inf",),
    _duplicated_obs_names: ("not unique", "duplicate"),
    _control_with_trailing_space: ("control",),
    _context_without_controls: ("orphan",),
    _negative_counts: ("negative",),
    _dose_length_mismatch: ("1+2+3", "dose"),
    _missing_dose: ("dose",),
}
BENIGN = [_unused_category, _sparse_expression, _strings_not_categories]


def _call(target, adata):
    if target == "setup_anndata":
        sxdiff.model.StateXDiff.setup_anndata(adata, **KEYS)
    elif target == "ood_split":
        sxdiff.pp.ood_split(adata, "unseen_drug", ["drug_0"], **KEYS)
    elif target == "drug_features":
        sxdiff.pp.drug_features(
            adata, drug_key="perturbation", control_value="control", allow_structure_free=True, use_bundled_tables=False
        )


@pytest.mark.parametrize("target", ["setup_anndata", "ood_split", "drug_features"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    malformed=st.lists(st.sampled_from(list(MALFORMED)), max_size=2, unique=True),
    benign=st.lists(st.sampled_from(BENIGN), max_size=2, unique=True),
)
def test_malformed_input_fails_clearly_and_changes_nothing(target, malformed, benign):
    adata = _base()
    if target == "setup_anndata":  # its prerequisite, on the clean data
        _call("drug_features", adata)
    for change in [*benign, *malformed]:
        change(adata)
    before = adata.copy()
    failure = None
    try:
        _call(target, adata)
    except ERRORS as error:
        failure = error
    if failure is not None:
        fragments = [f for change in malformed for f in MALFORMED[change]]
        assert malformed, f"benign input {[b.__name__ for b in benign]} was refused: {failure}"
        assert any(f.lower() in str(failure).lower() for f in fragments), f"{failure!r} names none of {fragments}"
        assert_adata_unchanged(before, adata)
        return
    # accepted: only malformations this entry point does not read may be present
    ignored = {
        "drug_features": {
            _words_as_doses,
            _nan_expression,
            _inf_expression,
            _negative_counts,
            _context_without_controls,
            _dose_length_mismatch,
            _missing_dose,
            _duplicated_obs_names,
        },
        "ood_split": {
            _nan_expression,
            _inf_expression,
            _negative_counts,
            _duplicated_obs_names,
            _context_without_controls,
        },
    }.get(target, set())
    assert set(malformed) <= ignored, f"{target} accepted {[m.__name__ for m in malformed]}"


def test_evaluate_refuses_non_finite_predictions_and_mismatched_genes():
    adata = _base()
    truth = adata[~adata.obs["is_control"].to_numpy()].copy()
    controls = adata[adata.obs["is_control"].to_numpy()].copy()
    bad = truth.copy()
    bad.X = bad.X.astype(np.float32)
    bad.X[0, 0] = np.nan
    before = bad.copy()
    with pytest.raises(ValueError, match="NaN"):
        sxdiff.metrics.evaluate(bad, truth, controls, dose_key="dose", context_key="context")
    assert_adata_unchanged(before, bad)
    shuffled = truth[:, truth.var_names[::-1]].copy()
    with pytest.raises(ValueError, match="genes"):
        sxdiff.metrics.evaluate(shuffled, truth, controls, dose_key="dose", context_key="context")


def test_predict_refuses_genes_in_another_order_and_accepts_sparse_or_categorical(small_model, tmp_path):
    adata, model = small_model
    sources = adata[adata.obs["is_control"].to_numpy()].copy()
    conditions = pd.DataFrame({"perturbation": ["drug_1"], "dose": ["1.0"]})
    reordered = sources[:, sources.var_names[::-1]].copy()
    before = reordered.copy()
    with pytest.raises(ValueError, match="same genes in another order"):
        model.predict(reordered, conditions, n_steps=2, seed=0)
    assert_adata_unchanged(before, reordered)
    dense = model.predict(sources, conditions, n_steps=2, seed=0)
    sparse = sources.copy()
    sparse.X = sp.csr_matrix(sparse.X)
    np.testing.assert_allclose(model.predict(sparse, conditions, n_steps=2, seed=0).X, dense.X, rtol=1e-6)
    categorical = conditions.astype("category")
    np.testing.assert_allclose(model.predict(sources, categorical, n_steps=2, seed=0).X, dense.X, rtol=1e-6)
    on_disk = model.predict(sources, conditions, n_steps=2, seed=0, out_path=tmp_path / "pred.h5ad")
    assert on_disk.isbacked
    np.testing.assert_allclose(np.asarray(on_disk.X[:]), dense.X, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(on_disk.obsm["X_sxdiff"]), dense.obsm["X_sxdiff"], rtol=1e-6)
    assert list(on_disk.obs["source_cell"]) == list(dense.obs["source_cell"])
    with pytest.raises(FileExistsError):
        model.predict(sources, conditions, n_steps=2, seed=0, out_path=tmp_path / "pred.h5ad")


# ------------------------------------------------------------------ predict and evaluate, property-based
@pytest.fixture(scope="module")
def small_model():
    import torch

    adata = _base()
    sxdiff.pp.drug_features(adata, drug_key="perturbation", allow_structure_free=True, use_bundled_tables=False)
    sxdiff.model.StateXDiff.setup_anndata(adata, **KEYS)
    torch.manual_seed(0)
    model = sxdiff.model.StateXDiff(adata, n_latent=4, n_hidden=16, d_model=16, n_blocks=1, n_heads=2, n_chunks=2)
    model.train(max_epochs=2, batch_size=32, enable_progress_bar=False)
    return adata, model


def _sources_nan(s, c):
    s.X = s.X.toarray().astype(np.float32) if sp.issparse(s.X) else s.X.astype(np.float32)
    s.X[0, 0] = np.nan
    return c


def _sources_reordered(s, c):
    s._inplace_subset_var(s.var_names[::-1])
    return c


def _sources_not_controls(s, c):
    s.obs["perturbation"] = "drug_0"
    return c


def _conditions_missing_dose(s, c):
    return c.drop(columns=["dose"])


def _conditions_word_dose(s, c):
    return c.assign(dose=["lots"] * len(c))


def _conditions_empty_label(s, c):
    return c.assign(perturbation=[""] * len(c))


def _conditions_wrong_combination_doses(s, c):
    return pd.DataFrame({"perturbation": ["drug_0+drug_1"], "dose": ["1.0+2.0+3.0"]})


PREDICT_MALFORMED = {
    _sources_nan: ("nan",),
    _sources_reordered: ("genes",),
    _sources_not_controls: ("non-control",),
    _conditions_missing_dose: ("dose",),
    _conditions_word_dose: ("lots", "dose"),
    _conditions_empty_label: ("perturbation", "empty", "''"),
    _conditions_wrong_combination_doses: ("1.0+2.0+3.0", "dose"),
}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(malformed=st.lists(st.sampled_from(list(PREDICT_MALFORMED)), min_size=1, max_size=2, unique=True))
def test_predict_with_malformed_sources_or_conditions_fails_clearly(small_model, malformed):
    adata, model = small_model
    sources = adata[adata.obs["is_control"].to_numpy()][:6].copy()
    conditions = pd.DataFrame({"perturbation": ["drug_1"], "dose": ["1.0"]})
    for change in malformed:
        conditions = change(sources, conditions)
    before = sources.copy()
    with pytest.raises(ERRORS) as info:
        model.predict(sources, conditions, n_steps=2, seed=0)
    fragments = [f for change in malformed for f in PREDICT_MALFORMED[change]]
    assert any(f.lower() in str(info.value).lower() for f in fragments), f"{info.value!r} names none of {fragments}"
    assert_adata_unchanged(before, sources)


@settings(max_examples=25, deadline=None)
@given(
    nan_in=st.sampled_from(["none", "pred", "true", "control"]),
    reorder=st.booleans(),
    drop_column=st.sampled_from([None, "perturbation", "context"]),
)
def test_evaluate_with_malformed_inputs_fails_clearly_and_changes_nothing(nan_in, reorder, drop_column):
    adata = _base()
    adata.X = np.log1p(np.asarray(adata.X.toarray() if sp.issparse(adata.X) else adata.X, dtype=np.float32))
    objects = {
        "true": adata[~adata.obs["is_control"].to_numpy()].copy(),
        "control": adata[adata.obs["is_control"].to_numpy()].copy(),
    }
    objects["pred"] = objects["true"].copy()
    if nan_in != "none":
        objects[nan_in].X[0, 0] = np.nan
    if reorder:
        objects["pred"] = objects["pred"][:, objects["pred"].var_names[::-1]].copy()
    if drop_column:
        del objects["pred"].obs[drop_column]
    before = {k: v.copy() for k, v in objects.items()}
    malformed = nan_in != "none" or reorder or drop_column is not None
    failure = None
    try:
        sxdiff.metrics.evaluate(
            objects["pred"], objects["true"], objects["control"], dose_key="dose", context_key="context"
        )
    except ERRORS as error:
        failure = error
    for key in objects:
        assert_adata_unchanged(before[key], objects[key])
    if not malformed:
        assert failure is None
        return
    assert failure is not None
    expected = (
        (["genes"] if reorder else []) + (["nan"] if nan_in != "none" else []) + ([drop_column] if drop_column else [])
    )
    assert any(f in str(failure).lower() for f in expected), f"{failure!r} names none of {expected}"
