"""Context transfer (τ, ν): how far effects learnt in the training contexts are carried into a new one.

Two versions of the same sparse data: in one every cell responds to a knock-down the same way, in every context
(no state-dependent programme); in the other the labels are rotated between contexts, so the same label means a
different knock-down in each context and no context's response predicts another's (as on the McFaline cell lines,
where every method is below the null floor). The weights must follow: carried over whole in the first, shrunk
toward no change in the second, and only sources of a context without perturbed training cells are affected.
"""

import numpy as np
import pandas as pd
import pytest
import torch

import sxdiff

pytestmark = pytest.mark.slow

SMALL = {"n_latent": 8, "n_hidden": 64, "d_model": 32, "n_blocks": 1, "n_heads": 2, "n_chunks": 4}
KEYS = {"perturbation_key": "perturbation", "control_value": "control", "dose_key": "dose", "context_key": "context"}


def _trained(rotate_labels: bool):
    adata = sxdiff.datasets.synthetic.sparse_state_response(
        n_genes=800,
        n_marker_genes=20,
        n_programme_genes=40,
        effect_size=0.0,
        shared_effect_size=1.0,
        n_cells_per_condition=80,
        n_control_cells=120,
        seed=3,
    )
    if rotate_labels:  # context c calls knock-down p by the name of knock-down p + c
        names = list(adata.uns["synthetic_truth"]["perturbations"])
        labels = adata.obs["perturbation"].astype(str).to_numpy().copy()
        for c, context in enumerate(sorted(adata.obs["context"].unique())):
            rows = (adata.obs["context"] == context).to_numpy() & (labels != "control")
            labels[rows] = [names[(names.index(label) + c) % len(names)] for label in labels[rows]]
        adata.obs["perturbation"] = pd.Categorical(labels)
    sxdiff.pp.drug_features(adata, drug_key="perturbation", allow_structure_free=True)
    sxdiff.pp.ood_split(adata, "unseen_context", ["line_3"], validation_fraction=0, **KEYS)
    sxdiff.model.StateXDiff.setup_anndata(adata, **KEYS)
    torch.manual_seed(0)
    model = sxdiff.model.StateXDiff(adata, context_transfer="auto", **SMALL)
    model.train(train_steps=60, split_key="sxdiff_split", enable_progress_bar=False)
    return adata, model


def _mean_change(model, adata, context: str, perturbation: str) -> np.ndarray:
    controls = adata[(adata.obs["context"] == context).to_numpy() & adata.obs["is_control"].to_numpy()]
    pred = model.predict(controls, pd.DataFrame({"perturbation": [perturbation], "dose": ["1"]}), seed=0)
    return np.asarray(pred.X.mean(0)).ravel() - np.asarray(controls.X.mean(0)).ravel()


def test_consistent_responses_are_carried_over_and_unrelated_ones_shrunk():
    _, consistent = _trained(rotate_labels=False)
    adata, rotated = _trained(rotate_labels=True)
    assert consistent.perturbed_contexts_ == ["line_0", "line_1", "line_2"]
    assert consistent.context_transfer_["contexts"] == 3
    assert consistent.context_transfer_["tau"] > 0.7, consistent.context_transfer_
    assert rotated.context_transfer_["tau"] < 0.3, rotated.context_transfer_

    perturbation = str(adata.uns["synthetic_truth"]["perturbations"][0])
    new_shrunk = _mean_change(rotated, adata, "line_3", perturbation)
    trained_context = _mean_change(rotated, adata, "line_0", perturbation)
    rotated.module.set_context_transfer(1.0, 1.0)  # carried over whole: as without context transfer
    new_whole = _mean_change(rotated, adata, "line_3", perturbation)
    np.testing.assert_allclose(_mean_change(rotated, adata, "line_0", perturbation), trained_context, atol=1e-5)
    ratio = np.linalg.norm(new_shrunk) / np.linalg.norm(new_whole)
    assert ratio < 0.5, ratio
