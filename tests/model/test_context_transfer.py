"""``ν``: how far state effects learnt in the training contexts are applied to a context never trained on."""

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

import sxdiff
from sxdiff.data._expression import log_normalize

StateXDiff = sxdiff.model.StateXDiff
SMALL = {"n_latent": 4, "n_hidden": 32, "d_model": 32, "n_blocks": 1, "n_heads": 2, "n_chunks": 4}
RESPONDERS = np.arange(6)


def _two_lineages(seed: int = 0) -> ad.AnnData:
    """Four cell types in two lineages with different baselines; the stimulation raises the responders in lineage
    ``a`` and lowers them in lineage ``b``."""
    rng = np.random.default_rng(seed)
    n_genes, blocks, labels, types = 40, [], [], []
    lineages = {"a": rng.gamma(2.0, 2.0, n_genes) + 1.0, "b": rng.gamma(2.0, 2.0, n_genes) + 1.0}
    for cell_type in ("a1", "a2", "b1", "b2"):
        baseline = lineages[cell_type[0]] * np.exp(rng.normal(0, 0.2, n_genes))
        for label, n in (("control", 150), ("stim", 100)):
            mean = baseline.copy()
            if label == "stim":
                mean[RESPONDERS] *= np.exp(1.2 if cell_type[0] == "a" else -1.2)
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


def _log_mean(x):
    return np.asarray(log_normalize(x).mean(axis=0)).ravel()


def test_context_transfer_is_chosen_on_a_held_out_training_context_and_applies_to_new_contexts_only(tmp_path):
    adata = _two_lineages()
    sxdiff.pp.ood_split(
        adata, "unseen_context", ["b2"], perturbation_key="stim", control_value="control", context_key="cell_type"
    )
    StateXDiff.setup_anndata(adata, perturbation_key="stim", control_value="control", context_key="cell_type")
    torch.manual_seed(0)
    model = StateXDiff(adata, **SMALL)
    model.train(train_steps=300, split_key="sxdiff_split", enable_progress_bar=False)

    assert model.perturbed_contexts_ == ["a1", "a2", "b1"]  # b2's perturbed cells are test cells
    assert sorted(model.context_transfer_) == ["0.00", "0.25", "0.50", "0.75", "1.00"]
    nu = float(model.module.composer.context_transfer)
    best = max(model.context_transfer_.values())
    assert nu == min(float(k) for k, v in model.context_transfer_.items() if v >= best - 0.01)  # the smallest near best

    def change(cell_type, value):
        model.module.set_context_transfer(value)
        cells = (adata.obs["cell_type"] == cell_type).to_numpy() & (adata.obs["stim"] == "control").to_numpy()
        controls = adata[cells].copy()
        predicted = model.predict(controls, conditions=["stim"], seed=0)
        return _log_mean(predicted.X) - _log_mean(controls.X)

    # trained contexts: ν plays no part; the new context: ν = 0 keeps the context-free effect only
    assert np.allclose(change("b1", 0.0), change("b1", 1.0), atol=1e-5)
    without, full = change("b2", 0.0), change("b2", 1.0)
    assert not np.allclose(without, full, atol=1e-3)
    # b2 reads its cells through b1's states, whose responders go down: the state deviation carries that
    assert full[RESPONDERS].mean() < without[RESPONDERS].mean()

    model.module.set_context_transfer(nu)
    model.save(tmp_path / "model", save_anndata=True)
    loaded = StateXDiff.load(tmp_path / "model")
    assert loaded.perturbed_contexts_ == model.perturbed_contexts_
    assert float(loaded.module.composer.context_transfer) == nu
