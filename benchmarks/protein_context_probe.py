"""Probe: where protein context moves the energy distance on the sparse task (issue #18).

For the first ``N`` folds of ``synthetic_sparse_unseen_context`` (seed 0), trains StateXDiff with the default
knowledge-proxy protein context and with ``use_protein=False`` (the benchmark's ``no_protein`` ablation), prints each
model's chosen variation scale (and the validation energy distance at each grid value), the protein gate's mean
weight, and scores the test conditions with the chosen variation scale and with the sampled residual off
(``variation0``), so that the mean prediction's part of the distance is separated from the cell-level part. For the
protein model, ``anchors_rna`` reads each source cell's nearest state anchor (:meth:`StateXDiffModule.anchor`) with
the protein view's dimensions (``u``) down-weighted by the proteins' mean reliability, at prediction only: per-dimension
standardisation otherwise gives the protein view, built from mostly unreliable features, a third of the distance.

``--rna-width`` adds ``no_protein_rna_width``: the RNA-only model with ``n_latent`` 11 instead of the default 16, i.e.
an RNA view of 33 of the state's 48 dimensions (the RNA-only model's view takes all 48; the protein model splits them
into shared, protein and RNA views of 16 each): whether the RNA view's width moves the energy distance.

``--no-reliability`` adds ``protein_no_reliability``: the protein model with ``reliability_weighting=False`` (the
benchmark's ``no_reliability`` ablation): whether the reliability gate keeps unreliable protein features out.

    python benchmarks/protein_context_probe.py 1 [--protein-only] [--rna-width] [--no-reliability]
"""

import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).parent))
from statexdiff_measured_effects_probe import score

from sxdiff.benchmark import TASKS
from sxdiff.benchmark._statexdiff_fold import train_fold_statexdiff
from sxdiff.module._state_anchors import nearest_anchor

METRICS = ["pearson_delta_top50", "mse_delta", "energy_distance"]
TASK = "synthetic_sparse_unseen_context"


def anchors_rna(model, adata, task, fold) -> pd.DataFrame:
    """Scores with the protein view's dimensions down-weighted (by the mean reliability) in the anchor distance."""
    module = model.module
    d = module.vmcs.n_latent
    weight = torch.ones_like(module.state_std)
    weight[d : 2 * d] = module.reliability[: module.vmcs.n_proteins].clamp(0, 1).mean()
    original = module.anchor

    def anchor(z):
        anchors = module.state_anchors[: int(module.n_anchors)]
        return nearest_anchor(z, anchors, module.state_std / weight)

    module.anchor = anchor
    try:
        return score(task, fold, model, adata, 0)
    finally:
        module.anchor = original


def main(n_folds: int, protein_only: bool, rna_width: bool, no_reliability: bool = False) -> None:
    task = TASKS[TASK]
    rows = []
    arms = [("protein", {})] + ([] if protein_only else [("no_protein", {"use_protein": False})])
    if rna_width:
        arms.append(("no_protein_rna_width", {"use_protein": False, "n_latent": 11}))
    if no_reliability:
        arms.append(("protein_no_reliability", {"reliability_weighting": False}))
    for fold in list(task.folds())[:n_folds]:
        for arm, kwargs in arms:
            start = time.perf_counter()
            model, adata = train_fold_statexdiff(task, fold, seed=0, **kwargs)
            vmcs = model.module.vmcs
            gate = float(vmcs.gate(vmcs.running_rho).mean()) if vmcs.use_protein else float("nan")
            print(
                f"{fold.name} {arm}: trained in {time.perf_counter() - start:.0f} s; variation scale "
                f"{ {k: round(v, 4) for k, v in model.variation_scale_.items()} }; mean gate a {gate:.3f}",
                flush=True,
            )
            rows.append(score(task, fold, model, adata, 0).assign(arm=arm, fold=fold.name))
            scale = float(model.module.variation_scale)
            model.module.set_variation_scale(0.0)
            rows.append(score(task, fold, model, adata, 0).assign(arm=f"{arm}, variation0", fold=fold.name))
            model.module.set_variation_scale(scale)
            if arm.startswith("protein"):
                rows.append(anchors_rna(model, adata, task, fold).assign(arm=f"{arm}, anchors_rna", fold=fold.name))
        scores = pd.concat(rows)
        means = scores[scores["metric"].isin(METRICS)].groupby(["arm", "metric"])["value"].mean().unstack()
        print(means[METRICS].round(4).to_string(), flush=True)


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 1,
        "--protein-only" in sys.argv,
        "--rna-width" in sys.argv,
        "--no-reliability" in sys.argv,
    )
