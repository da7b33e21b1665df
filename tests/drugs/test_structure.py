import numpy as np
import pytest

from sxdiff.drugs import StructureFeaturizer, canonical_smiles, morgan_counts, rdkit_descriptors, tanimoto

PANOBINOSTAT = "CC1=C(C2=CC=CC=C2N1)CCNCC3=CC=C(C=C3)/C=C/C(=O)NO"
VORINOSTAT = "C1=CC=C(C=C1)NC(=O)CCCCCCC(=O)NO"
ERLOTINIB = "COCCOc1cc2ncnc(Nc3cccc(C#C)c3)c2cc1OCCOC"
IMATINIB = "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1"


def test_two_spellings_canonicalise_to_one():
    assert canonical_smiles(VORINOSTAT) == canonical_smiles("ONC(=O)CCCCCCC(=O)Nc1ccccc1")
    assert canonical_smiles(PANOBINOSTAT) == canonical_smiles("Cc1[nH]c2ccccc2c1CCNCc1ccc(/C=C/C(=O)NO)cc1")
    # a salt form gives the parent molecule
    assert canonical_smiles(IMATINIB + ".CS(=O)(=O)O") == canonical_smiles(IMATINIB)


def test_hydroxamate_hdac_inhibitors_are_closer_to_each_other_than_to_kinase_inhibitors():
    same_class = tanimoto(PANOBINOSTAT, VORINOSTAT)
    for kinase_inhibitor in (ERLOTINIB, IMATINIB):
        assert same_class > tanimoto(PANOBINOSTAT, kinase_inhibitor)
        assert same_class > tanimoto(VORINOSTAT, kinase_inhibitor)


def test_morgan_counts_count_substructures():
    counts = morgan_counts(["CCCCCC", "CC"], radius=1, n_bits=2048)
    assert counts.shape == (2, 2048)
    assert counts[0].sum() > counts[1].sum()
    assert np.all(counts >= 0)
    assert counts.max() > 1


def test_descriptors_are_real_chemistry():
    x = rdkit_descriptors([VORINOSTAT], names=["MolWt", "NumHDonors", "RingCount"])
    np.testing.assert_allclose(x[0], [264.32, 3, 1], atol=0.01)


def test_unseen_drug_uses_stored_statistics_and_round_trips():
    train = [PANOBINOSTAT, VORINOSTAT, ERLOTINIB]
    featurizer = StructureFeaturizer(n_bits=256).fit(train)
    unseen = featurizer.transform([IMATINIB])
    raw = rdkit_descriptors([IMATINIB], featurizer.descriptor_names_)
    expected = (np.sign(raw) * np.log1p(np.abs(raw)) - featurizer.descriptor_mean_) / featurizer.descriptor_std_
    expected = np.clip(np.nan_to_num(expected), -10, 10)
    np.testing.assert_allclose(unseen[0, 256:], expected[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(unseen[0, :256], np.log1p(morgan_counts([IMATINIB], n_bits=256)[0]))
    restored = StructureFeaturizer.from_dict(featurizer.to_dict())
    np.testing.assert_array_equal(restored.transform([IMATINIB]), unseen)
    # refitting on other drugs changes the scale: the stored statistics are what makes them comparable
    other = StructureFeaturizer(n_bits=256).fit([IMATINIB, "CCO"])
    assert not np.allclose(other.transform([IMATINIB]), unseen)


def test_unfitted_featurizer_says_so():
    with pytest.raises(RuntimeError, match="not fitted"):
        StructureFeaturizer().transform(["CCO"])
