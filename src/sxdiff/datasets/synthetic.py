"""Synthetic perturbation data with a known ground truth, for unit tests of effect recovery.

Not a benchmark: real data is bundled for that (:mod:`sxdiff.datasets`). The generative model:

- each context ``c`` has its own baseline log-mean per gene and a response scale ``s_c``;
- genes fall into modules; each drug has signed target genes (inhibitor -1, activator +1) and
  shifts its targets by ``effect_size`` and the other genes of its targets' modules by half that;
- a drug at dose ``d`` acts with strength ``h(d) = d / (d + ec50)`` (per-drug ``ec50``);
- a combination adds its members' effects plus an interaction term on the union of their modules;
- counts are negative binomial (gamma-Poisson) around ``size_factor * exp(log-mean)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["drug_table", "expected_log_mean", "perturbation_data"]


def perturbation_data(
    n_genes: int = 200,
    n_contexts: int = 3,
    n_drugs: int = 8,
    n_combinations: int = 3,
    doses: Sequence[float] = (0.1, 1.0, 10.0),
    n_cells_per_condition: int = 30,
    n_control_cells: int = 120,
    n_targets_per_drug: int = 3,
    n_modules: int = 10,
    effect_size: float = 1.5,
    interaction_size: float = 0.5,
    dispersion: float = 10.0,
    n_batches: int = 2,
    seed: int = 0,
) -> ad.AnnData:
    """Simulate counts for controls, single drugs at several doses and two-drug combinations.

    Parameters
    ----------
    n_genes
        Number of genes (``gene_0``, ...).
    n_contexts
        Number of contexts (``context_0``, ...), each with its own baseline and response scale.
    n_drugs
        Number of single drugs (``drug_0``, ...).
    n_combinations
        Number of two-drug combinations (pairs of the single drugs, given at dose 1 each).
    doses
        Dose levels of the single drugs.
    n_cells_per_condition
        Cells per (context, perturbation, dose).
    n_control_cells
        Control cells per context.
    n_targets_per_drug
        Target genes per drug.
    n_modules
        Number of gene modules through which effects spread from targets.
    effect_size
        Log-fold change of a target at full strength in a context with scale 1.
    interaction_size
        Scale of the non-additive part of combinations.
    dispersion
        Negative-binomial inverse dispersion (larger: less noise).
    n_batches
        Batches per context (``obs["batch"]``); they do not change expression.
    seed
        Random seed.

    Returns
    -------
    AnnData with raw counts in ``X`` (sparse), the standard ``obs`` columns (``perturbation``,
    ``dose`` as strings like ``"1.0"`` / ``"1.0+1.0"``, ``context``, ``batch``, ``is_control``) and the
    ground truth in ``uns["synthetic_truth"]`` (baselines, effects, targets, modules, ec50,
    interactions), usable with :func:`expected_log_mean`.

    Examples
    --------
    >>> adata = perturbation_data(n_genes=50, n_drugs=4, n_combinations=1, seed=0)
    >>> adata.uns["synthetic_truth"]["effects"].shape
    (4, 50)
    """
    rng = np.random.default_rng(seed)
    genes = [f"gene_{g}" for g in range(n_genes)]
    drugs = [f"drug_{d}" for d in range(n_drugs)]
    contexts = [f"context_{c}" for c in range(n_contexts)]
    base = rng.normal(np.log(2.0), 1.0, size=n_genes)
    baselines = base + rng.normal(0.0, 0.5, size=(n_contexts, n_genes))
    scales = rng.uniform(0.6, 1.4, size=n_contexts)
    modules = rng.integers(0, n_modules, size=n_genes)

    effects = np.zeros((n_drugs, n_genes))
    targets: dict[str, list[str]] = {}
    signs: dict[str, list[int]] = {}
    for d in range(n_drugs):
        chosen = rng.choice(n_genes, size=n_targets_per_drug, replace=False)
        sign = int(rng.choice([-1, 1]))
        for g in chosen:
            effects[d, np.isin(modules, modules[g])] += 0.5 * sign * effect_size
        effects[d, chosen] = sign * effect_size
        targets[drugs[d]] = [genes[g] for g in chosen]
        signs[drugs[d]] = [sign] * n_targets_per_drug
    ec50 = np.exp(rng.uniform(np.log(0.3), np.log(3.0), size=n_drugs))

    pairs: list[tuple[int, int]] = []
    all_pairs = [(a, b) for a in range(n_drugs) for b in range(a + 1, n_drugs)]
    for i in rng.permutation(len(all_pairs))[:n_combinations]:
        pairs.append(all_pairs[i])
    interactions = np.zeros((len(pairs), n_genes))
    for k, (a, b) in enumerate(pairs):
        touched = (effects[a] != 0) | (effects[b] != 0)
        interactions[k, touched] = rng.normal(0.0, interaction_size, size=int(touched.sum()))

    truth = {
        "genes": np.array(genes),
        "drugs": np.array(drugs),
        "contexts": np.array(contexts),
        "baselines": baselines,
        "context_scale": scales,
        "effects": effects,
        "ec50": ec50,
        "modules": modules,
        "combinations": np.array([f"{drugs[a]}+{drugs[b]}" for a, b in pairs], dtype=object),
        "interactions": interactions,
        "targets": {k: np.array(v) for k, v in targets.items()},
        "target_signs": {k: np.array(v) for k, v in signs.items()},
    }

    conditions: list[tuple[str, str, str, int]] = []  # (context, perturbation, dose, n)
    for context in contexts:
        conditions.append((context, "control", "0", n_control_cells))
        for drug in drugs:
            for dose in doses:
                conditions.append((context, drug, f"{float(dose)}", n_cells_per_condition))
        for combination in truth["combinations"]:
            conditions.append((context, combination, "1.0+1.0", n_cells_per_condition))

    blocks, rows = [], []
    for context, perturbation, dose, n in conditions:
        members = [] if perturbation == "control" else perturbation.split("+")
        dose_values = [float(x) for x in dose.split("+")] if members else []
        log_mean = expected_log_mean(truth, context, members, dose_values)
        size_factor = np.exp(rng.normal(0.0, 0.2, size=(n, 1)))
        mean = size_factor * np.exp(log_mean)[None, :]
        counts = rng.poisson(rng.gamma(dispersion, mean / dispersion))
        blocks.append(counts.astype(np.float32))
        for _ in range(n):
            rows.append((perturbation, dose, context, f"{context}_batch_{int(rng.integers(n_batches))}"))
    obs = pd.DataFrame(rows, columns=["perturbation", "dose", "context", "batch"])
    obs.index = [f"cell_{i}" for i in range(len(obs))]
    obs["is_control"] = obs["perturbation"] == "control"
    for column in ("perturbation", "context", "batch"):
        obs[column] = pd.Categorical(obs[column])
    adata = ad.AnnData(sp.csr_matrix(np.vstack(blocks)), obs=obs, var=pd.DataFrame(index=genes))
    adata.uns["synthetic_truth"] = truth
    adata.uns["sxdiff"] = {
        "dataset": "synthetic",
        "perturbation_key": "perturbation",
        "control_value": "control",
        "dose_key": "dose",
        "context_key": "context",
        "batch_key": "batch",
        "expression_scale": "counts",
        "source": f"sxdiff.datasets.synthetic.perturbation_data(seed={seed})",
    }
    return adata


def drug_table(adata: ad.AnnData) -> pd.DataFrame:
    """The simulated drugs' true targets and actions, as a table for :func:`sxdiff.pp.drug_features`.

    Examples
    --------
    >>> adata = perturbation_data(n_genes=20, n_drugs=2, n_combinations=0, seed=0)
    >>> list(drug_table(adata).columns)
    ['drug', 'targets', 'action']
    """
    truth = adata.uns["synthetic_truth"]
    drugs = [str(d) for d in truth["drugs"]]
    return pd.DataFrame(
        {
            "drug": drugs,
            "targets": ["|".join(truth["targets"][d]) for d in drugs],
            "action": ["|".join("INHIBITOR" if s < 0 else "AGONIST" for s in truth["target_signs"][d]) for d in drugs],
        }
    )


def expected_log_mean(truth: dict, context: str, perturbations: Sequence[str], doses: Sequence[float]) -> np.ndarray:
    """Noise-free log-mean expression of a context under a perturbation set (empty for control).

    Parameters
    ----------
    truth
        ``adata.uns["synthetic_truth"]`` of :func:`perturbation_data`.
    context
        Context name.
    perturbations
        Drug names (empty for control).
    doses
        One dose per drug.

    Returns
    -------
    Array of length ``n_genes``; subtract the control's to get the true log-fold change.
    """
    contexts = list(truth["contexts"])
    drugs = list(truth["drugs"])
    c = contexts.index(context)
    log_mean = np.array(truth["baselines"][c], dtype=float)
    delta = np.zeros_like(log_mean)
    for drug, dose in zip(perturbations, doses, strict=True):
        d = drugs.index(drug)
        delta += truth["effects"][d] * dose / (dose + truth["ec50"][d])
    if len(perturbations) > 1:
        key = "+".join(perturbations)
        combinations = list(truth["combinations"])
        if key in combinations:
            delta += truth["interactions"][combinations.index(key)]
    return log_mean + truth["context_scale"][c] * delta
