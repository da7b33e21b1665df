from importlib import resources

import numpy as np
import pandas as pd
import pytest

import sxdiff
from sxdiff.data import validate_perturbation_data

LOADERS = {
    "glioblastoma_panobinostat": (sxdiff.datasets.glioblastoma_panobinostat, (5000, 300), "counts", 2500),
    "l1000_kinase_inhibitors": (sxdiff.datasets.l1000_kinase_inhibitors, (377, 978), "normal", 26),
    "norman_crispra": (sxdiff.datasets.norman_crispra, (3375, 500), "log1p", 100),
    "mcfaline23_crispri": (sxdiff.datasets.mcfaline23_crispri, (2586, 500), "log1p", 300),
}


@pytest.mark.parametrize("name", list(LOADERS))
def test_bundled_dataset_follows_the_schema(name):
    loader, shape, scale, n_controls = LOADERS[name]
    adata = loader()
    assert adata.shape == shape
    info = adata.uns["sxdiff"]
    assert info["dataset"] == name
    assert info["license"]
    assert info["source"]
    for column in ("perturbation", "dose", "context", "is_control"):
        assert column in adata.obs
    assert adata.var_names.is_unique
    assert not adata.var_names.str.startswith("ENSG").any()
    found = validate_perturbation_data(
        adata,
        perturbation_key=info["perturbation_key"],
        control_value=info["control_value"],
        dose_key=info["dose_key"],
        context_key=info["context_key"],
    )
    assert found.expression_scale == scale == info["expression_scale"]
    assert int(found.is_control.sum()) == n_controls
    np.testing.assert_array_equal(found.is_control, adata.obs["is_control"].to_numpy())


def test_l1000_compounds_and_smiles():
    adata = sxdiff.datasets.l1000_kinase_inhibitors()
    treated = adata.obs[~adata.obs["is_control"]]
    assert treated["perturbation"].nunique() == 59
    with_smiles = treated.loc[treated["smiles"].notna(), "perturbation"].nunique()
    assert with_smiles == 51
    assert sorted(treated["dose"].unique()) == [0.04, 0.12, 0.37, 1.11, 3.33, 10.0]


def test_norman_combinations_with_both_singles():
    adata = sxdiff.datasets.norman_crispra()
    labels = set(adata.obs["perturbation"].astype(str))
    combos = {label for label in labels if "+" in label}
    assert len(combos) == 15
    assert len(labels - combos - {"control"}) == 18
    assert sum(all(m in labels for m in c.split("+")) for c in combos) == 5


def test_mcfaline23_knockdowns_in_three_cell_lines():
    adata = sxdiff.datasets.mcfaline23_crispri()
    obs = adata.obs
    assert adata.uns["sxdiff"]["expression_scale"] == "log1p"
    table = pd.crosstab(obs["perturbation"].astype(str), obs["context"].astype(str))
    assert list(table.columns) == ["A172", "T98G", "U87MG"]
    assert len(table) == 10  # 9 knock-downs + control, each measured in every line
    assert (table > 40).all().all()
    assert (table.loc["control"] == 100).all()
    assert set(obs.loc[~obs["is_control"], "perturbation_type"]) == {"CRISPRi"}
    assert set(obs["dose"].astype(str)) == {"1"}
    np.testing.assert_array_equal(obs["context"].astype(str), obs["cell_type"].astype(str))
    assert adata.X.min() >= 0
    assert adata.X.dtype == np.float32


def test_glioblastoma_panobinostat_effect_is_real():
    """Panobinostat (HDAC inhibitor) changes expression far more than patient-to-patient control noise."""
    adata = sxdiff.datasets.glioblastoma_panobinostat()
    X = adata.X.toarray()
    X = np.log1p(X / X.sum(axis=1, keepdims=True) * 1e4)
    treated = adata.obs["perturbation"].to_numpy() == "panobinostat"
    deltas = []
    for patient in sorted(adata.obs["context"].unique()):
        in_patient = adata.obs["context"].to_numpy() == patient
        deltas.append(X[in_patient & treated].mean(0) - X[in_patient & ~treated].mean(0))
    deltas = np.array(deltas)
    # the drug's effect is shared across patients: deltas of different patients correlate
    corr = np.corrcoef(deltas)[np.triu_indices(5, 1)]
    assert corr.min() > 0.15
    assert corr.mean() > 0.35


def test_bundled_data_is_small():
    folder = resources.files("sxdiff.datasets").joinpath("_data")
    total = sum(f.stat().st_size for f in __import__("pathlib").Path(str(folder)).glob("*.h5ad"))
    assert total < 15 * 1024 * 1024
