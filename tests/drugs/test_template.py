import numpy as np
import pandas as pd

from sxdiff.drugs import DrugTable, protein_template, read_corum, read_gmt, target_template


def test_panobinostat_template_from_bundled_tables_has_negative_hdacs():
    genes = ["HDAC1", "HDAC2", "HDAC6", "ACTB", "GAPDH", "SIN3A"]
    signed, unsigned = target_template(DrugTable.bundled(), genes, names=["panobinostat"])
    np.testing.assert_array_equal(signed[0], [-1, -1, -1, 0, 0, 0])
    np.testing.assert_array_equal(unsigned[0], [1, 1, 1, 0, 0, 0])


def test_propagation_through_complexes_averages_signs():
    table = DrugTable.from_dataframe(
        pd.DataFrame({"drug": ["x", "y"], "targets": ["A|B", "A"], "action": ["INHIBITOR|AGONIST", "INHIBITOR"]}),
        smiles_col=None,
        targets_col="targets",
        actions_col="action",
    )
    sets = {"complex1": ["A", "C"], "complex2": ["B", "C", "D"]}
    signed, unsigned = target_template(table, ["A", "B", "C", "D", "E"], sets, propagation=0.5, names=["x", "y"])
    # x: A=-1, B=+1 targets; C gets mean(-1 via complex1, +1 via complex2) * 0.5 = 0; D gets +0.5
    np.testing.assert_allclose(signed[0], [-1, 1, 0, 0.5, 0])
    np.testing.assert_allclose(unsigned[0], [1, 1, 0.5, 0.5, 0])
    np.testing.assert_allclose(signed[1], [-1, 0, -0.5, 0, 0])
    no_propagation, _ = target_template(table, ["A", "B", "C", "D", "E"], sets, propagation=0.0, names=["x"])
    np.testing.assert_allclose(no_propagation[0], [-1, 1, 0, 0, 0])


def test_protein_template_maps_coding_genes():
    table = DrugTable.genetic(["CD4"], modality="CRISPRi")
    values = protein_template(table, ["CD4", "CD8", "CD3"], {"CD8": ["CD8A", "CD8B"], "CD3": ["CD3E"]})
    np.testing.assert_allclose(values, [[-1, 0, 0]])


def test_read_gmt_and_corum(shared_data):
    hallmarks = read_gmt(shared_data / "knowledge" / "msigdb_h.all.v6.0.symbols_from_sciplex_repo.gmt")
    assert len(hallmarks) == 50
    assert "HALLMARK_APOPTOSIS" in hallmarks
    complexes = read_corum(shared_data / "knowledge" / "corum_coreComplexes.txt")
    assert 1500 < len(complexes) < 2500
    assert any({"HDAC1", "HDAC2"} <= set(members) for members in complexes.values())
