"""Perturbations never trained on: held out by perturbation, (λ, μ) chosen on them, then trained on all of them."""

import numpy as np
import pandas as pd
import torch

import sxdiff
from sxdiff.datasets.synthetic import drug_table, perturbation_data

SMALL = {"n_latent": 4, "n_hidden": 32, "d_model": 32, "n_blocks": 1, "n_heads": 2, "n_chunks": 4}
KEYS = {"perturbation_key": "perturbation", "control_value": "control", "dose_key": "dose", "context_key": "context"}


def test_many_perturbations_choose_a_shrinkage_for_new_ones_and_keep_it_when_saved(tmp_path):
    adata = perturbation_data(
        n_genes=30, n_contexts=1, n_drugs=24, n_combinations=0, doses=(1.0,), n_cells_per_condition=6, seed=0
    )
    table = drug_table(adata)
    new = adata[adata.obs["perturbation"].isin(["drug_22", "drug_23"]).to_numpy()].obs_names
    adata = adata[~adata.obs_names.isin(new)].copy()  # two drugs the model never sees
    sxdiff.pp.drug_features(adata, drug_key="perturbation", drug_table=table, use_bundled_tables=False)
    sxdiff.model.StateXDiff.setup_anndata(adata, **KEYS)
    torch.manual_seed(0)
    model = sxdiff.model.StateXDiff(adata, **SMALL)
    model.train(max_epochs=4, batch_size=32, enable_progress_bar=False)

    assert len(model.novelty_shrinkage_) == 33  # λ in 0, 0.1, ..., 1 times μ in 0, 0.5, 1
    assert all(np.isfinite(list(model.novelty_shrinkage_.values())))
    chosen = model.module.composer.novelty_shrinkage.tolist()
    assert max(model.novelty_shrinkage_, key=model.novelty_shrinkage_.get) == f"{chosen[0]:.1f},{chosen[1]:.1f}"
    assert "all_perturbations" in set(model.history["train_loss"]["stage"])
    # after the last run every training drug is trained (none of the 22 stays novel)
    assert int(model.module.composer.trained.sum()) == 22

    controls = adata[adata.obs["is_control"].to_numpy()].copy()
    conditions = pd.DataFrame({"perturbation": ["drug_22", "drug_23", "drug_3"], "dose": ["1.0"] * 3})
    model.module.set_novelty_shrinkage(0.0, 0.0)  # new drugs: the average trained drug, whatever their description
    first = model.predict(controls, conditions, drug_table=table, seed=0)
    library = np.asarray(controls.X.sum(1)).ravel()

    def log_mean(perturbation):  # the scale the change is predicted on: log1p per 10,000
        x = np.asarray(
            first[(first.obs["perturbation"] == perturbation).to_numpy()].X.todense()
            if hasattr(first.X, "todense")
            else first[(first.obs["perturbation"] == perturbation).to_numpy()].X
        )
        return np.log1p(x * 1e4 / library[:, None]).mean(0)

    mean = {p: log_mean(p) for p in conditions["perturbation"]}
    # (equal up to how per-cell variation and proportional decreases interact; a trained drug keeps its own effect)
    between_new = np.abs(mean["drug_22"] - mean["drug_23"]).mean()
    to_trained = np.abs(mean["drug_22"] - mean["drug_3"]).mean()
    assert between_new < 0.1 * to_trained, (between_new, to_trained)

    model.module.set_novelty_shrinkage(*chosen)
    model.save(tmp_path / "model")
    loaded = sxdiff.model.StateXDiff.load(tmp_path / "model")
    assert loaded.module.composer.novelty_shrinkage.tolist() == chosen
    assert torch.equal(loaded.module.composer.trained, model.module.composer.trained)
