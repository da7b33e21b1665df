"""The unseen-cell-line and shape-robustness tasks: folds, data shape, and the baselines on them."""

import numpy as np
import pandas as pd
import pytest

from sxdiff.benchmark import PROFILES, TASK_GROUPS, TASKS, run_fold
from sxdiff.benchmark._tasks import ensure_drug_features


def _held_out_contexts(fold) -> set[str]:
    obs = fold.adata.obs
    return set(obs.loc[obs["sxdiff_split"] == "test", "context"].astype(str))


@pytest.mark.parametrize(
    ("name", "contexts"),
    [
        ("mcfaline23_unseen_cell_line", ["A172", "T98G", "U87MG"]),
        ("synthetic_sparse_unseen_context", ["line_0", "line_1", "line_2", "line_3"]),
    ],
)
def test_unseen_context_tasks_leave_one_context_out(name, contexts):
    folds = list(TASKS[name].folds())
    assert [f.holdout for f in folds] == [[c] for c in contexts]
    for fold, context in zip(folds, contexts, strict=True):
        obs = fold.adata.obs
        test = (obs["sxdiff_split"] == "test").to_numpy()
        in_context = (obs["context"].astype(str) == context).to_numpy()
        assert _held_out_contexts(fold) == {context}
        # every perturbed cell of the held-out context is test; its controls stay in training as sources
        np.testing.assert_array_equal(test, in_context & ~obs["is_control"].to_numpy())
        assert (obs.loc[~test, "context"].astype(str) != context).any()
        assert set(obs.loc[test, "perturbation"].astype(str)) == set(
            obs.loc[~test & ~obs["is_control"], "perturbation"].astype(str)
        )


def test_lognorm_variant_drops_counts_and_keeps_the_folds():
    counts_fold = next(TASKS["glioblastoma_unseen_patient"].folds())
    lognorm = TASKS["glioblastoma_unseen_patient_lognorm"]
    assert lognorm.name == "glioblastoma_unseen_patient_lognorm"
    fold = next(lognorm.folds())
    assert "counts" in counts_fold.adata.layers
    assert "counts" not in fold.adata.layers
    assert fold.adata.uns["sxdiff"]["expression_scale"] == "log1p"
    assert fold.holdout == counts_fold.holdout == ["PW030"]
    np.testing.assert_array_equal(fold.adata.X.toarray(), counts_fold.adata.X.toarray())
    # the other bundled tasks already hold no counts: their variant only changes the name
    for name in ("l1000_unseen_drugs", "norman_unseen_combinations", "mcfaline23_unseen_cell_line"):
        assert "counts" not in next(TASKS[name].folds()).adata.layers
    assert TASKS["norman_unseen_combinations"].without_counts().name == "norman_unseen_combinations_lognorm"


def test_profiles_select_tasks():
    assert (
        PROFILES["quick"].tasks
        == TASK_GROUPS["core"]
        == (
            "glioblastoma_unseen_patient",
            "l1000_unseen_drugs",
            "norman_unseen_combinations",
        )
    )
    assert PROFILES["full"].tasks is None  # every task
    grouped = {name for group in TASK_GROUPS.values() for name in group}
    assert grouped == set(TASKS)


def test_new_tasks_describe_their_perturbations():
    for name in ("mcfaline23_unseen_cell_line", "synthetic_sparse_unseen_context"):
        fold = next(TASKS[name].folds())
        ensure_drug_features(fold.adata)
        info = fold.adata.uns["sxdiff_drugs"]
        assert info["params"]["perturbation_type"] == "CRISPRi"
        assert np.asarray(info["has_targets"]).all()  # each knock-down targets its gene


def test_synthetic_sparse_task_shape_and_state_dependence():
    """Many sparse genes, no counts; a state-matched shift beats the global mean shift by a wide margin."""
    task = TASKS["synthetic_sparse_unseen_context"]
    fold = next(task.folds())
    adata = fold.adata
    assert adata.n_vars >= 5000
    assert 1 - adata.X.nnz / (adata.n_obs * adata.n_vars) >= 0.90
    assert "counts" not in adata.layers
    assert adata.uns["sxdiff"]["expression_scale"] == "log1p"
    np.testing.assert_allclose(np.expm1(adata.X[:20].toarray()).sum(axis=1), 1000.0, rtol=1e-4)
    scores = pd.concat([run_fold(task, fold, method) for method in ("mean_shift", "state_matched")])
    top50 = scores[scores["metric"] == "pearson_delta_top50"].groupby("method")["value"].mean()
    # measured on fold line_0: state-matched 0.90, mean shift 0.16
    assert top50["state_matched"] > 0.8
    assert top50["state_matched"] - top50["mean_shift"] > 0.4
