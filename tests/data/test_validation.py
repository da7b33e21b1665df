import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from sxdiff.data import validate_perturbation_data
from tests.conftest import assert_adata_unchanged

KEYS = {"perturbation_key": "drug", "control_value": "control", "dose_key": "dose", "context_key": "cell_line"}


def test_valid_data_is_parsed(tiny_adata):
    found = validate_perturbation_data(tiny_adata, **KEYS, batch_key="plate")
    assert found.n_cells == 12
    assert found.perturbations == ["A", "B"]
    assert int(found.is_control.sum()) == 4
    assert found.perturbation_sets[5] == ("A", "B")
    assert found.doses[5] == (1.0, 0.5)
    assert found.expression_scale == "counts"
    assert set(found.contexts) == {"x", "y"}


def test_validation_reads_obs_of_a_mudata_modality(tiny_adata):
    mdata = md.MuData({"rna": tiny_adata.copy()})
    found = validate_perturbation_data(mdata, **KEYS)
    assert found.perturbation_sets == validate_perturbation_data(tiny_adata, **KEYS).perturbation_sets


def test_expression_scale_detection(tiny_adata):
    logged = tiny_adata.copy()
    logged.X[0, 0] = 0.0
    logged.X = np.log1p(logged.X)
    assert validate_perturbation_data(logged, **KEYS).expression_scale == "log1p"
    logged.X = logged.X - 5.0
    assert validate_perturbation_data(logged, **KEYS).expression_scale == "normal"


def _bad_cases():
    def unknown_control(a):
        return a, {"control_value": "DMSO"}, "Control value 'DMSO' does not occur in column 'drug'"

    def trailing_space_control(a):
        a.obs["drug"] = a.obs["drug"].replace({"control": "control "})
        return a, {}, "differ only by surrounding spaces"

    def context_without_controls(a):
        a.obs.loc[a.obs["cell_line"] == "y", "drug"] = "A"
        a.obs.loc[a.obs["cell_line"] == "y", "dose"] = "1"
        return a, {}, r"Context\(s\) \['y'\] in column 'cell_line' have perturbed cells but no control"

    def nan_values(a):
        a.X[3, 2] = np.nan
        return a, {}, "contains 1 NaN"

    def inf_values(a):
        a.X[3, 2] = np.inf
        return a, {}, "1 infinite"

    def negative_counts(a):
        a.X[0, 0] = -2.0
        return a, {"expression_scale": "counts"}, "declared as counts but has 1 negative"

    def non_integer_counts(a):
        a.X[0, 0] = 0.5
        return a, {"expression_scale": "counts"}, "declared as counts but holds non-integer"

    def dose_not_number(a):
        a.obs.loc["cell2", "dose"] = "high"
        return a, {}, r"Column 'dose' has values that are not numbers: \['high'\]"

    def dose_length_mismatch(a):
        a.obs.loc["cell5", "dose"] = "1+2+3"
        return a, {}, "number of doses does not match"

    def empty(a):
        return a[:0].copy(), {}, r"The data is empty \(0 cells"

    def missing_column(a):
        return a, {"context_key": "cell_type"}, "Column 'cell_type' is not in `obs`"

    def missing_layer(a):
        return a, {"layer": "counts"}, "Layer 'counts' is not in `adata.layers`"

    def duplicated_names(a):
        a.obs_names = ["same"] * a.n_obs
        return a, {}, "`obs_names` are not unique"

    return [
        unknown_control,
        trailing_space_control,
        context_without_controls,
        nan_values,
        inf_values,
        negative_counts,
        non_integer_counts,
        dose_not_number,
        dose_length_mismatch,
        empty,
        missing_column,
        missing_layer,
        duplicated_names,
    ]


@pytest.mark.parametrize("make_case", _bad_cases(), ids=lambda f: f.__name__)
def test_bad_input_is_refused_clearly_and_leaves_data_unchanged(tiny_adata, make_case):
    adata, overrides, message = make_case(tiny_adata)
    before = adata.copy()
    with pytest.raises((ValueError, KeyError), match=message):
        validate_perturbation_data(adata, **{**KEYS, **overrides})
    assert_adata_unchanged(before, adata)


def test_sparse_nan_is_found(tiny_adata):
    tiny_adata.X = sp.csr_matrix(tiny_adata.X)
    tiny_adata.X.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        validate_perturbation_data(tiny_adata, **KEYS)


def test_missing_dose_needs_explicit_default(tiny_adata):
    tiny_adata.obs["dose"] = tiny_adata.obs["dose"].replace({"10": np.nan})
    with pytest.raises(ValueError, match=r"default_dose=1\.0"):
        validate_perturbation_data(tiny_adata, **KEYS)
    found = validate_perturbation_data(tiny_adata, **KEYS, default_dose=1.0)
    assert found.doses[3] == (1.0,)


def test_batch_without_controls_falls_back_with_warning(tiny_adata, caplog):
    tiny_adata.obs["plate"] = ["p1", "p1", "p2", "p2", "p2", "p2"] * 2
    found = validate_perturbation_data(tiny_adata, **KEYS, batch_key="plate")
    assert "no control cells" in caplog.text
    assert found.batches is not None


def test_categorical_and_string_columns_agree(tiny_adata):
    categorical = tiny_adata.copy()
    for key in ("drug", "dose", "cell_line"):
        categorical.obs[key] = pd.Categorical(categorical.obs[key])
    a = validate_perturbation_data(tiny_adata, **KEYS)
    b = validate_perturbation_data(categorical, **KEYS)
    assert a.perturbation_sets == b.perturbation_sets
    assert a.doses == b.doses


def test_numeric_dose_column(tiny_adata):
    tiny_adata.obs["dose_num"] = [0.0, 0.0, 1.0, 10.0, 1.0, 2.0] * 2
    found = validate_perturbation_data(tiny_adata, **{**KEYS, "dose_key": "dose_num"})
    assert found.doses[5] == (2.0, 2.0)


def test_empty_anndata_has_no_genes():
    adata = ad.AnnData(np.zeros((3, 0)), obs=pd.DataFrame({"drug": ["control"] * 3}, index=list("abc")))
    with pytest.raises(ValueError, match="empty"):
        validate_perturbation_data(adata, perturbation_key="drug", control_value="control")
