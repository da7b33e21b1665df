"""The out-of-distribution benchmark on the bundled datasets (``sxdiff benchmark``)."""

from ._compare import compare_on_fold
from ._harness import ABLATIONS, PROFILES, BenchmarkResult, Profile, run_benchmark
from ._report import render_report, write_results
from ._run import METHODS, predict_fold, run_fold, run_tasks, summarize
from ._statexdiff_fold import predict_fold_statexdiff
from ._tasks import PROTEIN_PANEL, TASK_GROUPS, TASKS, Fold, Task, log_normalized
from ._translator_cv import ridge_on_pcs, translator_calibration, translator_cross_validation, translator_summary

__all__ = [
    "ABLATIONS",
    "METHODS",
    "PROFILES",
    "PROTEIN_PANEL",
    "TASKS",
    "TASK_GROUPS",
    "BenchmarkResult",
    "Fold",
    "Profile",
    "Task",
    "compare_on_fold",
    "log_normalized",
    "predict_fold",
    "predict_fold_statexdiff",
    "render_report",
    "ridge_on_pcs",
    "run_benchmark",
    "run_fold",
    "run_tasks",
    "summarize",
    "translator_calibration",
    "translator_cross_validation",
    "translator_summary",
    "write_results",
]
