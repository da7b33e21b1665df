import numpy as np

from sxdiff.data import validate_perturbation_data
from sxdiff.datasets.synthetic import expected_log_mean, perturbation_data


def test_synthetic_data_validates_and_recovers_known_effects():
    adata = perturbation_data(
        n_genes=100, n_contexts=2, n_drugs=4, n_combinations=2, n_cells_per_condition=200, n_control_cells=400, seed=3
    )
    found = validate_perturbation_data(
        adata,
        perturbation_key="perturbation",
        control_value="control",
        dose_key="dose",
        context_key="context",
        batch_key="batch",
    )
    assert found.expression_scale == "counts"
    truth = adata.uns["synthetic_truth"]
    X = adata.X.toarray()
    obs = adata.obs
    for context in ["context_0", "context_1"]:
        control = X[(obs["context"] == context).to_numpy() & obs["is_control"].to_numpy()].mean(0)
        for drug in ["drug_0", "drug_3"]:
            cells = (
                (obs["context"] == context).to_numpy()
                & (obs["perturbation"] == drug).to_numpy()
                & (obs["dose"] == "10.0").to_numpy()
            )
            observed = np.log(X[cells].mean(0) + 1e-3) - np.log(control + 1e-3)
            expected = expected_log_mean(truth, context, [drug], [10.0]) - expected_log_mean(truth, context, [], [])
            assert np.corrcoef(observed, expected)[0, 1] > 0.9
    combo = str(truth["combinations"][0])
    members = combo.split("+")
    interaction_free = sum(
        expected_log_mean(truth, "context_0", [m], [1.0]) - expected_log_mean(truth, "context_0", [], [])
        for m in members
    )
    full = expected_log_mean(truth, "context_0", members, [1.0, 1.0]) - expected_log_mean(truth, "context_0", [], [])
    assert not np.allclose(full, interaction_free)  # combinations are not purely additive


def test_synthetic_is_deterministic():
    a = perturbation_data(n_genes=10, n_drugs=2, n_combinations=1, seed=5)
    b = perturbation_data(n_genes=10, n_drugs=2, n_combinations=1, seed=5)
    np.testing.assert_array_equal(a.X.toarray(), b.X.toarray())
    assert list(a.obs["perturbation"]) == list(b.obs["perturbation"])
