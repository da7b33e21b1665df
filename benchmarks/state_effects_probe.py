"""Probe: does the composer's state-dependent part cost energy distance on a task's first fold? (issue #15)

Trains StateXDiff on the first fold (seed 0) with the defaults and with ``state_effects=False``, prints each model's
variation-scale and state-spread choices (the validation energy distance inside the training data at each grid
value) and scores the test conditions with the chosen factors (10 sampling steps,
``statexdiff_measured_effects_probe.score``), and the default model once more with the state spread as learned.
Session 15 on Norman: the chosen scale is 0 for both, so the difference is the per-cell expected change; without
state effects the pairs' energy distance equals the additive baseline's. Session 16 (``state_spread="auto"``):
validation picks a spread of 0 (0.0603 vs 0.0655 at 1) and the default model's pairs score 0.0907 (0.0952 with the
spread kept), as without state effects.

    python benchmarks/state_effects_probe.py [TASK]      # default norman_unseen_combinations
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from statexdiff_measured_effects_probe import score

from sxdiff.benchmark import TASKS
from sxdiff.benchmark._statexdiff_fold import train_fold_statexdiff

METRICS = ["pearson_delta_top50", "mse_delta", "energy_distance"]


def main(task_name: str) -> None:
    task = TASKS[task_name]
    fold = next(iter(task.folds()))
    for arm, kwargs in [("default", {}), ("state_effects=False", {"state_effects": False})]:
        start = time.perf_counter()
        model, adata = train_fold_statexdiff(task, fold, seed=0, **kwargs)
        grid = {k: round(v, 4) for k, v in model.variation_scale_.items()}
        spread = {k: round(v, 4) for k, v in getattr(model, "state_spread_", {}).items()}
        print(f"{arm}: trained in {time.perf_counter() - start:.0f} s; variation scale {grid}; spread {spread}")
        report(task, fold, model, adata, arm)
        if arm == "default" and float(model.module.state_spread) != 1.0:
            model.module.set_state_spread(1.0)
            report(task, fold, model, adata, "default with state_spread=1 (as learned)")


def report(task, fold, model, adata, label: str) -> None:
    scores = score(task, fold, model, adata, 0)
    table = scores[scores["metric"].isin(METRICS)].pivot_table(index="condition", columns="metric", values="value")
    print(label, "\n", table[METRICS].round(4).to_string(), "\nmean\n", table[METRICS].mean().round(4).to_string())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "norman_unseen_combinations")
