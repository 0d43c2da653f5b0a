"""The A/B significance report, checked against textbook formulas computed by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from segments.errors import ConfigError, ProfileDataError
from segments.experiments.assign import Experiment, Variant, assign_frame
from segments.experiments.stats import AbReport, VariantMetric, ab_report, holm, load_results

Z = NormalDist()


def table(groups: dict[str, tuple[int, int]], metric: str = "clicked") -> tuple[pd.DataFrame, ...]:
    """Assignments and binary results: variant -> (recipients, successes)."""
    ids, variants, values = [], [], []
    for variant, (n, successes) in groups.items():
        for i in range(n):
            ids.append(f"{variant}-{i}")
            variants.append(variant)
            values.append(1 if i < successes else 0)
    return pd.DataFrame({"id": ids, "exp": variants}), pd.DataFrame({"id": ids, metric: values})


def row(report: AbReport, variant: str, metric: str = "clicked") -> VariantMetric:
    return next(r for r in report.rows if r.variant == variant and r.metric == metric)


def two_proportion(n1: int, x1: int, n2: int, x2: int) -> dict[str, float]:
    """Pooled z-test, Wald interval and sample size, straight from the textbook."""
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    z = (p2 - p1) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    z_a, z_b = Z.inv_cdf(0.975), Z.inv_cdf(0.8)
    pbar = (p1 + p2) / 2
    root = z_a * math.sqrt(2 * pbar * (1 - pbar)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return {
        "z": z,
        "p": 2 * (1 - Z.cdf(abs(z))),
        "low": p2 - p1 - z_a * se,
        "high": p2 - p1 + z_a * se,
        "n": math.ceil(root**2 / (p2 - p1) ** 2),
    }


# -- binary metrics ----------------------------------------------------------------


def test_two_variants_against_hand_computation() -> None:
    assignments, results = table({"control": (1000, 100), "B": (1000, 130)})
    report = ab_report(assignments, results, experiment="exp", weights={"control": 1, "B": 1})
    b = row(report, "B")
    hand = two_proportion(1000, 100, 1000, 130)
    assert b.kind == "binary"
    assert (b.n, b.successes, b.rate) == (1000, 130, pytest.approx(0.13))
    assert b.abs_lift == pytest.approx(0.03)
    assert b.rel_lift == pytest.approx(0.3)
    assert b.statistic == pytest.approx(hand["z"], rel=1e-9)
    assert b.statistic == pytest.approx(2.1028, abs=1e-4)
    assert b.p_value == pytest.approx(hand["p"], rel=1e-6)
    assert b.p_value == pytest.approx(0.0355, abs=1e-4)
    assert b.p_adjusted == b.p_value  # two variants: no correction
    assert (b.ci_low, b.ci_high) == (pytest.approx(hand["low"]), pytest.approx(hand["high"]))
    assert b.ci_low == pytest.approx(0.00207, abs=1e-5)
    assert b.sample_size == hand["n"] == 1774
    assert b.verdict == "winner"
    assert report.verdict == "winner: B"
    control = row(report, "control")
    assert control.is_control and control.abs_lift is None and control.verdict is None
    se = math.sqrt(0.1 * 0.9 / 1000)
    assert control.rate_ci_low == pytest.approx(0.1 - Z.inv_cdf(0.975) * se)


def test_holm_correction_with_three_variants() -> None:
    groups = {"control": (1000, 100), "B": (1000, 130), "C": (1000, 95)}
    assignments, results = table(groups)
    report = ab_report(assignments, results, experiment="exp", control="control")
    p_b = two_proportion(1000, 100, 1000, 130)["p"]
    p_c = two_proportion(1000, 100, 1000, 95)["p"]
    assert p_b < p_c
    # Holm: smallest p times m=2, next times 1, then monotone.
    assert row(report, "B").p_adjusted == pytest.approx(min(1, 2 * p_b))
    assert row(report, "C").p_adjusted == pytest.approx(max(min(1, 2 * p_b), p_c))
    assert row(report, "B").p_value == pytest.approx(p_b)
    assert row(report, "B").verdict == "no significant difference yet"  # 0.071 after correction
    assert report.verdict == "no significant difference yet"
    assert report.variants == ["control", "B", "C"]


def test_holm_function() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_loser_and_control_wins() -> None:
    assignments, results = table({"A": (2000, 200), "B": (2000, 140)})
    report = ab_report(assignments, results, experiment="exp", control="A")
    assert row(report, "B").verdict == "loser"
    assert report.verdict == "winner: A"
    assert report.warnings == ["no weights given: sample ratio mismatch not checked"]
    assert report.srm is None


def test_sample_ratio_mismatch_overrides_the_verdict() -> None:
    assignments, results = table({"control": (1000, 100), "B": (1300, 170)})
    exp = Experiment(key="exp", variants=[Variant(name="control"), Variant(name="B")])
    report = ab_report(assignments, results, experiment=exp)
    assert report.srm is not None and report.srm.mismatch
    assert report.srm.chi2 == pytest.approx(2 * 150**2 / 1150)
    assert report.verdict == "sample ratio mismatch: do not trust"
    fair = ab_report(assignments, results, experiment="exp", weights={"control": 10, "B": 13})
    assert fair.srm is not None and not fair.srm.mismatch


# -- continuous metrics --------------------------------------------------------------


def test_continuous_metric_uses_welch() -> None:
    rng = np.random.default_rng(7)
    control, treated = rng.exponential(10, 400), rng.exponential(12, 300)
    ids = [f"r{i}" for i in range(700)]
    assignments = pd.DataFrame({"id": ids, "exp": ["A"] * 400 + ["B"] * 300})
    results = pd.DataFrame({"id": ids, "revenue": np.concatenate([control, treated])})
    report = ab_report(assignments, results, experiment="exp", weights={"A": 4, "B": 3})
    b = row(report, "B", "revenue")
    expected = stats.ttest_ind(treated, control, equal_var=False)
    interval = expected.confidence_interval(0.95)
    assert b.kind == "continuous"
    assert b.rate == pytest.approx(treated.mean())
    assert b.successes == pytest.approx(treated.sum())
    assert b.statistic == pytest.approx(expected.statistic)
    assert b.p_value == pytest.approx(expected.pvalue)
    assert (b.ci_low, b.ci_high) == (pytest.approx(interval.low), pytest.approx(interval.high))
    var_sum = control.var(ddof=1) + treated.var(ddof=1)
    needed = (
        (Z.inv_cdf(0.975) + Z.inv_cdf(0.8)) ** 2 * var_sum / (treated.mean() - control.mean()) ** 2
    )
    assert b.sample_size == math.ceil(needed)


def test_constant_continuous_metric_has_no_warning() -> None:
    assignments = pd.DataFrame({"id": list("abcdef"), "exp": list("AAABBB")})
    results = pd.DataFrame({"id": list("abcdef"), "revenue": [5.0] * 6})
    b = row(ab_report(assignments, results, experiment="exp"), "B", "revenue")
    assert (b.abs_lift, b.p_value, b.sample_size) == (0.0, 1.0, None)


# -- joining -------------------------------------------------------------------------


def test_missing_and_unassigned_ids_are_reported_not_zeroed() -> None:
    assignments, results = table({"A": (100, 10), "B": (100, 20)})
    results = results[~results["id"].isin(["A-0", "B-99"])]  # one success, one failure lost
    extra = pd.DataFrame({"id": ["ghost-1", "ghost-2"], "clicked": [1, 1]})
    report = ab_report(assignments, pd.concat([results, extra]), experiment="exp")
    assert sorted(report.missing_result_ids) == ["A-0", "B-99"]
    assert report.unassigned_ids == ["ghost-1", "ghost-2"]
    assert (report.assigned, report.analysed) == (200, 198)
    a = row(report, "A")
    assert (a.n, a.successes, a.rate) == (99, 9, pytest.approx(9 / 99))


def test_holdout_and_outside_recipients_are_excluded() -> None:
    assignments = pd.DataFrame(
        {
            "id": ["1", "2", "3", "4", "5", "6"],
            "exp": ["A", "B", None, "A", "B", None],
            "holdout": [False, False, False, False, False, True],
        }
    )
    results = pd.DataFrame({"id": [1, 2, 3, 4, 5, 6], "clicked": [1, 0, 1, 1, 1, 1]})
    report = ab_report(assignments, results, experiment="exp", control="A")
    assert report.outside_experiment == 2
    assert report.analysed == 4
    assert row(report, "A").successes == 2


def test_nan_in_a_metric_is_missing_for_that_metric_only() -> None:
    assignments, results = table({"A": (10, 5), "B": (10, 5)})
    results["revenue"] = [np.nan] + [1.5] * 19
    report = ab_report(assignments, results, experiment="exp")
    assert row(report, "A", "revenue").n == 9
    assert row(report, "A", "clicked").n == 10
    assert report.metrics == ["clicked", "revenue"]


def test_with_assign_frame_and_experiment_model() -> None:
    exp = Experiment(
        key="subject", variants=[Variant(name="A"), Variant(name="B", weight=3)], holdout=0.1
    )
    ids = pd.Series([f"user-{i}" for i in range(4000)])
    assignments = assign_frame([exp], ids)
    clicked = (assignments["subject"] == "B").astype(int).to_numpy() * (np.arange(4000) % 3 == 0)
    results = pd.DataFrame({"id": ids, "clicked": clicked})
    report = ab_report(assignments, results, experiment=exp)
    assert report.control == "A"
    assert report.variants == ["A", "B"]
    assert report.srm is not None and not report.srm.mismatch
    assert report.analysed == int((~assignments["holdout"]).sum())


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"metrics": ["nope"]}, "nope"),
        ({"metrics": ["label"]}, "label"),
        ({"control": "Z"}, "control"),
        ({"weights": {"A": 1}}, "variant"),
        ({"experiment": "missing"}, "missing"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs: dict, field: str) -> None:
    assignments, results = table({"A": (5, 1), "B": (5, 2)})
    results["label"] = "x"
    with pytest.raises(ConfigError) as excinfo:
        ab_report(assignments, results, **{"experiment": "exp", "metrics": ["clicked"], **kwargs})
    assert excinfo.value.field == field


def test_duplicate_result_ids_are_a_data_error() -> None:
    assignments, results = table({"A": (5, 1), "B": (5, 2)})
    with pytest.raises(ProfileDataError, match="not unique"):
        ab_report(assignments, pd.concat([results, results.head(1)]), experiment="exp")


# -- outputs -------------------------------------------------------------------------


def test_outputs_are_serializable() -> None:
    # the HTML page is drawn by renderer.reports.ab (tests/test_report_pages.py)
    assignments, results = table({"<b>ctl</b>": (500, 50), "B&B": (500, 80)})
    results["revenue"] = np.linspace(0, 10, 1000)
    report = ab_report(assignments, results, experiment="exp", control="<b>ctl</b>")
    json.dumps(report.to_dict(), allow_nan=False)
    rows = report.to_rows()
    assert len(rows) == 4 and {r["metric"] for r in rows} == {"clicked", "revenue"}


# -- loading ---------------------------------------------------------------------------


def test_load_results_csv_keeps_ids_as_text(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    path.write_text("id,opened,revenue\n007,1,2.5\n042,0,\n", encoding="utf-8")
    frame = load_results(path)
    assert frame["id"].tolist() == ["007", "042"]
    assert frame["opened"].tolist() == [1, 0]


def test_load_results_parquet(tmp_path: Path) -> None:
    path = tmp_path / "results.parquet"
    pd.DataFrame({"id": [1, 2], "clicked": [True, False]}).to_parquet(path)
    frame = load_results(path)
    assert frame["id"].tolist() == ["1", "2"]


def test_load_results_without_id_column(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    path.write_text("recipient,opened\n1,1\n", encoding="utf-8")
    with pytest.raises(ProfileDataError) as excinfo:
        load_results(path)
    assert (excinfo.value.file, excinfo.value.field) == (str(path), "id")


def test_load_results_rejects_other_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_results(tmp_path / "results.xlsx")
    with pytest.raises(ProfileDataError) as excinfo:
        load_results(tmp_path / "absent.csv")
    assert excinfo.value.file == str(tmp_path / "absent.csv")
