import pandas as pd
import pytest

from sxdiff.drugs import DrugTable, action_sign, normalize_drug_name


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Panobinostat", "PANOBINOSTAT"),
        ("AZD-6482", "azd 6482"),
        ("Imatinib mesylate", "imatinib"),
        ("Erlotinib HCl", "erlotinib hydrochloride"),
        ("Navitoclax (ABT-263)", "navitoclax"),
        ("(+)-JQ1", "JQ1"),
    ],
)
def test_spellings_of_one_drug_normalise_to_one_key(a, b):
    assert normalize_drug_name(a) == normalize_drug_name(b)


def test_different_drugs_stay_different():
    assert normalize_drug_name("erlotinib") != normalize_drug_name("gefitinib")


def test_action_signs():
    assert [action_sign(a) for a in ["INHIBITOR", "antagonist", "AGONIST", "opener", "MODULATOR", None, -1]] == [
        -1,
        -1,
        1,
        1,
        0,
        0,
        -1,
    ]


def test_from_dataframe_merges_rows_per_drug_and_keeps_signs():
    frame = pd.DataFrame(
        {
            "drug": ["Drug A", "drug-a", "B"],
            "smiles": ["CCO", "OCC", None],
            "targets": ["EGFR", "ERBB2|EGFR", "ADRB2"],
            "action": ["INHIBITOR", "INHIBITOR", "AGONIST"],
        }
    )
    table = DrugTable.from_dataframe(frame, targets_col="targets", actions_col="action")
    assert len(table) == 2
    assert table["DRUG A"]["targets"] == ("EGFR", "ERBB2")
    assert table["drug a"]["signs"] == (-1, -1)
    assert table["B"]["signs"] == (1,)
    assert table["B"]["smiles"] is None


def test_invalid_smiles_lists_every_failing_drug():
    frame = pd.DataFrame({"drug": ["good", "bad1", "bad2"], "smiles": ["CCO", "C1CC", "xyz"]})
    with pytest.raises(ValueError, match=r"2 drug\(s\).*'bad1': 'C1CC'.*'bad2': 'xyz'"):
        DrugTable.from_dataframe(frame)


def test_conflicting_smiles_for_one_name_is_refused():
    frame = pd.DataFrame({"drug": ["Aspirin", "aspirin"], "smiles": ["CC(=O)Oc1ccccc1C(=O)O", "CCO"]})
    with pytest.raises(ValueError, match="given different molecules"):
        DrugTable.from_dataframe(frame)


def test_salt_forms_are_not_a_conflict():
    frame = pd.DataFrame(
        {
            "drug": ["Imatinib", "Imatinib mesylate"],
            "smiles": [
                "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1",
                "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1.CS(=O)(=O)O",
            ],
        }
    )
    assert len(DrugTable.from_dataframe(frame)) == 1


def test_bundled_tables_know_panobinostat_as_an_hdac_inhibitor():
    table = DrugTable.bundled()
    row = table["Panobinostat"]
    assert row["smiles"] is not None
    hdacs = {t: s for t, s in zip(row["targets"], row["signs"], strict=True) if t.startswith("HDAC")}
    assert {"HDAC1", "HDAC2", "HDAC3", "HDAC6"} <= set(hdacs)
    assert set(hdacs.values()) == {-1}


def test_genetic_perturbations_have_one_target_and_a_modality_sign():
    up = DrugTable.genetic(["KLF1"], modality="CRISPRa")["KLF1"]
    down = DrugTable.genetic(["KLF1"], modality="knockout")["KLF1"]
    assert up["targets"] == ("KLF1",)
    assert up["signs"] == (1,)
    assert up["smiles"] is None
    assert down["signs"] == (-1,)
    with pytest.raises(ValueError, match="Unknown genetic modality"):
        DrugTable.genetic(["KLF1"], modality="prime editing")


def test_merge_priority_and_dict_round_trip():
    mine = DrugTable.from_dataframe(pd.DataFrame({"drug": ["panobinostat"], "smiles": ["CCO"]}))
    merged = mine.merge(DrugTable.bundled(sources=("drugcentral",)))
    assert merged["panobinostat"]["smiles"] == "CCO"  # the user's table wins
    assert "HDAC1" in merged["panobinostat"]["targets"]  # missing targets are filled
    restored = DrugTable.from_dict(merged.to_dict())
    pd.testing.assert_frame_equal(restored.frame, merged.frame)


def test_resolve_is_one_policy_for_drugs_and_genetic_perturbations():
    mine = pd.DataFrame(
        {"drug": ["KLF1", "mydrug"], "targets": ["KLF1|GATA1", "EGFR"], "action": ["activator", "inhibitor"]}
    )
    # genetic perturbations: the user's rows win over "the gene itself", the others get their gene
    genetic = DrugTable.resolve(["KLF1", "MAP2K6"], mine, perturbation_type="CRISPRa")
    assert genetic["KLF1"]["targets"] == ("KLF1", "GATA1")
    assert genetic["MAP2K6"]["targets"] == ("MAP2K6",)
    assert genetic["MAP2K6"]["signs"] == (1,)
    # drugs: the bundled tables fill what the user's table lacks, only when asked
    assert "panobinostat" in DrugTable.resolve(["panobinostat"], mine)
    assert "panobinostat" not in DrugTable.resolve(["panobinostat"], mine, use_bundled_tables=False)
    assert DrugTable.resolve(["mydrug"], mine, use_bundled_tables=False)["mydrug"]["signs"] == (-1,)
