import numpy as np
import pytest

from sxdiff.benchmark import translator_cross_validation, translator_summary
from sxdiff.benchmark._translator_cv import ridge_on_pcs, translator_calibration
from tests.model.test_protein_translator import _reference


def test_cross_validation_reports_translator_ridge_and_coding_gene_side_by_side():
    mdata = _reference(n_cells=200, n_genes=80, seed=3)
    table, per_fold = translator_cross_validation(
        mdata,
        n_folds=3,
        translator_kwargs={"n_genes": 60, "n_components": 10},
        train_kwargs={"predictor": "linear", "n_folds": 3},
        return_folds=True,
    )
    assert list(table["protein"]) == [str(p) for p in mdata["prot"].var_names]
    for column in ("translator_pearson", "ridge_pcs_pearson", "coding_gene_pearson", "reliability", "predictor"):
        assert column in table
    assert table.loc[table["protein"] == "IgG1", "isotype"].item()
    assert table.loc[table["protein"] == "IgG1", "reliability"].item() == 0.0
    p1 = table.set_index("protein").loc["P1"]
    assert p1["translator_pearson"] > 0.8
    assert p1["ridge_pcs_pearson"] > 0.8
    assert p1["predictor"] == "linear 3"
    assert abs(p1["reliability"] - p1["translator_pearson"]) < 0.1
    assert len(per_fold) == 3 * mdata["prot"].n_vars
    summary = translator_summary(table, per_fold)
    assert summary["n_proteins_all"] == 12
    assert summary["n_proteins"] == 0  # synthetic names code no gene: the coding-gene medians are empty
    assert 0 <= summary["wins_vs_ridge"] <= 12
    assert summary["calibration_pearson"] > 0.8
    assert np.isfinite(summary["calibration_pearson_folds"])


def test_ridge_on_pcs_recovers_a_linear_signal():
    rng = np.random.default_rng(0)
    programme = rng.normal(size=(300, 3))
    logged = np.log1p(rng.poisson(np.exp(programme @ rng.normal(size=(3, 50)) * 0.5 + 1)))
    protein = (programme @ [1.0, -0.5, 0.0])[:, None] + 0.2 * rng.normal(size=(300, 1))
    predicted = ridge_on_pcs(logged[:200], protein[:200], logged[200:], n_genes=40, n_components=5)
    assert np.corrcoef(predicted[:, 0], protein[200:, 0])[0, 1] > 0.8


def test_calibration_flags_over_statement():
    import pandas as pd

    table = pd.DataFrame(
        {
            "isotype": [False] * 4,
            "reliability": [0.9, 0.6, 0.3, 0.1],
            "translator_pearson": [0.7, 0.4, 0.1, -0.2],
        }
    )
    out = translator_calibration(table)
    assert out["calibration_pearson"] > 0.95
    assert out["mean_overstatement"] == pytest.approx((0.2 + 0.2 + 0.2 + 0.1) / 4)
