"""Report sections for the metrics the field uses (cell-eval, Systema) and for combinations beyond additive."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sxdiff.metrics import interaction_stratum
from sxdiff.metrics._interaction import INTERACTION_NONE_BELOW, INTERACTION_STRONG_ABOVE

from ._statistics import per_condition

__all__ = ["FIELD_METRICS", "INTERACTION_METRICS", "STRENGTH_METRICS", "field_table", "interaction_section"]

FIELD_METRICS = ("pearson_delta_pert_top50", "pearson_delta_pert", "de_overlap", "discrimination_score_l1", "mae")
INTERACTION_METRICS = ("residual_pearson_top50", "residual_pearson", "additive_skill")
STRENGTH_METRICS = ("interaction_snr", "interaction_fraction")
LABELS = {
    "pearson_delta_pert_top50": "pert.-centred top-50 r",
    "pearson_delta_pert": "pert.-centred all-genes r",
    "de_overlap": "DE overlap",
    "discrimination_score_l1": "discrimination (L1)",
    "mae": "MAE",
    "residual_pearson_top50": "residual r top-50",
    "residual_pearson": "residual r",
    "additive_skill": "skill vs additive",
}
INTERACTION = "pair_interaction"
MODEL = "StateXDiff"


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _order(methods) -> list[str]:
    first = [m for m in ("ceiling", "null_floor") if m in methods]
    rest = sorted(m for m in methods if m not in first and not m.startswith(MODEL) and m != INTERACTION)
    return first + rest + sorted(m for m in methods if m.startswith(MODEL))


def _means(scores: pd.DataFrame, metrics) -> pd.DataFrame:
    """Mean over conditions (seed-averaged first) per method and metric; NaN conditions left out."""
    table = per_condition(scores[scores["metric"].isin(metrics)])
    return table.groupby(["method", "metric"], observed=True)["value"].mean().unstack("metric")


def _table(means: pd.DataFrame, metrics, counts: pd.Series | None = None) -> list[str]:
    header = ["method", *[LABELS[m] for m in metrics]] + (["conditions"] if counts is not None else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in _order(set(means.index)):
        cells = [_fmt(means.at[method, m]) if m in means.columns else "" for m in metrics]
        if counts is not None:
            cells.append(str(int(counts.get(method, 0))))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def field_table(scores: pd.DataFrame, task: str) -> list[str]:
    """The cell-eval / Virtual Cell Challenge metrics and the perturbation-centred Pearson of one task.

    Rows ``ceiling`` and ``null_floor`` bound each metric where they exist: the discrimination score's floor is
    its chance level ``(n + 1) / (2n)``; the perturbation-centred Pearson has no floor row (a prediction of
    the perturbed mean itself scores 0); the DE overlap's floor is NaN when control cells show no DE genes.
    """
    mine = scores[(scores["task"] == task) & ~scores["method"].str.startswith(f"{MODEL}[")]
    means = _means(mine, FIELD_METRICS)
    if means.empty:
        return []
    counts = per_condition(mine[mine["metric"] == "mae"]).groupby("method")["condition"].count()
    return [
        "Metrics of the field (cell-eval / Virtual Cell Challenge: DE overlap, L1 discrimination, MAE; Systema: "
        "perturbation-centred Pearson), mean over conditions:",
        "",
        *_table(means, FIELD_METRICS, counts),
    ]


def _strength(scores: pd.DataFrame) -> pd.DataFrame:
    rows = per_condition(scores[scores["method"] == INTERACTION])
    if rows.empty:
        return pd.DataFrame(columns=["fold", "context", "condition", *STRENGTH_METRICS, "stratum"])
    wide = rows.pivot_table(index=["fold", "context", "condition"], columns="metric", values="value").reset_index()
    wide["stratum"] = [interaction_stratum(v) for v in wide["interaction_snr"]]
    return wide


def interaction_section(scores: pd.DataFrame, task: str) -> list[str]:
    """Combinations beyond additive: how much the pairs interact, and every method's residual scores."""
    mine = scores[(scores["task"] == task) & ~scores["method"].str.startswith(f"{MODEL}[")]
    strength = _strength(mine)
    if strength.empty:
        return []
    n = len(strength)
    counts = strength["stratum"].value_counts()
    share = strength["interaction_fraction"]
    lines = [
        f"**Combinations beyond additive** ({n} pairs with both singles measured in their context). The interaction "
        "residual is Δ_AB − (Δ_A + Δ_B); its signal-to-noise ratio (SNR = ‖r‖² / noise² − 1, noise from split "
        f"halves) is below {INTERACTION_NONE_BELOW} for 'none' and at least {INTERACTION_STRONG_ABOVE} for 'strong'. "
        f"Pairs: {counts.get('strong', 0)} strong, {counts.get('weak', 0)} weak, {counts.get('none', 0)} none. "
        f"Share of a pair's change that is interaction beyond noise: median {_fmt(share.median())}, range "
        f"{_fmt(share.min())}–{_fmt(share.max())}.",
        "",
    ]
    if counts.get("strong", 0) + counts.get("weak", 0) == 0:
        lines += [
            "No pair of this task shows interaction beyond noise: on these pairs no method can be told from the "
            "additive baseline, whatever its scores below.",
            "",
        ]
    keys = ["fold", "context", "condition"]
    scored = mine[mine["method"] != INTERACTION]
    strata = [("all pairs", strength)]
    if counts.get("strong", 0):
        strata.append(("strongly interacting pairs", strength[strength["stratum"] == "strong"]))
    for name, chosen in strata:
        subset = scored.merge(chosen[keys], on=keys)
        means = _means(subset, INTERACTION_METRICS)
        if means.empty:
            continue
        lines += [f"Residual scores, {name} ({len(chosen)}):", "", *_table(means, INTERACTION_METRICS), ""]
    strong = strength[strength["stratum"] == "strong"].sort_values("interaction_snr", ascending=False)
    if len(strong):
        lines += ["| strongly interacting pair | SNR | interaction share |", "|---|---|---|"]
        lines += [
            f"| {r.condition} | {_fmt(r.interaction_snr, 1)} | {_fmt(r.interaction_fraction, 2)} |"
            for r in strong.itertuples(index=False)
        ]
        lines.append("")
    return lines
