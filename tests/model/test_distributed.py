"""Distributed training through Lightning: DDP on two CPU processes, then load and predict."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import sxdiff
from sxdiff.datasets.synthetic import drug_table, perturbation_data

SCRIPT = Path(__file__).with_name("ddp_train_script.py")


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_trains_a_model_that_loads_and_predicts(tmp_path):
    out = tmp_path / "model"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(out), "2"], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "world_size=2" in result.stderr or "Initializing distributed: GLOBAL_RANK: 1" in result.stderr
    adata = perturbation_data(n_genes=30, n_contexts=2, n_drugs=3, n_combinations=0, n_cells_per_condition=16, seed=0)
    sxdiff.pp.drug_features(adata, drug_key="perturbation", drug_table=drug_table(adata), use_bundled_tables=False)
    model = sxdiff.model.StateXDiff.load(out, adata=adata)
    untrained = sxdiff.model.StateXDiff(adata, n_latent=4, n_hidden=16, d_model=16)
    trained_weight = model.module.vmcs.state_dict()
    changed = [k for k, v in untrained.module.vmcs.state_dict().items() if not torch.equal(v, trained_weight[k])]
    assert changed, "the loaded weights are the initial ones"
    sources = adata[(adata.obs["is_control"] & (adata.obs["context"] == "context_0")).to_numpy()]
    pred = model.predict(sources, pd.DataFrame({"perturbation": ["drug_0"], "dose": ["1.0"]}), seed=0)
    assert pred.n_obs == sources.n_obs
    assert np.isfinite(np.asarray(pred.X)).all()


def test_mixed_precision_is_accepted_and_predictions_stay_float32():
    adata = perturbation_data(n_genes=30, n_contexts=2, n_drugs=3, n_combinations=0, n_cells_per_condition=16, seed=0)
    sxdiff.pp.drug_features(adata, drug_key="perturbation", drug_table=drug_table(adata), use_bundled_tables=False)
    sxdiff.model.StateXDiff.setup_anndata(
        adata, perturbation_key="perturbation", control_value="control", dose_key="dose", context_key="context"
    )
    model = sxdiff.model.StateXDiff(adata, n_latent=4, n_hidden=16, d_model=16)
    model.train(max_epochs=4, batch_size=32, accelerator="cpu", precision="bf16-mixed", enable_progress_bar=False)
    stages = {stage for frame in model.history_.values() if "stage" in frame for stage in frame["stage"]}
    assert stages == {"state", "diffusion"}
    sources = adata[(adata.obs["is_control"] & (adata.obs["context"] == "context_0")).to_numpy()]
    pred = model.predict(sources, pd.DataFrame({"perturbation": ["drug_0"], "dose": ["1.0"]}), seed=0)
    assert pred.X.dtype == np.float32
    assert np.isfinite(np.asarray(pred.X)).all()
