"""The benchmark's files: tidy CSVs and a markdown report with error bars, the ceiling and paired tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ._report_field import FIELD_METRICS, INTERACTION_METRICS, STRENGTH_METRICS, field_table, interaction_section
from ._statistics import paired_tests, summary_table

__all__ = ["REPORT_METRICS", "TARGETS", "render_report", "write_results"]

REPORT_METRICS = (
    "pearson_delta_top50",
    "pearson_delta_top20",
    "pearson_delta",
    "mse_delta",
    "r2_mean_top50",
    "deg_direction_top50",
    "energy_distance",
    "mmd",
)
LABELS = {
    "pearson_delta_top50": "top-50 r",
    "pearson_delta_top20": "top-20 r",
    "pearson_delta": "all-genes r",
    "mse_delta": "MSE",
    "r2_mean_top50": "R² top-50",
    "deg_direction_top50": "DEG sign",
    "energy_distance": "energy dist.",
    "mmd": "MMD",
}
TEST_METRICS = ("pearson_delta_top50", "energy_distance")

# The project's targets (issue #6): (task, metric, comparison, bar); a string bar names a baseline.
TARGETS = (  # issue #15 (the glioblastoma energy-distance bar is for the counts task)
    ("norman_unseen_combinations", "pearson_delta_top50", ">=", "additive"),
    ("norman_unseen_combinations", "mse_delta", "<=", "additive"),
    ("norman_unseen_combinations", "energy_distance", "<=", "additive"),
    ("glioblastoma_unseen_patient", "pearson_delta_top50", ">=", 0.70),
    ("glioblastoma_unseen_patient", "energy_distance", "<=", 2.5),
    ("l1000_unseen_drugs", "pearson_delta_top50", ">=", "mean_shift"),
    ("l1000_unseen_drugs", "pearson_delta_top50", ">=", "ridge"),
    ("mcfaline23_unseen_cell_line", "pearson_delta_top50", ">=", "mean_shift"),
    ("mcfaline23_unseen_cell_line", "pearson_delta_top50", ">=", "state_matched"),
    ("mcfaline23_unseen_cell_line", "mse_delta", "<=", "control"),  # log1p input: never worse than no change
    ("synthetic_sparse_unseen_context", "mse_delta", "<=", "control"),
    ("glioblastoma_unseen_patient_lognorm", "mse_delta", "<=", "control"),
)
MODEL = "StateXDiff"


def _fmt(value: float, digits: int = 3, style: str = "f") -> str:
    """``digits`` decimals (``style="f"``) or significant digits (``"g"``, for values such as MSEs of 0.0004)."""
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}{style}}"


def _model_rows(scores: pd.DataFrame) -> pd.DataFrame:
    """Scores of the main comparison: baselines, the full model, ceiling and floor (ablations excluded)."""
    return scores[~scores["method"].str.startswith(f"{MODEL}[")]


def _method_order(methods) -> list[str]:
    first = ["ceiling", "null_floor"]
    rest = sorted(m for m in methods if m not in first and not m.startswith(MODEL))
    models = sorted(m for m in methods if m.startswith(MODEL))
    return [m for m in first if m in methods] + rest + models


def _task_table(summary: pd.DataFrame, task: str) -> list[str]:
    rows = summary[summary["task"] == task]
    ceiling = rows[(rows["method"] == "ceiling")].set_index("metric")["mean"]
    header = ["method", *[LABELS[m] for m in REPORT_METRICS], "fraction of ceiling (top-50 r)", "conditions"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in _method_order(set(rows["method"])):
        mine = rows[rows["method"] == method].set_index("metric")
        cells = []
        for metric in REPORT_METRICS:
            if metric not in mine.index:
                cells.append("")
                continue
            mean, sd = mine.at[metric, "mean"], mine.at[metric, "sd"]
            cells.append(_fmt(mean) + (f" ± {_fmt(sd)}" if mine.at[metric, "n_seeds"] > 1 else ""))
        top = mine["mean"].get("pearson_delta_top50", np.nan)
        fraction = top / ceiling.get("pearson_delta_top50", np.nan) if method != "ceiling" else 1.0
        n = int(mine["n_conditions"].max()) if len(mine) else 0
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {_fmt(fraction, 2)} | {n} |")
    return lines


def _tests_table(tests: pd.DataFrame) -> list[str]:
    lines = [
        "| task | metric | vs | n | mean difference (+ = StateXDiff better) | StateXDiff better | p | p (Holm) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in tests.itertuples(index=False):
        lines.append(
            f"| {row.task} | {LABELS.get(row.metric, row.metric)} | {row.method} | {row.n} | "
            f"{_fmt(row.mean_difference)} | {row.reference_better}/{row.n} | {_fmt(row.p_value, 4)} | "
            f"{_fmt(row.p_holm, 4)} |"
        )
    return lines


def _targets(summary: pd.DataFrame) -> list[str]:
    lines = ["| task | metric | target | StateXDiff | met |", "|---|---|---|---|---|"]
    means = summary.set_index(["task", "method", "metric"])["mean"]
    for task, metric, comparison, bar in TARGETS:
        value = means.get((task, MODEL, metric), np.nan)
        if not np.isfinite(value):
            continue
        bar_value = means.get((task, bar, metric), np.nan) if isinstance(bar, str) else bar
        met = {">=": value >= bar_value, "<=": value <= bar_value, "<": value < bar_value}[comparison]
        style = "g" if metric == "mse_delta" else "f"  # MSEs of 0.0004 would print as 0.000
        bar_text = f"{bar} ({_fmt(bar_value, style=style)})" if isinstance(bar, str) else _fmt(bar_value, 2)
        shown = _fmt(value, style=style)
        lines.append(f"| {task} | {LABELS[metric]} | {comparison} {bar_text} | {shown} | {'yes' if met else 'no'} |")
    return lines


def _ablations(scores: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    variants = sorted(m for m in scores["method"].unique() if m.startswith(f"{MODEL}["))
    if not variants:
        return [], pd.DataFrame()
    keys = ["task", "fold", "seed"]
    used = scores[scores["method"].isin(variants)][keys].drop_duplicates()
    chosen = scores.merge(used, on=keys)
    chosen = chosen[chosen["method"].isin([MODEL, *variants])]
    summary = summary_table(chosen, REPORT_METRICS)
    lines = [
        "Ablations retrain StateXDiff with one component off, on the first fold of each task with the first seed; "
        "the full model's row is the same fold and seed.",
        "",
    ]
    for task in sorted(summary["task"].unique()):
        lines += [f"**{task}** (fold {', '.join(sorted(used[used['task'] == task]['fold'].unique()))})", ""]
        lines += [*_task_table(summary, task), ""]
    tests = paired_tests(chosen, MODEL, variants, TEST_METRICS)
    return lines, tests


def render_report(result) -> str:
    """The markdown report of a :class:`~sxdiff.benchmark.BenchmarkResult`."""
    scores, meta, profile = result.scores, result.metadata, result.profile
    main = _model_rows(scores)
    summary = summary_table(main, REPORT_METRICS)
    baselines = sorted(m for m in main["method"].unique() if m not in ("ceiling", "null_floor", MODEL))
    lines = [
        f"# sxdiff out-of-distribution benchmark ({profile.name} profile)",
        "",
        f"Command: `{meta['command']}`  ",
        f"sxdiff {meta['sxdiff']}, Python {meta['python']}, {meta['machine']}; {meta['date']}; "
        f"{meta['seconds'] / 60:.1f} minutes in all.",
        "",
        f"Settings: StateXDiff seeds {list(profile.seeds)}, "
        f"{'default (~2,000)' if profile.train_steps is None else profile.train_steps} training steps, "
        f"{profile.predict_steps} DDIM steps; folds per task: {profile.folds_per_task or 'all'}; ceiling and null "
        f"floor from {profile.ceiling_repeats} random splits. Metrics per held-out (context, condition) against the "
        "real controls of the context (see the metrics docs); energy distance and MMD in a 50-component PCA of each "
        "fold's training cells. The null floor splits the controls of a context into a fake prediction, a fake "
        "treatment and controls in the split-half ceiling's proportions (half a condition's true cells each, all "
        "the controls): the ceiling's construction without a perturbation. "
        "Values: mean over conditions, then mean ± sd across seeds (baselines are deterministic). Nothing was "
        "tuned on the test folds.",
        "",
    ]
    if MODEL in set(main["method"]):
        lines += [
            "## Targets (issue #15)",
            "",
            "Means over conditions (and seeds); whether a difference is beyond noise is in the paired tests below.",
            "",
            *_targets(summary),
            "",
        ]
    for task in sorted(summary["task"].unique()):
        lines += [f"## {task}", "", *_task_table(summary, task), ""]
        field = field_table(main, task)
        lines += [*field, ""] if field else []
        lines += interaction_section(main, task)
    tests = paired_tests(main, MODEL, baselines, TEST_METRICS) if MODEL in set(main["method"]) else pd.DataFrame()
    if len(tests):
        lines += [
            "## Paired tests: StateXDiff against each baseline",
            "",
            "Wilcoxon signed-rank over held-out conditions (seed-averaged), two-sided, Holm-corrected over the "
            "baselines of one task and metric.",
            "",
            *_tests_table(tests),
            "",
        ]
    ablation_lines, ablation_tests = _ablations(scores)
    if ablation_lines:
        lines += ["## Ablations", "", *ablation_lines]
        if len(ablation_tests):
            lines += ["Paired tests of the full model against each ablation:", "", *_tests_table(ablation_tests), ""]
    if result.translator is not None:
        from ._translator_cv import translator_summary

        s = translator_summary(result.translator)
        lines += [
            "## ProteinTranslator cross-validation (CITE-seq reference)",
            "",
            f"Median Pearson over {s['n_proteins']} non-isotype proteins with a measured coding gene: "
            f"{_fmt(s['median_translator_pearson'])} (translator, out-of-fold) vs "
            f"{_fmt(s['median_coding_gene_pearson'])} (coding-gene mRNA); Spearman "
            f"{_fmt(s['median_translator_spearman'])} vs {_fmt(s['median_coding_gene_spearman'])}; translator better "
            f"for {s['translator_wins']} of {s['n_proteins']}.",
            "",
        ]
    seconds = result.seconds.pivot_table(index="method", columns="task", values="seconds", aggfunc="sum").fillna(0)
    lines += ["## Time (seconds, all folds and seeds)", "", "| method | " + " | ".join(seconds.columns) + " |"]
    lines.append("|" + "---|" * (len(seconds.columns) + 1))
    lines += [f"| {m} | " + " | ".join(f"{v:.0f}" for v in row) + " |" for m, row in seconds.iterrows()]
    lines.append("")
    return "\n".join(lines)


def write_results(result, out: str | Path) -> Path:
    """Write ``scores.csv``, ``summary.csv``, ``paired_tests.csv``, ``seconds.csv`` and ``report.md``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result.scores.to_csv(out / "scores.csv", index=False)
    all_metrics = (*REPORT_METRICS, *FIELD_METRICS, *INTERACTION_METRICS, *STRENGTH_METRICS)
    summary_table(result.scores, all_metrics).to_csv(out / "summary.csv", index=False)
    main = _model_rows(result.scores)
    if MODEL in set(main["method"]):
        others = sorted(m for m in main["method"].unique() if m not in ("ceiling", "null_floor", MODEL))
        paired_tests(main, MODEL, others, TEST_METRICS).to_csv(out / "paired_tests.csv", index=False)
    result.seconds.to_csv(out / "seconds.csv", index=False)
    if result.translator is not None:
        result.translator.to_csv(out / "translator_cv.csv", index=False)
    (out / "report.md").write_text(render_report(result) + "\n")
    return out
