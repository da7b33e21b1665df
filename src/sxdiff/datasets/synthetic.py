"""Synthetic perturbation data with a known ground truth, for unit tests of effect recovery.

Not a benchmark of biology: real data is bundled for that (:mod:`sxdiff.datasets`).
:func:`sparse_state_response` is a shape test instead (many genes, sparse, log-normalised, a
state-dependent response), and :func:`sciplex3_standin` runs sci-Plex3's large-data workflow (tutorial 06)
without its 2.5 GB download. The generative model of :func:`perturbation_data`:

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
from scipy.stats import norm

from ._sciplex3_standin import sciplex3_standin

__all__ = ["drug_table", "expected_log_mean", "perturbation_data", "sciplex3_standin", "sparse_state_response"]


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


def _with_symbols(genes: np.ndarray, symbols: Sequence[str], markers: np.ndarray, unaffected: np.ndarray) -> np.ndarray:
    """Give ``symbols`` to genes: alternately the next state's next marker and the next unaffected gene."""
    if len(set(symbols)) != len(symbols) or set(symbols) & set(genes.tolist()):
        raise ValueError("`gene_symbols` must be distinct and must not look like the generated names `gene_<i>`.")
    n_marker_symbols, n_other_symbols = (len(symbols) + 1) // 2, len(symbols) // 2
    if n_marker_symbols > markers.size or n_other_symbols > len(unaffected):
        raise ValueError(
            f"{len(symbols)} `gene_symbols` are too many for {markers.size} marker genes and {len(unaffected)} "
            "unaffected genes; give fewer symbols."
        )
    renamed = genes.astype(object)
    marker_order = markers.T.ravel()  # state 0's first marker, state 1's first marker, ...
    for i, symbol in enumerate(symbols):
        renamed[marker_order[i // 2] if i % 2 == 0 else unaffected[i // 2]] = symbol
    return renamed.astype(str)


def sparse_state_response(
    n_genes: int = 5000,
    n_contexts: int = 4,
    n_states: int = 2,
    n_perturbations: int = 3,
    n_cells_per_condition: int = 150,
    n_control_cells: int = 250,
    state_fractions: np.ndarray | Sequence[Sequence[float]] | None = None,
    n_marker_genes: int = 100,
    n_programme_genes: int = 100,
    effect_size: float = 1.0,
    shared_effect_size: float = 0.5,
    library_size: float = 800.0,
    target_sum: float = 1000.0,
    dispersion: float = 5.0,
    gene_symbols: Sequence[str] = (),
    seed: int = 0,
) -> ad.AnnData:
    """Sparse log-normalised data over many genes in which cell states respond differently to a perturbation.

    Each context (a cell line) is a mixture of ``n_states`` cell states that occur in every context, in
    proportions that differ between contexts. Each perturbation is a CRISPRi knock-down of one gene
    (its label is the gene's name) that:

    - lowers its target to a quarter in every state;
    - moves a programme of ``n_programme_genes`` genes by ``effect_size`` (log scale) in opposite
      directions in different states: with two states, up in one and down in the other (with more,
      evenly spaced between ``+effect_size`` and ``-effect_size``);
    - moves ``n_programme_genes // 4`` further genes by ``shared_effect_size`` in every state.

    A context's average response therefore depends on its state composition: the mean shift of the
    other contexts gets the programme's direction wrong where the held-out context is dominated by the
    other state, and a state-matched shift (each state's change applied to the query's cells of that
    state) gets it right. Counts are negative binomial with a heavy-tailed gene profile (about 800
    counts per cell over 5,000 genes: about 92 % zeros), normalised to ``target_sum`` per cell and
    log1p-transformed; no counts are kept.

    Parameters
    ----------
    n_genes
        Number of genes (``gene_0``, ...).
    n_contexts
        Number of contexts (``line_0``, ...).
    n_states
        Cell states per context (``state_0``, ...), at least 2.
    n_perturbations
        Number of knock-downs.
    n_cells_per_condition
        Perturbed cells per (context, perturbation).
    n_control_cells
        Control cells per context.
    state_fractions
        ``(n_contexts, n_states)`` proportions of the states in each context (rows sum to 1). Default:
        context ``c`` is 70-85 % state ``c % n_states``, the rest spread evenly over the other states.
    n_marker_genes
        Genes that mark each state (3-fold higher in it), so that states can be told apart in control cells.
    n_programme_genes
        Genes of each perturbation's state-dependent programme.
    effect_size
        Log-fold change of the programme in the states that respond most.
    shared_effect_size
        Log-fold change of the shared (state-independent) genes.
    library_size
        Mean counts per cell before normalisation.
    target_sum
        Total per cell after normalisation (before ``log1p``).
    dispersion
        Negative-binomial inverse dispersion.
    gene_symbols
        Real gene symbols to give some genes instead of ``gene_<i>``, alternately to a marker gene of each
        state in turn and to one of the best-expressed genes that nothing affects. A protein context computed
        from their mRNA (:func:`sxdiff.pp.protein_context`) then carries state information for some proteins
        and only noise for others. Renaming changes no value: the data are otherwise identical.
    seed
        Random seed; the data are a deterministic function of the arguments.

    Returns
    -------
    AnnData with log1p-normalised values in ``X`` (sparse CSR, float32); ``obs["perturbation"]`` (target
    gene or ``"control"``), ``obs["dose"]`` (``"1"``; ``"0"`` for controls), ``obs["context"]``,
    ``obs["cell_state"]`` (the true state), ``obs["perturbation_type"]`` (``"CRISPRi"`` / ``"control"``),
    ``obs["is_control"]``; ``uns["sxdiff"]`` with ``expression_scale="log1p"``; and
    ``uns["synthetic_truth"]``: ``state_fractions``, ``state_response`` (``n_perturbations x n_states``
    signs times ``effect_size``), ``log_fold_changes`` (``n_perturbations x n_states x n_genes``),
    ``programmes``, ``shared_genes``, ``markers`` and ``perturbations``.

    Examples
    --------
    >>> adata = sparse_state_response(seed=0)
    >>> adata.shape
    (2800, 5000)
    >>> round(1 - adata.X.nnz / (adata.n_obs * adata.n_vars), 2)  # fraction of zeros
    0.92
    >>> adata.uns["synthetic_truth"]["state_response"].shape  # perturbations x states
    (3, 2)
    """
    if n_states < 2:
        raise ValueError(f"`n_states` must be at least 2 for a state-dependent response; got {n_states}.")
    n_shared = n_programme_genes // 4
    needed = n_states * n_marker_genes + n_perturbations * (1 + n_programme_genes + n_shared)
    if needed + needed // 4 > n_genes:
        raise ValueError(
            f"{n_genes} genes are too few for {n_states} x {n_marker_genes} markers and {n_perturbations} "
            f"programmes of {n_programme_genes} genes; use at least {needed + needed // 4} genes or smaller programmes."
        )
    rng = np.random.default_rng(seed)
    genes = np.array([f"gene_{g}" for g in range(n_genes)])
    contexts = [f"line_{c}" for c in range(n_contexts)]
    states = [f"state_{s}" for s in range(n_states)]
    if state_fractions is None:
        dominant = rng.uniform(0.7, 0.85, size=n_contexts)
        fractions = np.repeat(((1 - dominant) / (n_states - 1))[:, None], n_states, axis=1)
        fractions[np.arange(n_contexts), np.arange(n_contexts) % n_states] = dominant
    else:
        fractions = np.asarray(state_fractions, dtype=float)
        if fractions.shape != (n_contexts, n_states) or not np.allclose(fractions.sum(axis=1), 1.0):
            raise ValueError(
                f"`state_fractions` must be {n_contexts} x {n_states} with rows summing to 1; got shape "
                f"{fractions.shape}."
            )

    # heavy-tailed gene profile (log-normal quantiles, in random gene order): most genes are rarely detected
    log_profile = 2.2 * rng.permutation(norm.ppf((np.arange(n_genes) + 0.5) / n_genes))
    log_profile -= np.log(np.exp(log_profile).sum())
    # markers, targets and programmes among the better-expressed genes, disjoint
    pool = np.argsort(-log_profile)[: needed + needed // 4]
    chosen = rng.permutation(pool)[:needed]
    markers = chosen[: n_states * n_marker_genes].reshape(n_states, n_marker_genes)
    rest = chosen[n_states * n_marker_genes :].reshape(n_perturbations, 1 + n_programme_genes + n_shared)
    targets, programmes, shared = rest[:, 0], rest[:, 1 : 1 + n_programme_genes], rest[:, 1 + n_programme_genes :]
    by_expression = np.argsort(-log_profile)
    unaffected = by_expression[~np.isin(by_expression, chosen)]
    genes = _with_symbols(genes, gene_symbols, markers, unaffected)

    state_log_mean = np.zeros((n_states, n_genes))
    for s in range(n_states):
        state_log_mean[s, markers[s]] = np.log(3.0)
    context_log_mean = rng.normal(0.0, 0.05, size=(n_contexts, n_genes))
    state_response = np.array([rng.permutation(np.linspace(1.0, -1.0, n_states)) for _ in range(n_perturbations)])
    state_response *= effect_size
    log_fold = np.zeros((n_perturbations, n_states, n_genes))
    for p in range(n_perturbations):
        log_fold[p][:, programmes[p]] = state_response[p][:, None]
        log_fold[p][:, shared[p]] = shared_effect_size * rng.choice([-1.0, 1.0])
        log_fold[p][:, targets[p]] = np.log(0.25)
    perturbations = [str(genes[t]) for t in targets]

    blocks, rows = [], []
    for c, context in enumerate(contexts):
        for p, perturbation in enumerate(["control", *perturbations]):
            n = n_control_cells if p == 0 else n_cells_per_condition
            cell_states = rng.choice(n_states, size=n, p=fractions[c])
            log_mean = np.log(library_size) + log_profile + context_log_mean[c] + state_log_mean[cell_states]
            if p > 0:
                log_mean = log_mean + log_fold[p - 1][cell_states]
            size_factor = np.exp(rng.normal(0.0, 0.3, size=(n, 1)))
            counts = rng.poisson(rng.gamma(dispersion, size_factor * np.exp(log_mean) / dispersion))
            totals = np.maximum(counts.sum(axis=1, keepdims=True), 1)
            blocks.append(sp.csr_matrix(np.log1p(counts * (target_sum / totals)).astype(np.float32)))
            dose = "0" if p == 0 else "1"
            rows += [(perturbation, dose, context, states[s]) for s in cell_states]
    obs = pd.DataFrame(rows, columns=["perturbation", "dose", "context", "cell_state"])
    obs.index = [f"cell_{i}" for i in range(len(obs))]
    obs["perturbation_type"] = np.where(obs["perturbation"] == "control", "control", "CRISPRi")
    obs["is_control"] = obs["perturbation"] == "control"
    for column in ("perturbation", "context", "cell_state", "perturbation_type"):
        obs[column] = pd.Categorical(obs[column])
    adata = ad.AnnData(sp.vstack(blocks, format="csr"), obs=obs, var=pd.DataFrame(index=genes))
    adata.uns["synthetic_truth"] = {
        "contexts": np.array(contexts),
        "states": np.array(states),
        "perturbations": np.array(perturbations),
        "state_fractions": fractions,
        "state_response": state_response,
        "log_fold_changes": log_fold,
        "programmes": genes[programmes],
        "shared_genes": genes[shared],
        "markers": genes[markers],
    }
    adata.uns["sxdiff"] = {
        "dataset": "synthetic_sparse",
        "perturbation_key": "perturbation",
        "control_value": "control",
        "dose_key": "dose",
        "dose_unit": "guides",
        "context_key": "context",
        "expression_scale": "log1p",
        "target_sum": target_sum,
        "source": f"sxdiff.datasets.synthetic.sparse_state_response(seed={seed})",
    }
    return adata
