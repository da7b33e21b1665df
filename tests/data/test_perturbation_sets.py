import numpy as np
import pytest

from sxdiff.data import encode_perturbation_sets, parse_doses, parse_perturbations


def test_parse_perturbations_controls_are_empty_sets():
    sets = parse_perturbations(["ctrl", "A", "A+B", " C + D "], control_value="ctrl")
    assert sets == [(), ("A",), ("A", "B"), ("C", "D")]


def test_parse_perturbations_custom_delimiter_keeps_plus_in_names():
    sets = parse_perturbations(["(+)-JQ1", "x|y", "none"], control_value="none", delimiter="|")
    assert sets == [("(+)-JQ1",), ("x", "y"), ()]


@pytest.mark.parametrize("bad", ["A++B", "A+A", "+A", "(+)-JQ1"])
def test_parse_perturbations_malformed_combination(bad):
    with pytest.raises(ValueError, match="malformed combination"):
        parse_perturbations(["control", bad], control_value="control")


def test_parse_perturbations_missing_label():
    with pytest.raises(ValueError, match="missing value"):
        parse_perturbations(["control", None, float("nan")], control_value="control", column="drug")


def test_parse_doses_numbers_strings_and_broadcast():
    sets = [(), ("A",), ("A", "B"), ("A", "B")]
    assert parse_doses([0, 2.5, "1+0.5", 3.0], sets) == [(), (2.5,), (1.0, 0.5), (3.0, 3.0)]


def test_parse_doses_default_only_when_asked():
    sets = [(), ("A",)]
    with pytest.raises(ValueError, match="default_dose"):
        parse_doses([0, float("nan")], sets)
    assert parse_doses([0, float("nan")], sets, default_dose=1.0) == [(), (1.0,)]
    # no dose column at all: every perturbation is one unit of dose (a stimulation, a knock-down)
    assert parse_doses(None, sets) == [(), (1.0,)]
    assert parse_doses(None, sets, default_dose=2.0) == [(), (2.0,)]


def test_parse_doses_not_numbers_named():
    with pytest.raises(ValueError, match=r"not numbers: \['high'\]"):
        parse_doses(["0", "high"], [(), ("A",)], column="dose_uM")


def test_parse_doses_length_mismatch():
    with pytest.raises(ValueError, match="does not match the number of perturbations"):
        parse_doses(["1+2+3"], [("A", "B")])


def test_parse_doses_negative():
    with pytest.raises(ValueError, match="negative or infinite"):
        parse_doses([-1.0], [("A",)])


def test_encode_perturbation_sets_padding_and_order():
    idx, dose, mask = encode_perturbation_sets(
        [(), ("C",), ("B", "A", "C")], [(), (2.0,), (1.0, 0.5, 3.0)], ["A", "B", "C"]
    )
    assert idx.shape == (3, 3)
    np.testing.assert_array_equal(idx[2], [1, 0, 2])
    np.testing.assert_array_equal(mask.sum(axis=1), [0, 1, 3])
    np.testing.assert_allclose(dose[1], [2.0, 0.0, 0.0])


def test_encode_unknown_perturbation():
    with pytest.raises(KeyError, match="not in the vocabulary"):
        encode_perturbation_sets([("Z",)], [(1.0,)], ["A"])
