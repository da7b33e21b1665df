"""`sxdiff benchmark` with the default StateXDiff given other settings on every fold.

The benchmark's ablations run on the first fold of a task only; this wrapper runs the CLI with the default model
trained with the given keyword arguments on every fold (the result rows keep the name ``StateXDiff``), so that a
whole task can be compared condition by condition with a run of the default model
(`benchmarks/compare_benchmark_runs.py`). Values are Python literals (``False``, ``0.5``) or plain strings
(``auto``). Ablations named with `--ablations` get the same settings unless they set them themselves: run it
without ablations.

    python benchmarks/statexdiff_with_options.py use_protein=False -- benchmark --profile full --task TASK \\
        --seeds 0 --ablations --out DIR

Runs: session 14, ``use_protein=False`` (`benchmarks/results/benchmark_session14_no_protein/`); session 15,
``context_transfer=auto`` on McFaline (`benchmarks/results/benchmark_session15_triplet_fraction/README.md`).
"""

import ast
import sys

import sxdiff.benchmark._harness as harness
from sxdiff.cli import main

_default = harness.predict_fold_statexdiff


def parse_options(items: list[str]) -> dict:
    """``["use_protein=False", "context_transfer=auto"]`` -> ``{"use_protein": False, "context_transfer": "auto"}``."""
    options = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise SystemExit(f"Expected KEY=VALUE before '--', got {item!r}.")
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    return options


if __name__ == "__main__":
    if "--" not in sys.argv:
        raise SystemExit(__doc__)
    split = sys.argv.index("--")
    options = parse_options(sys.argv[1:split])

    def predict_fold_with_options(*args, **kwargs):
        """The harness's StateXDiff fold, trained with ``options`` unless an ablation sets them."""
        return _default(*args, **{**options, **kwargs})

    harness.predict_fold_statexdiff = predict_fold_with_options
    sys.exit(main(sys.argv[split + 1 :]))
