"""``sxdiff benchmark``: datasets x folds x methods x seeds, with the ceiling, the null floor and ablations."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC
from pathlib import Path
from typing import Literal

import pandas as pd

from sxdiff.metrics import PCASpace, ceiling, evaluate, interaction_limits, interaction_metrics, null_floor

from ._run import METHODS, predict_fold
from ._statexdiff_fold import predict_fold_statexdiff
from ._tasks import TASK_GROUPS, TASKS, Fold, Task, ensure_drug_features, training_pca_space

__all__ = ["ABLATIONS", "PROFILES", "BenchmarkResult", "Profile", "run_benchmark"]

logger = logging.getLogger(__name__)

# Model arguments of each ablation (DESIGN §3.4): every component of StateXDiff switched off in turn.
ABLATIONS: dict[str, dict] = {
    "no_protein": {"use_protein": False},
    "no_reliability": {"reliability_weighting": False},
    "no_triplet": {"triplet_weight": 0.0},
    "structure_only": {"drug_template": "structure"},
    "targets_only": {"drug_template": "targets"},
    "mlp_denoiser": {"denoiser": "mlp"},
    "additive_composition": {"composition": "additive"},
    "pooled_composition": {"composition": "pooled"},
    "no_state_effects": {"state_effects": False},
    "no_identities": {"perturbation_identities": False},
    "no_state_anchors": {"state_anchors": 0},
    "full_variation": {"variation_scale": 1.0},
    "full_state_spread": {"state_spread": 1.0},
    "no_measured_effects": {"measured_effects": "off"},
    "shrunk_measured_effects": {"measured_effects": "shrunk"},
    "context_transfer_auto": {"context_transfer": "auto"},
}

MODEL = "StateXDiff"


@dataclass(frozen=True)
class Profile:
    """What a benchmark run covers.

    Attributes
    ----------
    tasks
        Names in :data:`~sxdiff.benchmark.TASKS` to run (``None``: all of them).
    seeds
        Seeds of StateXDiff (training and sampling) per fold; the baselines are deterministic and run once.
    folds_per_task
        First ``n`` folds of each task (``None``: all).
    train_steps
        StateXDiff gradient-step budget (``None``: the model's default, about 2,000 steps).
    ablations
        Names in :data:`ABLATIONS`, run on the first ``ablation_folds`` folds of each task with the first seed.
    ceiling_repeats
        Random half splits of the split-half ceiling and the null floor.
    translator_cv
        Also run the ProteinTranslator cross-validation (needs ``citeseq``).
    """

    name: str
    tasks: tuple[str, ...] | None = None
    seeds: tuple[int, ...] = (0,)
    folds_per_task: int | None = None
    train_steps: int | None = None
    ablations: tuple[str, ...] = ()
    ablation_folds: int = 1
    ceiling_repeats: int = 5
    translator_cv: bool = False
    predict_steps: int = 10


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        "quick", tasks=TASK_GROUPS["core"], seeds=(0,), folds_per_task=1, train_steps=400, ceiling_repeats=3
    ),
    "full": Profile(
        "full", seeds=(0, 1, 2), folds_per_task=None, ablations=tuple(ABLATIONS), ablation_folds=1, translator_cv=True
    ),
}


@dataclass
class BenchmarkResult:
    """Everything a benchmark run measured.

    Attributes
    ----------
    scores
        Tidy metrics: ``task``, ``fold``, ``seed``, ``method``, ``context``, ``condition``, ``metric``,
        ``value``, ``n_true_cells``. ``method`` includes ``"ceiling"`` and ``"null_floor"`` (condition
        ``"null"``) and ablations as ``"StateXDiff[<ablation>]"``.
    seconds
        Wall-clock seconds per (task, method), summed over folds and seeds.
    profile
        The settings of the run.
    translator
        Per-protein ProteinTranslator cross-validation, when run.
    """

    scores: pd.DataFrame
    seconds: pd.DataFrame
    profile: Profile
    translator: pd.DataFrame | None = None
    metadata: dict = field(default_factory=dict)


def _tidy(table: pd.DataFrame, task: Task, fold: Fold, seed: int | str, method: str) -> pd.DataFrame:
    table = table.copy()
    table.insert(0, "method", method)
    table.insert(0, "seed", seed)
    table.insert(0, "fold", fold.name)
    table.insert(0, "task", task.name)
    return table


#: Method name of the rows holding each measured pair's interaction strength (``interaction_snr``, ...).
INTERACTION = "pair_interaction"


def _training_cells(fold: Fold):
    return fold.adata[(fold.adata.obs["sxdiff_split"].astype(str) != "test").to_numpy()]


def _score(task: Task, fold: Fold, predictions, space: PCASpace, seed, method: str) -> pd.DataFrame:
    tables = []
    keys = {"dose_key": task.dose_key, "context_key": task.context_key}
    for _, pred, truth, source in predictions:
        tables.append(evaluate(pred, truth, source, pca_reference=space, seed=0, **keys))
        if truth.obs["perturbation"].astype(str).str.contains("+", regex=False).any():
            tables.append(interaction_metrics(pred, truth, _training_cells(fold), source, **keys))
    return _tidy(pd.concat([t for t in tables if len(t)], ignore_index=True), task, fold, seed, method)


def _evaluation_sizes(truth, task: Task) -> tuple[dict[str, float], dict[str, int]]:
    """Median true cells per condition and number of conditions, per context: the null floor's part sizes."""
    keys = ["perturbation"] + ([task.dose_key] if task.dose_key else [])
    frame = truth.obs[[task.context_key, *keys]].astype(str)
    counts = frame.groupby([task.context_key, *keys], observed=True).size().groupby(level=0, observed=True)
    return counts.median().to_dict(), counts.size().to_dict()


def _limits(task: Task, fold: Fold, predictions, space: PCASpace, repeats: int) -> list[pd.DataFrame]:
    keys = {"dose_key": task.dose_key, "context_key": task.context_key, "pca_reference": space}
    out = []
    for context, _, truth, source in predictions:
        try:
            out.append(_tidy(ceiling(truth, source, n_repeats=repeats, **keys), task, fold, "-", "ceiling"))
        except ValueError as error:  # e.g. L1000: one well per condition, nothing to split in halves
            logger.warning("No split-half ceiling for %s, context %s: %s", task.name, context, error)
        n_true, n_conditions = _evaluation_sizes(truth, task)
        floor = null_floor(
            source,
            n_repeats=repeats,
            context_key=task.context_key,
            pca_reference=space,
            n_true_cells=n_true,
            n_conditions=n_conditions,
        )
        out.append(_tidy(floor, task, fold, "-", "null_floor"))
        if truth.obs["perturbation"].astype(str).str.contains("+", regex=False).any():
            up, down, strength = interaction_limits(
                truth,
                _training_cells(fold),
                source,
                dose_key=task.dose_key,
                context_key=task.context_key,
                n_repeats=repeats,
            )
            for table, method in ((up, "ceiling"), (down, "null_floor"), (strength, INTERACTION)):
                if len(table):
                    out.append(_tidy(table, task, fold, "-", method))
    return out


def run_benchmark(
    profile: Literal["quick", "full"] | Profile = "quick",
    *,
    tasks: Sequence[str] | None = None,
    methods: Sequence[str] = tuple(METHODS),
    include_model: bool = True,
    seeds: Sequence[int] | None = None,
    ablations: Sequence[str] | None = None,
    train_steps: int | None = None,
    citeseq: str | Path | None = None,
    out: str | Path | None = None,
    command: str | None = None,
) -> BenchmarkResult:
    """Run the out-of-distribution benchmark: every method on every fold of every task, scored per condition.

    For each fold: the baselines (deterministic, once) and StateXDiff (once per seed) are fitted on the
    training cells and predict the held-out conditions from the real control cells of each test context;
    :func:`sxdiff.metrics.evaluate` scores them in one PCA space fitted on the fold's training cells; the
    split-half :func:`~sxdiff.metrics.ceiling` and the :func:`~sxdiff.metrics.null_floor` are computed from
    the same test cells. Ablations retrain StateXDiff with one component switched off.

    Parameters
    ----------
    profile
        ``"quick"`` (the three core tasks, one fold each, one seed, 400 training steps, no ablations: 70 s
        measured on 2 CPU cores), ``"full"`` (every task in :data:`~sxdiff.benchmark.TASKS`, all folds, 3
        seeds, default training, all ablations on the first fold of each task, translator cross-validation;
        84 min measured on the three core tasks), or a :class:`Profile`.
    tasks
        Names in :data:`sxdiff.benchmark.TASKS` (default: the profile's).
    methods
        Baselines to run (names in :data:`sxdiff.benchmark.METHODS`).
    include_model
        Train and score StateXDiff (and its ablations).
    seeds, ablations, train_steps
        Override the profile's.
    citeseq
        Path of the paired CITE-seq reference (``.h5mu``) for the translator cross-validation.
    out
        Folder for ``scores.csv``, ``summary.csv``, ``paired_tests.csv``, ``seconds.csv`` and ``report.md``.
    command
        How the run was started, written into the report.

    Returns
    -------
    :class:`BenchmarkResult`.

    Examples
    --------
    >>> result = run_benchmark("quick", out="benchmark_quick")  # doctest: +SKIP
    >>> print(open("benchmark_quick/report.md").read())  # doctest: +SKIP
    """
    chosen = PROFILES[profile] if isinstance(profile, str) else profile
    overrides = {"seeds": tuple(seeds) if seeds is not None else None, "train_steps": train_steps}
    overrides["ablations"] = tuple(ablations) if ablations is not None else None
    chosen = replace(chosen, **{k: v for k, v in overrides.items() if v is not None})
    tasks = list(TASKS if chosen.tasks is None else chosen.tasks) if tasks is None else list(tasks)
    unknown = [t for t in tasks if t not in TASKS] + [m for m in methods if m not in METHODS]
    unknown += [a for a in chosen.ablations if a not in ABLATIONS]
    if unknown:
        raise ValueError(
            f"Unknown task/method/ablation {unknown}; tasks: {list(TASKS)}, methods: {list(METHODS)}, "
            f"ablations: {list(ABLATIONS)}."
        )
    start = time.perf_counter()
    tables, seconds = [], []

    def timed(task_name: str, method: str, function, *args, **kwargs):
        tic = time.perf_counter()
        value = function(*args, **kwargs)
        seconds.append((task_name, method, time.perf_counter() - tic))
        return value

    for task_name in tasks:
        task = TASKS[task_name]
        folds = list(task.folds(seed=0))[: chosen.folds_per_task]
        for fold_number, fold in enumerate(folds):
            ensure_drug_features(fold.adata)
            space = training_pca_space(fold)
            reference = None
            for method in methods:
                logger.info("benchmark: %s fold %s, %s", task_name, fold.name, method)
                predictions = timed(task_name, method, predict_fold, task, fold, method)
                tables.append(_score(task, fold, predictions, space, "-", method))
                reference = predictions
            if reference is None:  # no baseline: the model's test cells give the limits below
                reference = predict_fold(task, fold, "control")
            tables += _limits(task, fold, reference, space, chosen.ceiling_repeats)
            if not include_model:
                continue
            runs = [(MODEL, seed, {}) for seed in chosen.seeds]
            if fold_number < chosen.ablation_folds:
                runs += [(f"{MODEL}[{name}]", chosen.seeds[0], ABLATIONS[name]) for name in chosen.ablations]
            for name, seed, kwargs in runs:
                logger.info("benchmark: %s fold %s, %s seed %d", task_name, fold.name, name, seed)
                predictions = timed(
                    task_name,
                    name,
                    predict_fold_statexdiff,
                    task,
                    fold,
                    seed=seed,
                    n_steps=chosen.predict_steps,
                    train_kwargs={"train_steps": chosen.train_steps},
                    **kwargs,
                )
                tables.append(_score(task, fold, predictions, space, seed, name))
    translator = None
    if chosen.translator_cv and citeseq is not None:
        from ._translator_cv import translator_cross_validation

        translator = timed("citeseq_translator_cv", "ProteinTranslator", translator_cross_validation, citeseq)
    elif chosen.translator_cv:
        logger.warning("Translator cross-validation skipped: pass `citeseq=` (a paired CITE-seq .h5mu).")
    scores = pd.concat(tables, ignore_index=True)
    time_table = pd.DataFrame(seconds, columns=["task", "method", "seconds"]).groupby(["task", "method"]).sum()
    result = BenchmarkResult(
        scores=scores,
        seconds=time_table.reset_index(),
        profile=chosen,
        translator=translator,
        metadata=_metadata(command, time.perf_counter() - start, tasks),
    )
    if out is not None:
        from ._report import write_results

        write_results(result, out)
    return result


def _metadata(command: str | None, seconds: float, tasks: Sequence[str]) -> dict:
    import os
    import platform
    from datetime import datetime

    import sxdiff

    return {
        "command": command or f"sxdiff.benchmark.run_benchmark(tasks={list(tasks)})",
        "sxdiff": sxdiff.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": seconds,
    }
