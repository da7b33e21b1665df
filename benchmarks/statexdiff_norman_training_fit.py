"""Why StateXDiff misses the additive baseline on Norman combinations: how well it fits the training singles.

Command (repository root, after `make install`):

    .venv/bin/python benchmarks/statexdiff_norman_training_fit.py

Trains StateXDiff exactly as `sxdiff benchmark` does on the Norman unseen-combination fold (defaults,
knowledge-proxy protein context, seed 0) and scores, for every perturbation of the data - the training
singles and combinations and the held-out combinations - the top-50-DEG Pearson of its predicted change
against the observed change (the same real controls), next to the split-half ceiling of that perturbation and
the additive baseline (sum of the measured single changes). "heads only" predicts with the diffusion residual
set to zero, which shows how much of the mean prediction the diffusion carries. Writes
benchmarks/results/statexdiff_norman_training_fit.md.
"""

from __future__ import annotations

import logging
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import sxdiff
import sxdiff.module._statexdiff as statexdiff_module
from sxdiff.benchmark import PROTEIN_PANEL, TASKS
from sxdiff.metrics import ceiling, pearson_delta
from sxdiff.model import AdditiveBaseline

RESULTS = Path(__file__).resolve().parent / "results"


def main(seed: int = 0) -> None:
    warnings.filterwarnings("ignore")
    import scvi

    scvi.settings.verbosity = logging.ERROR
    for name in ("scvi", "lightning", "lightning.pytorch", "sxdiff.drugs"):
        logging.getLogger(name).setLevel(logging.ERROR)
    start = time.perf_counter()
    task = TASKS["norman_unseen_combinations"]
    fold = next(task.folds(seed=0))
    adata = fold.adata.copy()
    sxdiff.pp.drug_features(adata, drug_key="perturbation", allow_structure_free=True)
    sxdiff.pp.protein_context(adata, proteins=list(PROTEIN_PANEL))
    sxdiff.model.StateXDiff.setup_anndata(
        adata, perturbation_key="perturbation", control_value="control", dose_key="dose", context_key="context",
        protein_obsm_key="sxdiff_protein",
    )  # fmt: skip
    torch.manual_seed(seed)
    model = sxdiff.model.StateXDiff(adata)
    model.train(split_key="sxdiff_split", seed=seed, enable_progress_bar=False)
    train_cells = adata[(adata.obs["sxdiff_split"].astype(str) != "test").to_numpy()]
    additive = AdditiveBaseline(dose_key="dose", context_key="context").fit(train_cells)
    sources = adata[adata.obs["is_control"].to_numpy()]
    control = np.asarray(sources.X.mean(0)).ravel()
    labels = sorted(set(adata.obs["perturbation"].astype(str)) - {"control"})
    split = adata.obs["sxdiff_split"].astype(str)
    rows = []
    original_sampler = statexdiff_module.ddim_sample
    for label in labels:
        cells = adata[(adata.obs["perturbation"].astype(str) == label).to_numpy()]
        condition = pd.DataFrame({"perturbation": [label], "dose": [str(cells.obs["dose"].iloc[0])]})
        truth = np.asarray(cells.X.mean(0)).ravel()
        row = {"perturbation": label, "kind": "combination" if "+" in label else "single"}
        row["split"] = "test" if (split[cells.obs_names] == "test").all() else "train"
        row["cells"] = cells.n_obs
        row["ceiling"] = (
            ceiling(cells, sources, distances=False, n_repeats=5).set_index("metric").at["pearson_delta_top50", "value"]
        )
        row["StateXDiff"] = pearson_delta(
            np.asarray(model.predict(sources, condition, seed=seed).X.mean(0)).ravel(), truth, control, top_k=50
        )
        statexdiff_module.ddim_sample = lambda velocity, schedule, noise, n_steps: torch.zeros_like(noise)
        try:
            heads = np.asarray(model.predict(sources, condition, seed=seed).X.mean(0)).ravel()
        finally:
            statexdiff_module.ddim_sample = original_sampler
        row["heads_only"] = pearson_delta(heads, truth, control, top_k=50)
        row["additive"] = pearson_delta(
            np.asarray(additive.predict(sources, condition).X.mean(0)).ravel(), truth, control, top_k=50
        )
        row["max_abs_change"] = float(np.abs(truth - control).max())
        rows.append(row)
    table = pd.DataFrame(rows)
    elapsed = time.perf_counter() - start
    singles = table[(table["kind"] == "single")]
    strong = singles["max_abs_change"] >= singles["max_abs_change"].median()
    test = table[table["split"] == "test"]
    lines = [
        "# StateXDiff on Norman CRISPRa: fit of every perturbation, training and held out",
        "",
        "Command: `.venv/bin/python benchmarks/statexdiff_norman_training_fit.py`  ",
        f"sxdiff {sxdiff.__version__}, Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPU cores; {elapsed:.0f} s in all. Seed {seed}, default settings, as in `sxdiff benchmark`.",
        "",
        "Top-50-DEG Pearson of the predicted vs the observed change (controls of the context as reference). "
        "For training perturbations the 'prediction' is of data the model was trained on (and the additive "
        "baseline of a single is its own observed mean: 1 by construction).",
        "",
        f"- Training singles, strongest half by max |change|: StateXDiff {singles[strong]['StateXDiff'].mean():.3f}, "
        f"ceiling {singles[strong]['ceiling'].mean():.3f}.",
        f"- Training singles, weakest half: StateXDiff {singles[~strong]['StateXDiff'].mean():.3f}, "
        f"ceiling {singles[~strong]['ceiling'].mean():.3f}.",
        f"- Held-out combinations: StateXDiff {test['StateXDiff'].mean():.3f}, additive {test['additive'].mean():.3f}, "
        f"ceiling {test['ceiling'].mean():.3f}.",
        f"- Heads only vs full sampling, mean absolute difference over all perturbations: "
        f"{(table['StateXDiff'] - table['heads_only']).abs().mean():.3f}.",
        "",
        "| perturbation | kind | split | cells | max abs true change | ceiling | StateXDiff | heads only | additive |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.sort_values(["split", "kind", "max_abs_change"]).itertuples(index=False):
        lines.append(
            f"| {r.perturbation} | {r.kind} | {r.split} | {r.cells} | {r.max_abs_change:.3f} | {r.ceiling:.3f} | "
            f"{r.StateXDiff:.3f} | {r.heads_only:.3f} | {r.additive:.3f} |"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "statexdiff_norman_training_fit.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:12]))


if __name__ == "__main__":
    main()
