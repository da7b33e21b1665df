import pandas as pd
import pytest

from sxdiff.benchmark import TASK_GROUPS, TASKS, run_tasks, summarize
from sxdiff.cli import main


def test_demo_cli_writes_results_and_mean_shift_beats_control(tmp_path, capsys, caplog):
    assert main(["demo", "--out", str(tmp_path), "--epochs", "2"]) == 0
    printed = capsys.readouterr().out
    progress = [r.getMessage() for r in caplog.records if r.name == "sxdiff.train._progress"]
    assert "StateXDiff, state stage: epoch 1/1" in progress[1]  # training shows progress without --verbose
    assert "glioblastoma_unseen_patient" in printed
    assert "mean_shift" in printed
    assert "StateXDiff (2 epochs) on the unseen patient PW034" in printed
    model_scores = pd.read_csv(tmp_path / "statexdiff_glioblastoma_PW034.csv", index_col=0)
    assert list(model_scores.columns) == ["control", "mean_shift", "StateXDiff"]
    assert model_scores.loc["pearson_delta_top50", "mean_shift"] == pytest.approx(0.661, abs=0.01)
    assert (tmp_path / "demo_glioblastoma_PW034.png").stat().st_size > 10_000
    summary = pd.read_csv(tmp_path / "summary.csv")
    top50 = summary[summary["metric"] == "pearson_delta_top50"].set_index(["task", "method"])["mean"]
    # The known result on these data: mean shift ~0.63 on the unseen glioblastoma patient, control 0.
    assert 0.55 < top50[("glioblastoma_unseen_patient", "mean_shift")] < 0.70
    assert top50[("glioblastoma_unseen_patient", "control")] == 0.0
    assert top50[("l1000_unseen_drugs", "mean_shift")] > 0.3
    # the combinations' baseline: adding the measured singles (0.883 on the five held-out pairs)
    assert top50[("norman_unseen_combinations", "additive")] == pytest.approx(0.883, abs=0.01)
    assert top50[("norman_unseen_combinations", "mean_shift")] < 0.2
    assert "discrimination_score_l1" in printed
    # every baseline is printed between the null floor and the split-half ceiling (none for L1000: one well each)
    assert "null_floor" in printed
    assert "ceiling" in printed
    for task in ("glioblastoma_unseen_patient", "norman_unseen_combinations"):
        assert top50[(task, "null_floor")] < top50[(task, "ceiling")]
    assert top50[("norman_unseen_combinations", "null_floor")] < 0.6 < top50[("norman_unseen_combinations", "ceiling")]
    assert ("l1000_unseen_drugs", "ceiling") not in top50.index
    assert {"de_overlap", "pearson_delta_pert_top50", "mse_delta"} <= set(summary["metric"])
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert set(metrics["task"]) == set(TASK_GROUPS["core"])


def test_folds_hold_out_what_the_task_says():
    folds = list(TASKS["glioblastoma_unseen_patient"].folds())
    assert [f.holdout for f in folds] == [["PW030"], ["PW032"], ["PW034"], ["PW036"], ["PW040"]]
    l1000 = list(TASKS["l1000_unseen_drugs"].folds())
    assert len(l1000) == 3
    assert all(len(f.holdout) == 10 for f in l1000)
    assert len({tuple(f.holdout) for f in l1000}) == 3
    table = run_tasks(["norman_unseen_combinations"], methods=("mean_shift",))
    assert set(summarize(table)["metric"]) == {"pearson_delta", "pearson_delta_top50"}
