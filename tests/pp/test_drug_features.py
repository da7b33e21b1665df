import sys
import types

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import sxdiff
from sxdiff.drugs import DrugFeatures, DrugTable
from tests.conftest import assert_adata_unchanged


@pytest.fixture(scope="module")
def l1000():
    return sxdiff.datasets.l1000_kinase_inhibitors()


def test_glioblastoma_panobinostat_features(caplog):
    import logging

    adata = sxdiff.datasets.glioblastoma_panobinostat()
    # at_level also undoes a level another test set on this logger (the CLI demo test silences it)
    with caplog.at_level(logging.WARNING, logger="sxdiff.drugs._features"):
        sxdiff.pp.drug_features(adata, drug_key="perturbation")
    features = DrugFeatures.from_dict(adata.uns["sxdiff_drugs"])
    assert features.names == ["panobinostat"]
    assert features.has_structure.all()
    assert features.has_targets.all()
    columns = features.genes + features.extra_genes
    hdacs = [i for i, g in enumerate(columns) if g.startswith("HDAC")]
    assert len(hdacs) >= 5
    assert (features.template[0, hdacs] == -1).all()
    assert "target genes are not in the expression matrix" in caplog.text
    assert adata.uns["sxdiff_drugs"]["structure"].shape == (1, features.featurizer.n_features)
    assert all(k not in adata.obsm for k in ("sxdiff_drugs",))  # nothing per cell


def test_l1000_compounds_with_smiles_are_featurised_and_the_rest_refused_or_structure_free(l1000):
    before = l1000.copy()
    with pytest.raises(ValueError, match=r"8 perturbation\(s\) have neither SMILES nor targets: \['BRD-A18328003'"):
        sxdiff.pp.drug_features(l1000, smiles_key="smiles")
    assert_adata_unchanged(before, l1000)
    out = sxdiff.pp.drug_features(l1000, smiles_key="smiles", allow_structure_free=True, copy=True)
    assert "sxdiff_drugs" not in l1000.uns
    features = DrugFeatures.from_dict(out.uns["sxdiff_drugs"])
    assert len(features.names) == 59
    assert int(features.has_structure.sum()) == 51
    structure_free = [n for n, s in zip(features.names, features.has_structure, strict=True) if not s]
    assert all(n.startswith("BRD-") for n in structure_free)
    assert np.all(features.structure[~features.has_structure] == 0)
    assert np.all(np.abs(features.structure[features.has_structure]).sum(axis=1) > 0)
    assert {"BRAF", "EGFR"} & set(features.extra_genes + features.genes)


def test_unseen_drug_features_use_training_statistics_and_survive_h5ad(l1000, tmp_path):
    adata = l1000[l1000.obs["smiles"].notna().to_numpy() | l1000.obs["is_control"].to_numpy()].copy()
    sxdiff.pp.ood_split(adata, "unseen_drug", ["vemurafenib", "dasatinib"], context_key="context")
    train = adata[adata.obs["sxdiff_split"] != "test"].copy()
    sxdiff.pp.drug_features(train, smiles_key="smiles")
    path = tmp_path / "train.h5ad"
    train.write_h5ad(path)
    stored = DrugFeatures.from_dict(ad.read_h5ad(path).uns["sxdiff_drugs"])
    assert "vemurafenib" not in stored.names
    # a new drug needs only its SMILES and/or targets: cobimetinib, a MEK inhibitor never seen here
    cobimetinib = "OC1(CN(C1)C(=O)c1ccc(F)c(F)c1Nc1ccc(I)cc1F)[C@@H]1CCCCN1"
    new = DrugTable.from_dataframe(
        pd.DataFrame(
            {
                "drug": ["cobimetinib"],
                "smiles": [cobimetinib],
                "targets": ["MAP2K1|MAP2K2|BRAF"],
                "action": ["INHIBITOR"],
            }
        ),
        targets_col="targets",
        actions_col="action",
    )
    extended = stored.extend(new, ["cobimetinib"])
    row = extended.index("cobimetinib")
    np.testing.assert_array_equal(extended.structure[row], stored.featurizer.transform([cobimetinib])[0])
    columns = extended.genes + extended.extra_genes
    assert extended.template.shape == (len(stored.names) + 1, len(columns))
    assert columns == stored.genes + stored.extra_genes  # the model's template columns do not change
    assert extended.template[row, columns.index("MAP2K1")] == -1
    # it shares its mechanism with trametinib (a MEK inhibitor in training)
    trametinib = extended.template[extended.index("trametinib")]
    assert extended.template[row] @ trametinib > 0
    assert "BRAF" not in columns  # a target that no training drug has cannot be represented, and is logged


def test_combinations_are_sets_of_member_features():
    adata = sxdiff.datasets.norman_crispra()
    sxdiff.pp.drug_features(adata, perturbation_type="CRISPRa")
    features = DrugFeatures.from_dict(adata.uns["sxdiff_drugs"])
    assert "KLF1+MAP2K6" not in features.names
    assert {"KLF1", "MAP2K6"} <= set(features.names)
    sets = features.set_features([("KLF1", "MAP2K6"), ("KLF1",), ()])
    assert [s.shape[0] for s in sets] == [2, 1, 0]
    columns = features.genes + features.extra_genes
    klf1 = features.index("KLF1")
    assert features.template[klf1, columns.index("KLF1")] == 1.0
    assert features.has_targets.all()
    assert not features.has_structure.any()


def test_user_table_overrides_and_invalid_obs_smiles_leaves_data_unchanged(tiny_adata):
    table = pd.DataFrame(
        {"drug": ["A", "B"], "smiles": ["CCO", "c1ccccc1"], "targets": ["EGFR", ""], "action": ["INHIBITOR", ""]}
    )
    sxdiff.pp.drug_features(tiny_adata, drug_key="drug", drug_table=table, use_bundled_tables=False)
    features = DrugFeatures.from_dict(tiny_adata.uns["sxdiff_drugs"])
    assert features.names == ["A", "B"]
    assert features.table["A"]["targets"] == ("EGFR",)
    bad = tiny_adata.copy()
    del bad.uns["sxdiff_drugs"]
    bad.obs["smiles"] = np.where(bad.obs["drug"] == "A", "C1CC", None)
    before = bad.copy()
    with pytest.raises(ValueError, match=r"'A': 'C1CC'"):
        sxdiff.pp.drug_features(bad, drug_key="drug", smiles_key="smiles", use_bundled_tables=False)
    assert_adata_unchanged(before, bad)
    assert "sxdiff_drugs" not in bad.uns


def _fake_pertpy(monkeypatch, behaviour):
    module = types.ModuleType("pertpy")

    class Compound:
        def annotate_compounds(self, adata, query_id, copy):
            return behaviour(adata, query_id)

    module.metadata = types.SimpleNamespace(Compound=Compound)
    monkeypatch.setitem(sys.modules, "pertpy", module)


def test_annotate_smiles_writes_per_cell_smiles(monkeypatch, tiny_adata):
    def lookup(adata, query_id):
        out = adata.copy()
        out.obs["smiles"] = out.obs[query_id].map({"A": "CCO", "B": None})
        return out

    _fake_pertpy(monkeypatch, lookup)
    sxdiff.pp.annotate_smiles(tiny_adata, drug_key="drug")
    values = dict(zip(tiny_adata.obs["drug"], tiny_adata.obs["smiles"], strict=True))
    assert values["A"] == "CCO"
    assert values["B"] is None
    assert values["A+B"] is None
    assert values["control"] is None


def test_annotate_smiles_offline_says_so_in_one_line(monkeypatch, tiny_adata):
    def offline(adata, query_id):
        raise ConnectionError("Failed to establish a new connection")

    _fake_pertpy(monkeypatch, offline)
    before = tiny_adata.copy()
    with pytest.raises(ConnectionError, match="PubChem could not be reached") as info:
        sxdiff.pp.annotate_smiles(tiny_adata, drug_key="drug")
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    assert_adata_unchanged(before, tiny_adata)


def test_annotate_smiles_without_pertpy(monkeypatch, tiny_adata):
    monkeypatch.setitem(sys.modules, "pertpy", None)
    with pytest.raises(ImportError, match=r"pip install 'sxdiff\[pertpy\]'"):
        sxdiff.pp.annotate_smiles(tiny_adata, drug_key="drug")


def test_genetic_perturbation_type_is_read_from_obs_and_undescribed_sets_warn(caplog):
    """The bundled Norman data say CRISPRa in obs['perturbation_type']: every member gets its target gene."""
    import logging

    adata = sxdiff.datasets.norman_crispra()
    sxdiff.pp.drug_features(adata, drug_key="perturbation", allow_structure_free=True)
    features = sxdiff.drugs.DrugFeatures.from_dict(adata.uns["sxdiff_drugs"])
    assert adata.uns["sxdiff_drugs"]["params"]["perturbation_type"] == "CRISPRa"
    assert features.has_targets.all()
    assert not features.has_structure.any()
    assert len({tuple(row) for row in features.template}) == len(features.names)  # all distinct
    drugs = adata.copy()
    del drugs.obs["perturbation_type"]
    with caplog.at_level(logging.WARNING, logger="sxdiff.pp._drug_features"):
        sxdiff.pp.drug_features(drugs, drug_key="perturbation", allow_structure_free=True, use_bundled_tables=False)
    assert "cannot tell them apart" in caplog.text
