"""`sxdiff benchmark` with the default StateXDiff replaced by `use_protein=False` on every fold (issue #18).

The benchmark's `no_protein` ablation runs on the first fold of a task only; this wrapper runs the CLI with the
default model trained without protein context on every fold (the result rows keep the name ``StateXDiff``), so
that a whole task can be compared condition by condition with a run of the default model
(`benchmarks/compare_benchmark_runs.py`). Ablations named with `--ablations` also run without protein context
(their `no_protein` / `no_reliability` then change nothing): run it without ablations. Session 14's runs:
`benchmarks/results/benchmark_session14_no_protein/`.

    python benchmarks/statexdiff_without_protein.py benchmark --profile full --task TASK --seeds 0 --ablations --out DIR
"""

import sys

import sxdiff.benchmark._harness as harness
from sxdiff.cli import main

_with_protein = harness.predict_fold_statexdiff


def predict_fold_without_protein(*args, **kwargs):
    """The harness's StateXDiff fold, trained with ``use_protein=False`` unless an ablation sets it."""
    kwargs.setdefault("use_protein", False)
    return _with_protein(*args, **kwargs)


if __name__ == "__main__":
    harness.predict_fold_statexdiff = predict_fold_without_protein
    sys.exit(main(sys.argv[1:]))
