"""The benchmark runner: statistics, report, CLI; a smoke run and the real `--quick` profile."""

import numpy as np
import pandas as pd
import pytest

from sxdiff.benchmark import PROFILES, run_benchmark
from sxdiff.benchmark._statistics import holm, paired_tests, summary_table
from sxdiff.cli import main


def _scores(reference_shift: float, n: int = 12, metric: str = "pearson_delta_top50") -> pd.DataFrame:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.6, n)
    rows = []
    for seed in (0, 1):
        for i in range(n):
            for method, value in (("StateXDiff", base[i] + reference_shift + 0.01 * seed), ("mean_shift", base[i])):
                rows.append(("t", "f", seed if method == "StateXDiff" else "-", method, "c", f"cond{i}", metric, value))
    return pd.DataFrame(rows, columns=["task", "fold", "seed", "method", "context", "condition", "metric", "value"])


def test_paired_tests_detect_a_consistent_difference_and_orient_lower_is_better():
    tests = paired_tests(_scores(0.1), "StateXDiff", ["mean_shift"], ["pearson_delta_top50"]).iloc[0]
    assert tests["n"] == 12
    assert tests["reference_better"] == 12
    assert tests["mean_difference"] == pytest.approx(0.105)
    assert tests["p_value"] < 0.001
    # for a distance, a larger value of the reference is worse
    worse = paired_tests(_scores(0.1, metric="energy_distance"), "StateXDiff", ["mean_shift"], ["energy_distance"])
    assert worse.iloc[0]["reference_better"] == 0
    assert worse.iloc[0]["mean_difference"] == pytest.approx(-0.105)


def test_holm_is_monotone_and_capped():
    adjusted = holm([0.001, 0.2, np.nan, 0.04])
    assert adjusted[0] == pytest.approx(0.003)
    assert adjusted[3] == pytest.approx(0.08)
    assert adjusted[1] == pytest.approx(0.2)
    assert np.isnan(adjusted[2])
    assert holm([0.6, 0.7]).max() <= 1.0


def test_summary_reports_the_spread_across_seeds():
    summary = summary_table(_scores(0.1), ["pearson_delta_top50"]).set_index("method")
    assert summary.loc["StateXDiff", "n_seeds"] == 2
    assert summary.loc["StateXDiff", "sd"] == pytest.approx(0.01 / np.sqrt(2))
    assert summary.loc["mean_shift", "sd"] == 0.0
    assert summary.loc["StateXDiff", "n_conditions"] == 12


def test_benchmark_smoke_run_through_the_cli(tmp_path, capsys):
    """Norman combinations, a tiny StateXDiff budget, one ablation: every file, and the known baseline result."""
    out = tmp_path / "bench"
    args = ["benchmark", "--task", "norman_unseen_combinations", "--train-steps", "20", "--ablations", "mlp_denoiser"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Targets (issue #15)" in printed
    for name in ("scores.csv", "summary.csv", "paired_tests.csv", "seconds.csv", "report.md"):
        assert (out / name).stat().st_size > 0, name
    scores = pd.read_csv(out / "scores.csv")
    methods = set(scores["method"])
    assert {"ceiling", "null_floor", "additive", "ridge", "StateXDiff", "StateXDiff[mlp_denoiser]"} <= methods
    assert np.isfinite(scores.loc[scores["metric"] == "energy_distance", "value"]).all()
    top50 = scores[scores["metric"] == "pearson_delta_top50"].groupby("method")["value"].mean()
    # measured on these data: additive 0.88 at the split-half ceiling (0.86), mean shift 0.10, control 0
    assert top50["additive"] == pytest.approx(0.883, abs=0.01)
    assert top50["mean_shift"] < 0.2
    assert top50["control"] == 0.0
    report = (out / "report.md").read_text()
    assert "## Ablations" in report
    assert "sxdiff benchmark --task norman_unseen_combinations" in report
    tests = pd.read_csv(out / "paired_tests.csv")
    assert set(tests["method"]) >= {"additive", "mean_shift"}


def test_benchmark_refuses_unknown_names():
    with pytest.raises(ValueError, match="Unknown task/method/ablation"):
        run_benchmark("quick", tasks=["sciplex"], include_model=False)
    with pytest.raises(ValueError, match="no_dropout"):
        run_benchmark("quick", ablations=["no_dropout"], include_model=False)


@pytest.mark.slow
def test_quick_profile_runs_end_to_end(tmp_path):
    """The `sxdiff benchmark --quick` profile itself, with a quarter of its training budget (the CI's time)."""
    assert PROFILES["quick"].train_steps == 400
    assert main(["benchmark", "--quick", "--train-steps", "100", "--out", str(tmp_path)]) == 0
    summary = pd.read_csv(tmp_path / "summary.csv")
    model = summary[(summary["method"] == "StateXDiff") & (summary["metric"] == "pearson_delta_top50")]
    assert set(model["task"]) == {"glioblastoma_unseen_patient", "l1000_unseen_drugs", "norman_unseen_combinations"}
    assert (model["mean"] > 0.1).all()


def test_baselines_only_run_reports_the_field_metrics_and_the_combinations(tmp_path):
    """Norman pairs, three baselines, no model: the new metrics reach scores.csv, summary.csv and report.md."""
    methods = ("additive", "perturbed_mean", "linear_embedding")
    result = run_benchmark(
        "quick", tasks=["norman_unseen_combinations"], methods=methods, include_model=False, out=tmp_path
    )
    scores = result.scores
    means = scores.groupby(["method", "metric"])["value"].mean()
    for metric in ("de_overlap", "discrimination_score_l1", "mae", "pearson_delta_pert_top50", "residual_pearson"):
        assert np.isfinite(means[("additive", metric)]), metric
    # the additive baseline's cells carry the sum of the singles' changes, decoded by the zero-keeping rule of
    # apply_log_change (increases concentrated on the cells that express the gene, exact per-gene mean): its skill
    # over the plain sum is not negative
    assert means[("additive", "additive_skill")] >= -1e-4
    # measured (quick profile): additive top-50 r 0.883, split-half ceiling 0.864, null floor 0.379
    assert means[("null_floor", "pearson_delta_top50")] < means[("ceiling", "pearson_delta_top50")]
    n_pairs = scores.loc[scores["method"] == "additive", "condition"].nunique()
    assert means[("null_floor", "discrimination_score_l1")] == pytest.approx((n_pairs + 1) / (2 * n_pairs))
    strength = scores[scores["method"] == "pair_interaction"]
    assert set(strength["metric"]) == {"interaction_snr", "interaction_fraction"}
    assert strength["condition"].nunique() == n_pairs
    report = (tmp_path / "report.md").read_text()
    assert "Metrics of the field" in report
    assert "Combinations beyond additive" in report
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert {"de_overlap", "residual_pearson_top50", "interaction_fraction"} <= set(summary["metric"])
