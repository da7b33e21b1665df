"""The design card's three calls on a plain stimulation data set: no dose column, no ``pp.drug_features`` first."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

import sxdiff
from sxdiff.data._expression import log_normalize

StateXDiff = sxdiff.model.StateXDiff
SMALL = {"n_latent": 4, "n_hidden": 32, "d_model": 32, "n_blocks": 1, "n_heads": 2, "n_chunks": 4}
RESPONDERS = np.arange(6)  # genes the stimulation raises, by exp(1.5), in both cell types


def _ifn_beta_like(seed: int = 0) -> ad.AnnData:
    """Two cell types, controls and one cytokine ("IFNB", in no drug table), counts; no dose column."""
    rng = np.random.default_rng(seed)
    n_genes, blocks, labels, types = 40, [], [], []
    for cell_type in ("monocyte", "T_cell"):
        baseline = rng.gamma(2.0, 2.0, size=n_genes) + 1.0
        for label, n in (("control", 250), ("IFNB", 150)):
            mean = baseline.copy()
            if label == "IFNB":
                mean[RESPONDERS] *= np.exp(1.5)
            blocks.append(rng.poisson(mean, size=(n, n_genes)))
            labels += [label] * n
            types += [cell_type] * n
    adata = ad.AnnData(
        X=sp.csr_matrix(np.vstack(blocks).astype(np.float32)),
        obs=pd.DataFrame({"stim": labels, "cell_type": types}),
        var=pd.DataFrame(index=[f"gene_{i}" for i in range(n_genes)]),
    )
    adata.obs_names = [f"cell_{i}" for i in range(adata.n_obs)]
    return adata


def test_setup_train_predict_without_doses_or_drug_features(caplog):
    adata = _ifn_beta_like()
    assert "sxdiff_drugs" not in adata.uns
    sxdiff.pp.ood_split(
        adata, "unseen_context", ["T_cell"], perturbation_key="stim", control_value="control", context_key="cell_type"
    )
    with caplog.at_level("INFO", logger="sxdiff"):
        StateXDiff.setup_anndata(adata, perturbation_key="stim", control_value="control", context_key="cell_type")
    assert "learned identity" in caplog.text
    features = adata.uns["sxdiff_drugs"]
    assert list(features["names"]) == ["IFNB"]
    torch.manual_seed(0)
    model = StateXDiff(adata, **SMALL)
    model.train(train_steps=300, split_key="sxdiff_split", enable_progress_bar=False)

    # the held-out cell type's response, predicted from its controls, with one unit of dose
    t_cells = (adata.obs["cell_type"] == "T_cell").to_numpy()
    controls = adata[t_cells & (adata.obs["stim"] == "control").to_numpy()].copy()
    predicted = model.predict(controls, conditions=["IFNB"], seed=0)

    def log_mean(x):
        return np.asarray(log_normalize(x).mean(axis=0)).ravel()

    stimulated = adata[t_cells & (adata.obs["stim"] == "IFNB").to_numpy()]
    true_change = log_mean(stimulated.X) - log_mean(controls.X)
    predicted_change = log_mean(predicted.X) - log_mean(controls.X)  # predicted counts, normalised as the data
    assert np.corrcoef(predicted_change, true_change)[0, 1] > 0.8
    # the responders go up by the true amount (within 30 %), and the errors are small next to the change itself
    assert abs(predicted_change[RESPONDERS].mean() / true_change[RESPONDERS].mean() - 1) < 0.3
    assert np.mean((predicted_change - true_change) ** 2) < 0.2 * np.mean(true_change**2)  # no change: 1.0


def test_dose_column_with_missing_values_stays_an_error():
    adata = _ifn_beta_like()
    adata.obs["dose"] = np.where(adata.obs["stim"] == "IFNB", np.nan, 0.0)
    with pytest.raises(ValueError, match="default_dose"):
        StateXDiff.setup_anndata(adata, perturbation_key="stim", control_value="control", dose_key="dose")
    assert "sxdiff_drugs" not in adata.uns  # nothing written before validation passed
