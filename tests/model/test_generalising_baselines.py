"""Baselines of the evaluation harness: additive, nearest drug, ridge, state-matched shift."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import sxdiff
from sxdiff.datasets.synthetic import perturbation_data
from sxdiff.metrics import mse_delta, pearson_delta
from sxdiff.model import AdditiveBaseline, MeanShiftBaseline, NearestDrugBaseline, RidgeBaseline, StateMatchedBaseline


def _log(adata):
    X = adata.X.toarray()
    adata.X = np.log1p(X / X.sum(1, keepdims=True) * 1e4)
    return adata


@pytest.fixture(scope="module")
def additive_data():
    adata = perturbation_data(
        n_genes=100,
        n_contexts=2,
        n_drugs=4,
        n_combinations=2,
        doses=(1.0,),
        n_cells_per_condition=150,
        n_control_cells=300,
        interaction_size=0.0,
        effect_size=2.0,
        seed=4,
    )
    return _log(adata)


def _score(model, adata, label, dose, metric=pearson_delta):
    sources = adata[adata.obs["is_control"].to_numpy()]
    pred = model.predict(sources, pd.DataFrame({"perturbation": [label], "dose": [dose]}))
    truth = adata[(adata.obs["perturbation"].astype(str) == label).to_numpy()]
    kwargs = {"top_k": 20} if metric is pearson_delta else {}
    return metric(pred.X.mean(0), truth.X.mean(0), sources.X.mean(0), **kwargs)


def test_additive_recovers_an_unseen_combination_of_independent_singles(additive_data):
    combos = sorted({p for p in additive_data.obs["perturbation"].astype(str) if "+" in p})
    train = additive_data[~additive_data.obs["perturbation"].isin(combos).to_numpy()].copy()
    additive = AdditiveBaseline(dose_key="dose", context_key="context").fit(train)
    mean_shift = MeanShiftBaseline(dose_key="dose", context_key="context").fit(train)
    for combo in combos:
        dose = "+".join(["1.0"] * 2)
        assert _score(additive, additive_data, combo, dose) > 0.95, combo
        additive_mse = _score(additive, additive_data, combo, dose, metric=mse_delta)
        assert additive_mse < 0.5 * _score(mean_shift, additive_data, combo, dose, metric=mse_delta)


def test_ridge_predicts_an_unseen_drug_from_its_targets():
    """Each drug inhibits two of six hub genes; its effect is the sum of fixed per-hub profiles (linear in the
    target template). The held-out drug hits a pair of hubs no training drug hits together."""
    rng = np.random.default_rng(0)
    n_genes, n = 40, 80
    hub_effect = rng.normal(0, 1.0, (6, n_genes))
    pairs = {"d01": (0, 1), "d23": (2, 3), "d45": (4, 5), "d02": (0, 2), "d13": (1, 3), "d24": (2, 4), "d35": (3, 5)}
    pairs["held_out"] = (0, 5)
    blocks, labels = [rng.normal(2.0, 0.3, (n, n_genes))], ["control"] * n
    for drug, hubs in pairs.items():
        blocks.append(rng.normal(2.0, 0.3, (n, n_genes)) + hub_effect[list(hubs)].sum(0))
        labels += [drug] * n
    obs = pd.DataFrame({"perturbation": labels, "context": "c"}, index=[f"cell{i}" for i in range(len(labels))])
    adata = ad.AnnData(np.vstack(blocks), obs=obs, var=pd.DataFrame(index=[f"gene_{g}" for g in range(n_genes)]))
    table = pd.DataFrame(
        {
            "drug": list(pairs),
            "targets": [f"gene_{a}|gene_{b}" for a, b in pairs.values()],
            "action": ["INHIBITOR|INHIBITOR"] * len(pairs),
        }
    )
    sxdiff.pp.drug_features(
        adata,
        drug_key="perturbation",
        drug_table=table,
        use_bundled_tables=False,
        perturbation_type="drug",
        allow_structure_free=True,
    )
    train = adata[(adata.obs["perturbation"] != "held_out").to_numpy()].copy()
    ridge = RidgeBaseline(context_key="context", features="targets").fit(train)
    mean_shift = MeanShiftBaseline(context_key="context").fit(train)
    sources = adata[adata.obs["perturbation"].eq("control").to_numpy()]
    truth = adata[adata.obs["perturbation"].eq("held_out").to_numpy()].X.mean(0)
    scores = {}
    for name, model in {"ridge": ridge, "mean_shift": mean_shift}.items():
        pred = model.predict(sources, ["held_out"]).X.mean(0)
        scores[name] = pearson_delta(pred, truth, sources.X.mean(0))
    assert scores["ridge"] > 0.8
    assert scores["ridge"] > scores["mean_shift"] + 0.2
    assert ridge.alpha_ in ridge.alphas


def test_ridge_names_the_missing_drug_features():
    adata = _log(perturbation_data(n_genes=30, n_contexts=1, n_drugs=2, n_combinations=0, seed=1))
    with pytest.raises(KeyError, match="drug_features"):
        RidgeBaseline(dose_key="dose").fit(adata)
    with pytest.raises(ValueError, match="features must be"):
        RidgeBaseline(features="fingerprints")


def _drug_cells():
    """One context; two drugs with opposite effects; 'salicylic acid' is unseen and resembles aspirin."""
    rng = np.random.default_rng(0)
    n_genes, n = 30, 60
    effect = np.r_[np.full(10, 1.5), np.zeros(n_genes - 10)]
    blocks = {"control": 0.0, "aspirin": effect, "caffeine": -effect, "salicylic acid": effect}
    X = np.vstack([rng.normal(2.0, 0.3, (n, n_genes)) + shift for shift in blocks.values()])
    obs = pd.DataFrame({"perturbation": np.repeat(list(blocks), n), "context": "c"})
    obs["is_control"] = obs["perturbation"] == "control"
    obs["dose"] = np.where(obs["is_control"], 0.0, 1.0)
    obs.index = [f"cell{i}" for i in range(len(obs))]
    adata = ad.AnnData(X, obs=obs)
    table = pd.DataFrame(
        {
            "drug": ["aspirin", "caffeine", "salicylic acid"],
            "smiles": ["CC(=O)Oc1ccccc1C(=O)O", "Cn1cnc2c1c(=O)n(C)c(=O)n2C", "O=C(O)c1ccccc1O"],
        }
    )
    sxdiff.pp.drug_features(adata, drug_key="perturbation", drug_table=table, perturbation_type="drug")
    return adata


def test_nearest_drug_uses_the_most_similar_structure():
    adata = _drug_cells()
    train = adata[(adata.obs["perturbation"] != "salicylic acid").to_numpy()].copy()
    model = NearestDrugBaseline(dose_key="dose", context_key="context").fit(train)
    neighbour, similarity = model.neighbour("salicylic acid")
    assert neighbour == "aspirin"
    assert 0 < similarity < 1
    assert model.neighbour("caffeine") == ("caffeine", 1.0)
    assert _score(model, adata, "salicylic acid", 1.0) > 0.8
    # an unknown name without SMILES falls back to the mean delta at the dose (aspirin and caffeine cancel)
    sources = adata[adata.obs["is_control"].to_numpy()]
    pred = model.predict(sources, pd.DataFrame({"perturbation": ["unknown"], "dose": [1.0]}))
    assert np.abs(pred.X.mean(0) - sources.X.mean(0)).max() < 0.2


def test_state_matched_shift_follows_the_query_state_composition():
    """Training contexts are mostly state A, the query mostly state B; the drug acts differently per state."""
    rng = np.random.default_rng(3)
    n_genes = 40
    base = {"A": np.r_[np.full(20, 3.0), np.full(20, 1.0)], "B": np.r_[np.full(20, 1.0), np.full(20, 3.0)]}
    response = {"A": np.r_[np.full(5, 2.0), np.zeros(35)], "B": np.r_[np.zeros(20), np.full(5, -2.0), np.zeros(15)]}
    blocks, labels = [], []
    for context, fraction_a in (("train1", 0.9), ("train2", 0.85), ("query", 0.1)):
        for label in ("control", "drug"):
            states = rng.random(200) < fraction_a
            for is_a in states:
                state = "A" if is_a else "B"
                shift = response[state] if label == "drug" else 0.0
                blocks.append(base[state] + shift + rng.normal(0, 0.3, n_genes))
                labels.append((context, label))
    obs = pd.DataFrame(labels, columns=["context", "perturbation"])
    obs.index = [f"cell{i}" for i in range(len(obs))]
    adata = ad.AnnData(np.vstack(blocks), obs=obs)
    train = adata[(adata.obs["context"] != "query").to_numpy()].copy()
    query = adata[(adata.obs["context"] == "query").to_numpy()]
    sources = query[(query.obs["perturbation"] == "control").to_numpy()]
    truth = query[(query.obs["perturbation"] == "drug").to_numpy()]
    scores = {}
    for name, cls in {"mean_shift": MeanShiftBaseline, "state": StateMatchedBaseline}.items():
        kwargs = {"n_states": 2} if name == "state" else {}
        model = cls(context_key="context", **kwargs).fit(train)
        pred = model.predict(sources, ["drug"])
        scores[name] = pearson_delta(pred.X.mean(0), truth.X.mean(0), sources.X.mean(0), top_k=10)
    assert scores["state"] > 0.8
    assert scores["state"] > scores["mean_shift"] + 0.3
    with pytest.raises(ValueError, match="n_states"):
        StateMatchedBaseline(n_states=0)


def test_state_matched_shift_finds_the_states_of_a_shifted_unseen_context():
    """Three states respond differently; the query context is shifted as a whole (a batch effect on genes of
    their own) and has only control cells in the training data, as in an unseen-context split. Clustering all
    training controls would give the query its own cluster; the states of the other contexts are found."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(7)
    n_genes, states = 60, ("A", "B", "C")
    base = {s: np.full(n_genes, 1.0) for s in states}
    for i, s in enumerate(states):
        base[s][10 * i : 10 * i + 10] += 2.0  # ten marker genes per state
    response = {s: np.r_[np.zeros(30), rng.normal(0, 1.5, 20), np.zeros(10)] for s in states}
    batch = np.r_[np.zeros(50), np.full(10, 3.0)]  # the query's shift, on genes no state or response uses
    composition = {"train1": (0.6, 0.3, 0.1), "train2": (0.3, 0.6, 0.1), "train3": (0.4, 0.4, 0.2)}
    composition["query"] = (0.1, 0.2, 0.7)
    X, rows = [], []
    for context, fractions in composition.items():
        for label in ("control", "drug"):
            for state in rng.choice(states, size=300, p=fractions):
                cell = base[state] + rng.normal(0, 0.3, n_genes) + (batch if context == "query" else 0.0)
                X.append(cell + (response[state] if label == "drug" else 0.0))
                rows.append((context, label, state))
    obs = pd.DataFrame(rows, columns=["context", "perturbation", "state"])
    obs.index = [f"cell{i}" for i in range(len(obs))]
    adata = ad.AnnData(np.vstack(X), obs=obs)
    is_query = (adata.obs["context"] == "query").to_numpy()
    train = adata[~is_query | (adata.obs["perturbation"] == "control").to_numpy()].copy()
    sources = adata[is_query & (adata.obs["perturbation"] == "control").to_numpy()]
    truth = adata[is_query & (adata.obs["perturbation"] == "drug").to_numpy()]

    # the failure this guards against: k-means on all training controls isolates the query context
    controls = train[(train.obs["perturbation"] == "control").to_numpy()]
    clusters = KMeans(n_clusters=3, n_init=10, random_state=0).fit_predict(controls.X)
    query_clusters = set(clusters[(controls.obs["context"] == "query").to_numpy()])
    assert len(query_clusters) == 1
    assert not query_clusters & set(clusters[(controls.obs["context"] != "query").to_numpy()])

    model = StateMatchedBaseline(context_key="context", n_states=3).fit(train)
    assert model.reference_contexts_ == ["train1", "train2", "train3"]
    pred = model.predict(sources, ["drug"])
    predicted_delta = pred.X - sources.X
    for state in states:
        of_state = (sources.obs["state"] == state).to_numpy()
        r = np.corrcoef(predicted_delta[of_state].mean(0), response[state])[0, 1]
        assert r > 0.8, (state, r)
    mean_shift = MeanShiftBaseline(context_key="context").fit(train).predict(sources, ["drug"])
    scores = {
        name: pearson_delta(p.X.mean(0), truth.X.mean(0), sources.X.mean(0))
        for name, p in {"state": pred, "mean_shift": mean_shift}.items()
    }
    assert scores["state"] > 0.9
    assert scores["state"] > scores["mean_shift"] + 0.1
