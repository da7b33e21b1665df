import numpy as np
import pandas as pd
import pytest

from sxdiff.data import validate_perturbation_data
from sxdiff.datasets.synthetic import expected_log_mean, perturbation_data, sparse_state_response


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


def test_sparse_state_response_has_the_promised_shape_and_known_state_effects():
    adata = sparse_state_response(seed=0)
    again = sparse_state_response(seed=0)
    assert adata.n_vars == 5000
    assert 2000 <= adata.n_obs <= 5000
    assert 1 - adata.X.nnz / (adata.n_obs * adata.n_vars) >= 0.90
    assert (adata.X != again.X).nnz == 0
    assert not adata.layers
    found = validate_perturbation_data(
        adata, perturbation_key="perturbation", control_value="control", dose_key="dose", context_key="context"
    )
    assert found.expression_scale == "log1p"
    truth = adata.uns["synthetic_truth"]
    assert set(adata.obs["perturbation"].astype(str)) == {"control", *truth["perturbations"]}
    assert set(truth["perturbations"]) <= set(adata.var_names)
    # contexts differ in composition: each is dominated by one state
    obs = adata.obs
    share = pd.crosstab(obs["context"], obs["cell_state"], normalize="index").to_numpy()
    assert (share.max(axis=1) > 0.6).all()
    # each state's measured change on the programme has the sign of its true response
    X = adata.X
    for p, perturbation in enumerate(truth["perturbations"]):
        programme = adata.var_names.get_indexer(truth["programmes"][p])
        for s, state in enumerate(truth["states"]):
            in_state = (obs["cell_state"] == state).to_numpy()
            treated = X[in_state & (obs["perturbation"] == perturbation).to_numpy()][:, programme].mean()
            control = X[in_state & obs["is_control"].to_numpy()][:, programme].mean()
            assert np.sign(treated - control) == np.sign(truth["state_response"][p, s])
        target = adata.var_names.get_loc(perturbation)
        treated = X[(obs["perturbation"] == perturbation).to_numpy()][:, target].mean()
        assert treated < X[obs["is_control"].to_numpy()][:, target].mean()


def test_sparse_state_response_refuses_impossible_settings():
    with pytest.raises(ValueError, match="n_states"):
        sparse_state_response(n_states=1)
    with pytest.raises(ValueError, match="too few"):
        sparse_state_response(n_genes=300)
    with pytest.raises(ValueError, match="state_fractions"):
        sparse_state_response(n_contexts=2, state_fractions=[[0.5, 0.5]])


def test_sparse_state_response_gene_symbols_rename_markers_and_unaffected_genes_only():
    plain = sparse_state_response(n_genes=2000, n_marker_genes=40, n_programme_genes=40, seed=1)
    symbols = ("CD14", "GAPDH", "CD3E", "VIM")
    named = sparse_state_response(n_genes=2000, n_marker_genes=40, n_programme_genes=40, gene_symbols=symbols, seed=1)
    assert (plain.X != named.X).nnz == 0  # renaming changes no value
    renamed = plain.var_names[named.var_names.isin(symbols)]
    assert len(renamed) == 4
    truth = named.uns["synthetic_truth"]
    markers = truth["markers"]  # states x markers, in the renamed names
    assert "CD14" in markers[0]  # alternately each state's marker ...
    assert "CD3E" in markers[1]
    changed = {*truth["programmes"].ravel(), *truth["shared_genes"].ravel(), *truth["perturbations"], *markers.ravel()}
    assert not {"GAPDH", "VIM"} & changed  # ... and a gene nothing affects
    state0 = (named.obs["cell_state"] == "state_0").to_numpy() & named.obs["is_control"].to_numpy()
    state1 = (named.obs["cell_state"] == "state_1").to_numpy() & named.obs["is_control"].to_numpy()
    cd14 = named[:, "CD14"].X.toarray().ravel()
    assert cd14[state0].mean() > 1.5 * cd14[state1].mean()
    with pytest.raises(ValueError, match="distinct"):
        sparse_state_response(n_genes=2000, n_marker_genes=40, n_programme_genes=40, gene_symbols=("CD14", "CD14"))


def test_sciplex3_standin_has_sciplex3s_schema_and_a_known_dose_response():
    import sxdiff
    from sxdiff.datasets.synthetic import sciplex3_standin

    adata = sciplex3_standin(n_compounds=6, n_genes=300, n_cells_per_condition=40, n_control_cells=200, seed=1)
    keys = adata.uns["sxdiff"]
    assert (keys["delimiter"], keys["dose_key"], keys["dose_unit"], keys["expression_scale"]) == (
        "|",
        "dose",
        "uM",
        "counts",
    )
    assert keys["dataset"] == "sciplex3_standin"
    assert "simulated" in keys["source"]
    recorded = ("perturbation_key", "control_value", "dose_key", "context_key", "batch_key", "delimiter")
    found = validate_perturbation_data(adata, **{key: keys[key] for key in recorded})  # the keys it records work
    assert len(found.perturbations) == 6
    assert found.expression_scale == "counts"
    assert sorted(adata.obs["context"].unique()) == ["A549", "K562", "MCF7"]
    assert sorted(adata.obs["dose"].unique()) == [0.0, 0.01, 0.1, 1.0, 10.0]
    assert (adata.obs["dose_nM"] == adata.obs["dose"] * 1000).all()
    # every compound is a real sci-Plex3 name whose structure the bundled tables know (not structure-free)
    sxdiff.pp.drug_features(adata, drug_key="perturbation", delimiter="|")
    assert len(adata.uns["sxdiff_drugs"]["names"]) == 6

    # the measured log-fold change (pseudobulk of size-normalised counts) follows the ground truth on the affected
    # genes (r > 0.4 with 40 cells of about 0.3 counts per gene) and grows with dose (10 nM vs 10 uM)
    truth = adata.uns["synthetic_truth"]
    counts = adata.X.toarray()
    normalised = counts / counts.sum(1, keepdims=True) * counts.sum(1).mean()
    obs = adata.obs
    a549 = (obs["context"] == "A549").to_numpy()
    control = normalised[a549 & obs["is_control"].to_numpy()].mean(0)
    for compound, effect in zip(truth["compounds"], truth["effects"], strict=True):
        affected = effect != 0
        slopes = {}
        for dose in (0.01, 10.0):
            cells = a549 & (obs["perturbation"] == compound).to_numpy() & (obs["dose"] == dose).to_numpy()
            change = np.log((normalised[cells].mean(0) + 0.05) / (control + 0.05))[affected]
            slopes[dose] = change @ effect[affected] / (effect[affected] @ effect[affected])  # change along truth
            if dose == 10.0:
                assert np.corrcoef(change, effect[affected])[0, 1] > 0.4, compound
        assert slopes[10.0] > slopes[0.01] + 0.1, (compound, slopes)
    assert sciplex3_standin(n_compounds=2, n_genes=20, n_cells_per_condition=2, n_control_cells=2).n_obs == 3 * (
        2 + 2 * 4 * 2
    )
    with pytest.raises(ValueError, match="n_compounds"):
        sciplex3_standin(n_compounds=0)
    with pytest.raises(ValueError, match="between 1 and 187"):
        sciplex3_standin(n_compounds=188)
