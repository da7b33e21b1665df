"""The out-of-distribution benchmark on the bundled datasets (grows into ``sxdiff benchmark``)."""

from ._compare import compare_on_fold
from ._run import METHODS, predict_fold, run_fold, run_tasks, summarize
from ._statexdiff_fold import predict_fold_statexdiff
from ._tasks import TASKS, Fold, Task, log_normalized

__all__ = [
    "METHODS",
    "TASKS",
    "Fold",
    "Task",
    "compare_on_fold",
    "log_normalized",
    "predict_fold",
    "predict_fold_statexdiff",
    "run_fold",
    "run_tasks",
    "summarize",
]
