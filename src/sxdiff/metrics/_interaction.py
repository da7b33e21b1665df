"""Combinations beyond additive: the interaction residual, skill over the additive baseline, and their limits.

For a pair ``A+B`` whose singles were measured in the same context, the *interaction residual* is
``Δ_AB - (Δ_A + Δ_B)`` (every Δ a mean minus the context's control mean): what the pair does that the sum of
its members does not. An additive prediction has residual 0 and predicts no interaction; a model that
learned interactions predicts the residual. Pairs without interaction beyond noise cannot tell the two
apart, so pairs are stratified by how large their residual is compared with its sampling noise.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from sxdiff.data._expression import mean_expression
from sxdiff.data._validation import resolve_obs_column

from ._delta_metrics import pearson_delta
from ._evaluate import checked_expression, condition_labels, context_labels

__all__ = [
    "INTERACTION_NONE_BELOW",
    "INTERACTION_STRONG_ABOVE",
    "interaction_limits",
    "interaction_metrics",
    "interaction_residual",
    "interaction_scores",
    "interaction_stratum",
]

logger = logging.getLogger(__name__)

#: Strata of :func:`interaction_stratum` by the residual's signal-to-noise ratio ``||r||² / noise² - 1``.
INTERACTION_NONE_BELOW = 0.5
INTERACTION_STRONG_ABOVE = 2.0
_COLUMNS = ["context", "condition", "metric", "value", "n_true_cells"]
_NO_RESIDUAL = 1e-5  # relative size below which a predicted residual is float rounding (float32 predictions)


def interaction_residual(
    pair_mean: np.ndarray, single_means: Sequence[np.ndarray], control_mean: np.ndarray
) -> np.ndarray:
    """``Δ_AB - Σ Δ_single``: the part of a combination's change that the sum of its members' changes misses.

    Examples
    --------
    >>> import numpy as np
    >>> interaction_residual(np.array([3.0, 1.0]), [np.array([2.0, 1.0]), np.array([1.0, 1.0])], np.ones(2))
    array([1., 0.])
    """
    control = np.asarray(control_mean, dtype=float)
    additive = sum(np.asarray(s, dtype=float) - control for s in single_means)
    return np.asarray(pair_mean, dtype=float) - control - additive


def interaction_scores(
    pred_mean: np.ndarray,
    true_mean: np.ndarray,
    single_means: Sequence[np.ndarray],
    control_mean: np.ndarray,
    *,
    top_k: int = 50,
) -> dict[str, float]:
    """Scores of a predicted combination against the truth, beyond the sum of its measured singles.

    - ``residual_pearson``: Pearson of the predicted and the true interaction residual (both subtract the
      same measured singles and controls), all genes; 0 for a constant predicted residual (the additive
      baseline, also when it is additive up to float32 rounding); ``residual_pearson_top{k}``: over the
      ``top_k`` genes with the largest ``|true residual|``;
    - ``additive_skill``: ``1 - MSE(pred) / MSE(additive)`` of the pair's change, the additive prediction
      being ``control + Σ Δ_single``: 0 is as good as additive, 1 is perfect, negative is worse.

    Examples
    --------
    >>> import numpy as np
    >>> control, a, b = np.zeros(3), np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    >>> true = np.array([1.0, 1.0, 2.0])  # gene 2 only responds to the pair
    >>> scores = interaction_scores(np.array([1.0, 1.0, 1.0]), true, [a, b], control, top_k=2)
    >>> {k: round(v, 3) for k, v in scores.items()}
    {'residual_pearson': 1.0, 'residual_pearson_top2': 1.0, 'additive_skill': 0.75}
    """
    zeros = np.zeros_like(np.asarray(true_mean, dtype=float))
    true_residual = interaction_residual(true_mean, single_means, control_mean)
    pred_residual = interaction_residual(pred_mean, single_means, control_mean)
    scale = max(1.0, float(np.max(np.abs(pred_mean))))
    if np.max(np.abs(pred_residual)) <= _NO_RESIDUAL * scale:  # additive up to float32 rounding: no interaction
        pred_residual = zeros
    mse_model = float(np.mean((np.asarray(pred_mean, dtype=float) - np.asarray(true_mean, dtype=float)) ** 2))
    mse_additive = float(np.mean(true_residual**2))  # the additive prediction misses exactly the residual
    return {
        "residual_pearson": pearson_delta(pred_residual, true_residual, zeros),
        f"residual_pearson_top{top_k}": pearson_delta(pred_residual, true_residual, zeros, top_k=top_k),
        "additive_skill": 1.0 - mse_model / mse_additive if mse_additive > 0 else float("nan"),
    }


def interaction_stratum(snr: float) -> str:
    """``"none"``, ``"weak"`` or ``"strong"`` interaction from the residual's signal-to-noise ratio.

    ``snr = ||r||² / noise² - 1`` (:func:`interaction_limits`): interaction energy over the residual's
    sampling-noise energy. Below :data:`INTERACTION_NONE_BELOW` (0.5) the pair shows no interaction beyond
    noise; from :data:`INTERACTION_STRONG_ABOVE` (2) it interacts strongly.

    Examples
    --------
    >>> [interaction_stratum(v) for v in (0.1, 1.0, 5.0, float("nan"))]
    ['none', 'weak', 'strong', 'unknown']
    """
    if not np.isfinite(snr):
        return "unknown"
    if snr < INTERACTION_NONE_BELOW:
        return "none"
    return "strong" if snr >= INTERACTION_STRONG_ABOVE else "weak"


def _pairs(adata_true, adata_reference, perturbation_key, dose_key, context_key, delimiter):
    """Each (context, condition, true rows, [single rows]) of a combination with every single measured."""
    labels = resolve_obs_column(adata_true, perturbation_key).astype(str).to_numpy()
    doses = resolve_obs_column(adata_true, dose_key).astype(str).to_numpy() if dose_key else None
    conditions = condition_labels(adata_true, perturbation_key, dose_key)
    contexts = context_labels(adata_true, context_key)
    ref_labels = resolve_obs_column(adata_reference, perturbation_key).astype(str).to_numpy()
    ref_doses = resolve_obs_column(adata_reference, dose_key).astype(str).to_numpy() if dose_key else None
    ref_contexts = context_labels(adata_reference, context_key)
    frame = pd.DataFrame({"context": contexts, "condition": conditions}).drop_duplicates()
    out, missing = [], []
    for context, condition in frame.itertuples(index=False):
        rows = np.flatnonzero((contexts == context) & (conditions == condition))
        members = labels[rows[0]].split(delimiter)
        if len(members) < 2:
            continue
        member_doses = doses[rows[0]].split(delimiter) if doses is not None else [None] * len(members)
        if len(member_doses) == 1:
            member_doses = member_doses * len(members)
        singles = []
        for member, dose in zip(members, member_doses, strict=True):
            chosen = (ref_contexts == context) & (ref_labels == member)
            if dose is not None:
                chosen &= np.array([_same_dose(d, dose) for d in ref_doses])
            singles.append(np.flatnonzero(chosen))
        if any(s.size < 2 for s in singles):
            missing.append(f"{context}/{condition}")
            continue
        out.append((context, condition, rows, singles))
    if missing:
        logger.info(
            "interaction metrics: %d pair(s) without both singles in their context: %s", len(missing), missing[:5]
        )
    return out


def _same_dose(a: str, b: str) -> bool:
    try:
        return float(a) == float(b)
    except ValueError:
        return a == b


def interaction_metrics(
    adata_pred: AnnData,
    adata_true: AnnData,
    adata_reference: AnnData,
    adata_control: AnnData,
    *,
    perturbation_key: str = "perturbation",
    dose_key: str | None = None,
    context_key: str | None = None,
    layer: str | None = None,
    delimiter: str = "+",
    top_k: int = 50,
) -> pd.DataFrame:
    """Score predicted combinations beyond additivity (:func:`interaction_scores`) for every measured pair.

    Parameters
    ----------
    adata_pred, adata_true, adata_control
        As in :func:`evaluate`: predicted cells, real perturbed cells, real controls of their contexts.
    adata_reference
        Cells holding the members' single perturbations in the same contexts (e.g. the training data).
        A pair is scored when each member has at least 2 single cells in its context (at its dose).
    perturbation_key, dose_key, context_key, layer
        As in :func:`evaluate`.
    delimiter
        Separator of combination members (and of their doses).
    top_k
        Genes of ``residual_pearson_top{k}``.

    Returns
    -------
    Tidy DataFrame like :func:`evaluate`'s (empty when there is no measured pair).

    Examples
    --------
    >>> import anndata as ad, numpy as np, pandas as pd
    >>> X = np.array([[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [1, 1, 2], [1, 1, 2.0]])
    >>> obs = pd.DataFrame({"perturbation": ["control"] * 2 + ["A"] * 2 + ["B"] * 2 + ["A+B"] * 2})
    >>> cells = ad.AnnData(X, obs=obs.set_axis([str(i) for i in range(8)]))
    >>> table = interaction_metrics(cells[6:], cells[6:], cells, cells[:2], top_k=2)
    >>> table.set_index("metric")["value"].round(6).to_dict()
    {'residual_pearson': 1.0, 'residual_pearson_top2': 1.0, 'additive_skill': 1.0}
    """
    X_pred = checked_expression(adata_pred, layer, "adata_pred")
    X_true = checked_expression(adata_true, layer, "adata_true")
    X_ref = checked_expression(adata_reference, layer, "adata_reference")
    X_ctrl = checked_expression(adata_control, layer, "adata_control")
    pred_conditions = condition_labels(adata_pred, perturbation_key, dose_key)
    pred_ctx, ctrl_ctx = context_labels(adata_pred, context_key), context_labels(adata_control, context_key)
    records = []
    for context, condition, rows, singles in _pairs(
        adata_true, adata_reference, perturbation_key, dose_key, context_key, delimiter
    ):
        in_pred = (pred_ctx == context) & (pred_conditions == condition)
        in_ctrl = ctrl_ctx == context
        if not in_pred.any() or not in_ctrl.any():
            continue
        values = interaction_scores(
            mean_expression(X_pred[in_pred]),
            mean_expression(X_true[rows]),
            [mean_expression(X_ref[s]) for s in singles],
            mean_expression(X_ctrl[in_ctrl]),
            top_k=top_k,
        )
        records += [(context, condition, m, v, int(rows.size)) for m, v in values.items()]
    return pd.DataFrame(records, columns=_COLUMNS)


def _halves(rng: np.random.Generator, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(rows)
    return np.sort(order[: rows.size // 2]), np.sort(order[rows.size // 2 :])


def _split_noise(X, groups: Sequence[np.ndarray], rng: np.random.Generator) -> float:
    """Sampling-noise energy of ``Σ ±mean(group)``: ``Σ ||mean(half 1) - mean(half 2)||² / 4`` over groups."""
    total = 0.0
    for rows in groups:
        first, second = _halves(rng, rows)
        total += float(np.sum((mean_expression(X[first]) - mean_expression(X[second])) ** 2)) / 4
    return total


def interaction_limits(
    adata_true: AnnData,
    adata_reference: AnnData,
    adata_control: AnnData,
    *,
    perturbation_key: str = "perturbation",
    dose_key: str | None = None,
    context_key: str | None = None,
    layer: str | None = None,
    delimiter: str = "+",
    top_k: int = 50,
    n_repeats: int = 5,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split-half ceiling, null floor and interaction strength of every measured pair.

    - **Ceiling**: one half of the pair's cells scored as the prediction of the other half with
      :func:`interaction_scores` (singles and controls shared, as the real evaluation shares them);
      averaged over ``n_repeats`` splits.
    - **Null floor**: the context's control cells are split into five disjoint parts — a fake prediction, a
      fake pair, two fake singles and the controls — in the ceiling's proportions (half the pair's cells
      each for the prediction and the pair, the singles' and the controls' cell numbers), and scored the
      same way: the ceiling's construction for a pair with no interaction, sharing the singles' and the
      controls' noise as real residuals do. This floor is high when the singles are noisy, and on pairs
      without interaction the ceiling is no higher: there is nothing to predict. The skill's floor is 0,
      the additive baseline's (the fake prediction here would know the fake pair's mean, so its MSE says
      nothing).
    - **Strength**: ``interaction_snr = ||r||² / noise² - 1``, the true residual's energy over the energy
      of its sampling noise (estimated from split halves of the pair, each single and the controls:
      ``Σ ||mean(half 1) - mean(half 2)||² / 4``), about 0 for a pair without interaction; and
      ``interaction_fraction = max(0, ||r||² - noise²) / ||Δ_AB||²``, the share of the pair's change that
      is interaction beyond noise. :func:`interaction_stratum` turns the ratio into none / weak / strong.

    Parameters
    ----------
    adata_true, adata_reference, adata_control, perturbation_key, dose_key, context_key, layer, delimiter, top_k
        As in :func:`interaction_metrics`.
    n_repeats, seed
        Random splits and their seed.

    Returns
    -------
    ``(ceiling, floor, strength)``, tidy DataFrames like :func:`evaluate`'s; the floor's condition is the pair's.

    Examples
    --------
    >>> import anndata as ad, numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> effects = {"control": 0.0, "A": np.r_[1.0, np.zeros(29)], "B": np.r_[0.0, 1.0, np.zeros(28)]}
    >>> effects["A+B"] = effects["A"] + effects["B"] + np.r_[0, 0, 2.0, np.zeros(27)]
    >>> labels = [k for k in effects for _ in range(40)]
    >>> X = np.vstack([effects[k] + rng.normal(0, 0.3, 30) for k in labels])
    >>> cells = ad.AnnData(X, obs=pd.DataFrame({"perturbation": labels}, index=[str(i) for i in range(160)]))
    >>> ceiling, floor, strength = interaction_limits(cells[120:], cells, cells[:40], top_k=5)
    >>> strength.set_index("metric")["value"].round(1).to_dict()
    {'interaction_snr': 16.2, 'interaction_fraction': 0.7}
    """
    X_true = checked_expression(adata_true, layer, "adata_true")
    X_ref = checked_expression(adata_reference, layer, "adata_reference")
    X_ctrl = checked_expression(adata_control, layer, "adata_control")
    ctrl_ctx = context_labels(adata_control, context_key)
    rng = np.random.default_rng(seed)
    ceiling, floor, strength = [], [], []
    for context, condition, rows, singles in _pairs(
        adata_true, adata_reference, perturbation_key, dose_key, context_key, delimiter
    ):
        controls = np.flatnonzero(ctrl_ctx == context)
        if controls.size < len(singles) + 3 or rows.size < 2:
            continue
        single_means = [mean_expression(X_ref[s]) for s in singles]
        control_mean, true_mean = mean_expression(X_ctrl[controls]), mean_expression(X_true[rows])
        up, down, noise = [], [], []
        for _ in range(n_repeats):
            first, second = _halves(rng, rows)
            up.append(
                interaction_scores(
                    mean_expression(X_true[first]),
                    mean_expression(X_true[second]),
                    single_means,
                    control_mean,
                    top_k=top_k,
                )
            )
            down.append(_null_scores(X_ctrl, controls, rows.size, [s.size for s in singles], rng, top_k))
            noise.append(
                _split_noise(X_true, [rows], rng)
                + sum(_split_noise(X_ref, [s], rng) for s in singles)
                + _split_noise(X_ctrl, [controls], rng)
            )
        residual = float(np.sum(interaction_residual(true_mean, single_means, control_mean) ** 2))
        noise2 = float(np.mean(noise))
        change = float(np.sum((true_mean - control_mean) ** 2))
        values = {
            "interaction_snr": residual / noise2 - 1.0 if noise2 > 0 else float("nan"),
            "interaction_fraction": max(0.0, residual - noise2) / change if change > 0 else float("nan"),
        }
        n = int(rows.size)
        ceiling += [(context, condition, m, _mean(up, m), n) for m in up[0]]
        floor += [(context, condition, m, _mean(down, m), n) for m in down[0]]
        strength += [(context, condition, m, v, n) for m, v in values.items()]
    return tuple(pd.DataFrame(r, columns=_COLUMNS) for r in (ceiling, floor, strength))  # type: ignore[return-value]


def _mean(repeats: list[dict[str, float]], metric: str) -> float:
    values = np.array([r[metric] for r in repeats], dtype=float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def _null_scores(X_ctrl, controls: np.ndarray, n_pair: int, n_singles: list[int], rng, top_k: int) -> dict[str, float]:
    """One draw of the null floor: five disjoint parts of the controls in the real evaluation's proportions."""
    n = controls.size
    weights = np.array([n_pair / 2, n_pair / 2, *n_singles, n], dtype=float)  # the ceiling's halves
    sizes = np.maximum(1, np.floor(n * weights / weights.sum()).astype(int))
    sizes[-1] = n - sizes[:-1].sum()
    if sizes[-1] < 1:  # too few controls for the proportions: equal parts
        sizes = np.array([len(part) for part in np.array_split(np.arange(n), weights.size)])
    parts = np.split(rng.permutation(controls), np.cumsum(sizes)[:-1])
    means = [mean_expression(X_ctrl[np.sort(p)]) for p in parts]
    scores = interaction_scores(means[0], means[1], means[2:-1], means[-1], top_k=top_k)
    scores["additive_skill"] = 0.0  # the fake prediction knows the fake pair's mean; the skill's floor is additive
    return scores
