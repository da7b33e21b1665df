"""Probe: does StateXDiff follow the state-matched shift where cell states predict the response, and fall back to
the mean shift where they do not? (The context-transfer factor ν; docs/model.md, "Context transfer".)

Synthetic stimulation: 200 genes, 6 cell types (200 controls and 150 stimulated cells each, Poisson counts), 30
responder genes. Two held-out types (``type_0``, ``type_5``), each predicted from its controls by a model trained on
the other five (800 steps, seed 0, a small network). Simulations:

- ``lineage``: two lineages of three types with shared baselines; lineage 1 responds in the opposite direction on
  half of the responders (states predict the response: the state-matched shift wins);
- ``same``: random baselines per type, the same effect everywhere (the mean shift is right);
- ``dep``: random baselines, the effect scaled per type by a factor unrelated to the states.

Prints, per held-out type, the top-50-gene Pearson r of the model, the mean shift of the other types and the shift
of the type whose controls are nearest, the MSE of model and mean shift, and the held-out scores of ν.

Usage: ``python benchmarks/statexdiff_context_transfer_probe.py lineage|same|dep ['{"context_transfer": False}']``
"""

from __future__ import annotations

import ast
import sys
import time

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

import sxdiff

SMALL = {"n_latent": 8, "n_hidden": 64, "d_model": 64, "n_blocks": 1, "n_heads": 2, "n_chunks": 4}


def simulate(kind: str, seed: int = 0, n_types: int = 6, n_genes: int = 200) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    responders = rng.choice(n_genes, 30, replace=False)
    effect = rng.normal(1.0, 0.5, 30)
    lineage_base = [rng.gamma(1.0, 2.0, size=n_genes) * np.exp(rng.normal(0, 0.7, n_genes)) + 0.05 for _ in range(2)]
    lineage_effect = [effect.copy(), effect * np.where(np.arange(30) < 15, 1.0, -1.0)]
    blocks, labels, types = [], [], []
    for t in range(n_types):
        lineage = t * 2 // n_types
        if kind == "lineage":
            base, e = lineage_base[lineage] * np.exp(rng.normal(0, 0.3, n_genes)), lineage_effect[lineage]
        else:
            base = rng.gamma(1.0, 2.0, size=n_genes) * np.exp(rng.normal(0, 0.7, n_genes)) + 0.05
            e = effect * (1.0 + (0.8 * (t - n_types / 2) / n_types if kind == "dep" else 0.0))
        for label, n in (("control", 200), ("IFNB", 150)):
            mean = base.copy()
            if label == "IFNB":
                mean[responders] *= np.exp(e)
            library = rng.lognormal(0, 0.3, size=(n, 1))
            blocks.append(rng.poisson(mean * library, size=(n, n_genes)))
            labels += [label] * n
            types += [f"type_{t}"] * n
    adata = ad.AnnData(
        sp.csr_matrix(np.vstack(blocks).astype(np.float32)),
        obs=pd.DataFrame({"stim": labels, "cell_type": types}),
        var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]),
    )
    adata.obs_names = [f"c{i}" for i in range(adata.n_obs)]
    return adata


def log_normalised(x) -> np.ndarray:
    x = np.asarray(x.toarray() if sp.issparse(x) else x)
    return np.log1p(x / x.sum(1, keepdims=True) * 1e4)


def run(kind: str, model_kwargs: dict) -> list[dict]:
    rows = []
    for held in ["type_0", "type_5"]:
        adata = simulate(kind)
        sxdiff.pp.ood_split(
            adata, "unseen_context", [held], perturbation_key="stim", control_value="control", context_key="cell_type"
        )
        sxdiff.model.StateXDiff.setup_anndata(
            adata, perturbation_key="stim", control_value="control", context_key="cell_type"
        )
        torch.manual_seed(0)
        model = sxdiff.model.StateXDiff(adata, **SMALL, **model_kwargs)
        start = time.time()
        model.train(train_steps=800, split_key="sxdiff_split", enable_progress_bar=False)
        seconds = time.time() - start
        logged = log_normalised(adata.X)
        stimulated = (adata.obs["stim"] == "IFNB").to_numpy()
        types = adata.obs["cell_type"].to_numpy()

        def shift(mask, logged=logged, stimulated=stimulated):
            return logged[mask & stimulated].mean(0) - logged[mask & ~stimulated].mean(0)

        query = types == held
        controls = adata[query & ~stimulated].copy()
        predicted = model.predict(controls, conditions=["IFNB"], seed=0)
        true = shift(query)
        change = log_normalised(predicted.X).mean(0) - logged[query & ~stimulated].mean(0)
        mean_shift = shift(~query)
        centres = {t: logged[(types == t) & ~stimulated].mean(0) for t in np.unique(types)}
        nearest = min((t for t in centres if t != held), key=lambda t: ((centres[t] - centres[held]) ** 2).sum())
        top = np.argsort(-np.abs(true))[:50]

        def r(v, top=top, true=true):
            return round(float(np.corrcoef(v[top], true[top])[0, 1]), 3)

        rows.append(
            {
                "held_out": held,
                "model": r(change),
                "mean_shift": r(mean_shift),
                "nearest_type_shift": r(shift(types == nearest)),
                "mse_model": round(float(((change - true) ** 2).mean()), 4),
                "mse_mean_shift": round(float(((mean_shift - true) ** 2).mean()), 4),
                "nu_scores": getattr(model, "context_transfer_", None),
                "nu": float(model.module.composer.context_transfer),
                "seconds": round(seconds),
            }
        )
    return rows


if __name__ == "__main__":
    kwargs = ast.literal_eval(sys.argv[2]) if len(sys.argv) > 2 else {}
    for row in run(sys.argv[1], kwargs):
        print(sys.argv[1], kwargs, row, flush=True)
