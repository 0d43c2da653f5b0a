"""The report pages (templates under renderer/reports/templates) and the chart geometry.

Pages are parsed with the standard library's HTML parser; the browser checks
are in tests/test_report_browser.py.
"""

from __future__ import annotations

import ast
import math
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from renderer.reports.ab import reports_html
from renderer.reports.charts import (
    Bar,
    Dot,
    Interval,
    Line,
    Rect,
    Scale,
    Text,
    bar_chart,
    interval_chart,
    scatter,
)
from renderer.reports.segments import SegmentReport, SegmentRow
from segments.experiments.stats import AbReport, ab_report

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = "<b>x</b> & \"q\" 'a'"
OUTSIDE = ("<script", "src=", "href=", "@import", "url(", "https://", "<link")


class Tags(HTMLParser):
    """Every start tag with its attributes, and the page's text, in document order."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, css: str | None = None) -> list[dict[str, str | None]]:
        return [
            a
            for t, a in self.tags
            if t == tag and (css is None or css in (a.get("class") or "").split())
        ]


def experiment(name: str, groups: dict[str, tuple[int, int]]) -> AbReport:
    """A binary ``clicked`` and a continuous ``revenue`` metric: variant -> (n, clicks)."""
    ids, variants, clicks = [], [], []
    for variant, (n, successes) in groups.items():
        ids += [f"{variant}-{i}" for i in range(n)]
        variants += [variant] * n
        clicks += [1 if i < successes else 0 for i in range(n)]
    results = pd.DataFrame({"id": ids, "clicked": clicks})
    results["revenue"] = np.arange(len(ids)) % 7 * 2.5  # about the same mean in every variant
    assignments = pd.DataFrame({"id": ids, name: variants})
    control = next(iter(groups))
    return ab_report(assignments, results, experiment=name, control=control)


# -- the A/B page ----------------------------------------------------------------------


def test_ab_page_is_self_contained_and_escaped() -> None:
    report = experiment("exp", {HOSTILE: (500, 50), "B&B": (500, 80)})
    page = reports_html([report])
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 2 and "<circle" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>" not in page
    for needle in OUTSIDE:
        assert needle not in page
    tags = Tags(page)
    assert [a["data-variant"] for a in tags.find("circle", "rate")] == [HOSTILE, "B&B"] * 2


def test_ab_page_has_a_chart_and_a_table_per_metric() -> None:
    report = experiment("subject", {"A": (1000, 100), "B": (1000, 160), "C": (1000, 95)})
    tags = Tags(reports_html([report]))
    assert [a["data-metric"] for a in tags.find("div", "metric")] == ["clicked", "revenue"]
    assert len(tags.find("svg")) == len(tags.find("table", "comparison")) == 2
    assert len(tags.find("circle", "rate")) == 2 * 3
    assert len(tags.find("line", "reference")) == 2  # the control's rate, dashed
    assert len(tags.find("tr")) == 2 * (1 + 3)  # a heading row and one per variant
    assert len(tags.find("tr", "winner")) == 1 and report.verdict == "winner: B"


def test_ab_page_shows_every_experiment_under_one_title() -> None:
    first = experiment("subject_test", {"A": (300, 30), "B": (300, 40)})
    second = experiment("offer_test", {"control": (300, 30), "free": (300, 30)})
    page = reports_html([first, second])
    tags = Tags(page)
    sections = [a["data-experiment"] for a in tags.find("section", "experiment")]
    assert sections == ["subject_test", "offer_test"]
    assert len(tags.find("hr")) == 1
    assert page.count("<title>A/B report") == 1
    assert "<title>A/B report: subject_test, offer_test</title>" in page


def test_sample_ratio_mismatch_is_flagged_on_the_page() -> None:
    ids = [str(i) for i in range(1000)]
    assignments = pd.DataFrame({"id": ids, "exp": ["A"] * 700 + ["B"] * 300})
    results = pd.DataFrame({"id": ids, "clicked": [i % 2 for i in range(1000)]})
    report = ab_report(assignments, results, experiment="exp", weights={"A": 1, "B": 1})
    (verdict,) = Tags(reports_html([report])).find("p", "verdict")
    assert verdict["class"] == "verdict bad"


# -- the segments page -----------------------------------------------------------------


def small_report(name: str = HOSTILE) -> SegmentReport:
    names = [name, "other"]
    overlap = pd.DataFrame([[40, 10], [10, 5]], index=names, columns=names)
    rows = [SegmentRow(name, 40, 0.4, 10, "10%"), SegmentRow("other", 5, 0.05, 10, "10%")]
    return SegmentReport(
        campaign=f"campaign {name}",
        as_of=datetime(2026, 11, 20, tzinfo=UTC),
        profiles=100,
        segments=rows,
        overlap=overlap,
        warnings=[f"segment {name} is small"],
    )


def test_segments_page_escapes_names_and_says_what_is_missing() -> None:
    page = small_report().to_html()
    assert "<b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    for needle in OUTSIDE:
        assert needle not in page
    tags = Tags(page)
    assert [a["data-segment"] for a in tags.find("rect", "bar")] == [HOSTILE, "other"]
    assert len(tags.find("rect", "cell")) == 4
    assert len(tags.find("line", "minimum")) == 2
    assert [a["id"] for a in tags.find("figure", "chart")] == [
        "chart-sizes",
        "chart-overlap",
        "chart-scatter",
        "chart-kselect",
        "chart-funnel",
    ]
    assert len(tags.find("svg")) == 2  # no clusters, no lifecycle: said in words
    empty = [t for t in tags.text if "No cluster segments" in t or "No lifecycle" in t]
    assert len(empty) == 3
    (small,) = tags.find("rect", "bar")[1:]
    assert small["fill"] == "#b5562b"  # below its minimum


# -- chart geometry --------------------------------------------------------------------


def test_scale_spans_the_finite_values_and_never_divides_by_zero() -> None:
    scale = Scale.fit([2.0, math.nan, None, 4.0], 0, 100)
    assert (scale(2.0), scale(3.0), scale(4.0)) == (0.0, 50.0, 100.0)
    flat = Scale.fit([5.0, 5.0], 0, 100)
    assert (flat.low, flat.high, flat(5.0)) == (4.0, 6.0, 50.0)
    assert Scale.fit([], 0, 10)(0.5) == 5.0
    padded = Scale.fit([0.0, 10.0], 0, 120, margin=0.1)
    assert (padded.low, padded.high) == (-1.0, 11.0)


def test_bar_chart_scales_bars_and_markers_to_the_largest_value() -> None:
    chart = bar_chart([Bar("a", 50, "red", marker=100), Bar("b", 25, "blue")], "bars", area=400)
    bars = [m for m in chart.marks if isinstance(m, Rect)]
    assert [b.width for b in bars] == [200.0, 100.0]  # the marker (100) is the largest
    (marker,) = [m for m in chart.marks if isinstance(m, Line)]
    assert marker.x1 == bars[0].x + 400
    assert chart.width > max(b.x + b.width for b in bars)
    centred = bar_chart([Bar("a", 10, "red"), Bar("b", 5, "red")], "f", area=400, centred=True)
    wide, narrow = (m for m in centred.marks if isinstance(m, Rect))
    assert wide.x + wide.width / 2 == narrow.x + narrow.width / 2


def test_scatter_leaves_out_missing_points_and_greys_unknown_groups() -> None:
    chart = scatter(
        [1.0, 2.0, math.nan, 3.0], [1.0, 2.0, 3.0, 4.0], ["a", "b", "a", "z"],
        {"a": "red", "b": "blue"}, "s", x_title="x", y_title="y",
    )  # fmt: skip
    dots = [m for m in chart.marks if isinstance(m, Dot)]
    assert [d.fill for d in dots] == ["red", "blue", "#bbbbbb"]
    assert all(0 <= d.cx <= chart.width and 0 <= d.cy <= chart.height for d in dots)
    assert {"x", "y", "a", "b"} <= {m.text for m in chart.marks if isinstance(m, Text)}


def test_interval_chart_draws_the_reference_at_the_control_value() -> None:
    rows = [Interval("A", 0.1, 0.08, 0.12, "blue"), Interval("B", None, None, None, "blue")]
    chart = interval_chart(rows, "rates", reference=0.1)
    (reference,) = [m for m in chart.marks if isinstance(m, Line)]
    (dot,) = [m for m in chart.marks if isinstance(m, Dot)]
    assert reference.x1 == dot.cx and 0 < dot.cx < chart.width


# -- where HTML lives ------------------------------------------------------------------


@pytest.mark.parametrize("module", ["html", "jinja2", "markupsafe"])
def test_the_segments_package_knows_nothing_of_html(module: str) -> None:
    for path in (ROOT / "segments").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert all(n.split(".")[0] != module for n in names), path
    assert not hasattr(AbReport, "to_html")
