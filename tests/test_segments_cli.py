"""``mailsmith segments``: the table, the report page, explanations, --strict; and its twins."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app
from renderer import load_campaign
from renderer.campaign import demo_campaign_path
from renderer.reports.segments import SegmentReport, explain_profile, segment_report
from tests.conftest import DATA

runner = CliRunner(env={"COLUMNS": "160"})
DEMO_SEGMENTS = [
    "vip",
    "cart_abandoner",
    "lapsed",
    "new_subscriber",
    "high_value_ny",
    "loyalty_elite",
    "at_risk",
    "engaged",
    "champions",
    "engaged_browsers",
]


@pytest.fixture(scope="module")
def demo_report() -> SegmentReport:
    return segment_report(load_campaign(demo_campaign_path()))


def test_demo_segments_table(demo_report: SegmentReport) -> None:
    result = runner.invoke(app, ["segments"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # every demo segment is above 1% of the audience
    for row in demo_report.segments:
        line = next(x for x in result.stdout.splitlines() if re.match(rf"│ {row.name}\s+│", x))
        assert str(row.size) in line and f"{row.share:.1%}" in line
    assert [r.name for r in demo_report.segments] == DEMO_SEGMENTS
    assert "exclusive group journey" in result.stdout
    assert "regular" in result.stdout
    assert "cluster value_cluster (k = 4, loaded:" in result.stdout
    assert "browsers (19%): average monetary_total" in result.stdout
    assert "engaged: engagement_score gte p75 = " in result.stdout
    assert "events: 31757 of 31765 used, 8 rejected" in result.stdout


def test_demo_report_agrees_with_a_full_build(
    demo_report: SegmentReport, demo_build: tuple[Path, dict[str, Any]]
) -> None:
    _, summary = demo_build
    audience = summary["audience"]
    assert audience["profiles"] == demo_report.profiles
    assert audience["segments"] == {r.name: r.size for r in demo_report.segments}
    journey = next(g for g in demo_report.groups if g.name == "journey")
    assert audience["exclusive"]["journey"] == journey.counts and journey.unassigned == 0
    assert sum(journey.counts.values()) == demo_report.profiles
    assert demo_report.lifecycle is not None
    assert sum(demo_report.lifecycle.values()) == demo_report.profiles
    assert summary["warnings"] == [] and summary["events"]["rejected"] == 8


def test_report_page_is_self_contained(tmp_path: Path) -> None:
    page = tmp_path / "segments.html"
    result = runner.invoke(app, ["segments", "--report", str(page)])
    assert result.exit_code == 0, result.output
    html = page.read_text()
    for chart in ("chart-sizes", "chart-overlap", "chart-scatter", "chart-kselect", "chart-funnel"):
        assert f'id="{chart}"' in html
    assert html.count('class="bar"') == len(DEMO_SEGMENTS)
    assert html.count('class="cell"') == len(DEMO_SEGMENTS) ** 2
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html and "<link" not in html
    assert "C000" not in html  # no profile ids in the page


def test_report_scatter_axes(demo_report: SegmentReport, tmp_path: Path) -> None:
    html = demo_report.to_html(x="recency_days", y="engagement_score")
    assert "Clusters: engagement_score by recency_days" in html
    result = runner.invoke(
        app, ["segments", "--report", str(tmp_path / "r.html"), "--x", "first_name"]
    )
    assert result.exit_code == 2
    assert "--x 'first_name' is not a numeric field" in result.stderr


def test_explain_one_profile() -> None:
    result = runner.invoke(app, ["segments", "--explain", "C000009"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Profile C000009" in out
    assert "cart_abandoner: yes" in out and "vip: no" in out
    assert re.search(r"cart_abandoned\s+│ eq\s+│ True\s+│ True\s+│ yes", out)
    assert re.search(r"engagement_score │ gte\s+│ p75 = 9\.8\d* │", out)
    assert "segment vip" in out  # lapsed uses {not: {segment: vip}}
    assert "journey: cart_abandoner" in out and "value_cluster: dormant" in out


def test_explain_twin_holds_the_values() -> None:
    result = explain_profile(load_campaign(demo_campaign_path()), "C000009")
    engaged = next(s for s in result.segments if s.name == "engaged")
    (condition,) = engaged.conditions
    # rows with total_spent "n/a" are in the audience since na_values (missing: default 0)
    assert condition.percentile == "p75" and condition.threshold == pytest.approx(9.8453, 1e-4)
    assert condition.matched is (condition.actual >= condition.threshold)
    assert result.derived["lifecycle_stage"] == "active"
    assert result.groups == {"journey": "cart_abandoner"}


def test_explain_unknown_and_rejected_profiles() -> None:
    unknown = runner.invoke(app, ["segments", "--explain", "NOPE"])
    assert unknown.exit_code == 3 and "no profile with id 'NOPE'" in unknown.stderr
    rejected = runner.invoke(app, ["segments", "--explain", "C000023"])
    assert rejected.exit_code == 3 and "is rejected" in rejected.stderr


def test_strict_segments_report(tmp_path: Path) -> None:
    folder = tmp_path / "mini"
    shutil.copytree(DATA / "audience", folder)
    campaign = str(folder / "campaign.yaml")
    warned = runner.invoke(app, ["segments", campaign])
    assert warned.exit_code == 0
    assert "warning: segment 'tiny' has 1 members" in warned.stderr
    assert "below minimum" in warned.stdout
    assert "fitted now" in warned.stdout  # no model yet: fitted and saved
    assert (folder / "mini.clusters.json").is_file()
    again = runner.invoke(app, ["segments", campaign])
    assert "loaded" in again.stdout
    strict = runner.invoke(app, ["segments", campaign, "--strict"])
    assert strict.exit_code == 7 and strict.stderr.startswith("Error:")


def test_segments_help_and_build_options() -> None:
    result = runner.invoke(app, ["segments", "--help"])
    assert result.exit_code == 0
    for option in ("--report", "--explain", "--strict", "--refit", "--as-of", "--x", "--y"):
        assert option in result.stdout
    build = runner.invoke(app, ["build", "--help"])
    for option in ("--strict", "--refit", "--baseline"):
        assert option in build.stdout


def test_build_prints_events_and_summary_json_counts_them(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["build", "--out", str(tmp_path / "o"), "--quiet", "--limit", "200"]
    )
    assert result.exit_code == 0, result.output
    assert "Events: 31757 of 31765 rows used, 8 rejected" in result.stdout
    errors = (tmp_path / "o" / "events_errors.jsonl").read_text().splitlines()
    assert len(errors) == 8
    assert {json.loads(x)["reason"] for x in errors} >= {"missing", "not in the profile source"}
