"""The segments report page in a real browser: Playwright driving Debian's chromium.

Without ``/usr/bin/chromium`` (or Playwright) the test is skipped, unless
``MAILSMITH_REQUIRE_BROWSER=1`` (CI sets it), where it fails instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from renderer import load_campaign
from renderer.campaign import demo_campaign_path
from renderer.reports.segments import SegmentReport, segment_report

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHARTS = ("chart-sizes", "chart-overlap", "chart-scatter", "chart-kselect", "chart-funnel")

pytestmark = pytest.mark.browser


def _unavailable(reason: str) -> None:
    if os.environ.get("MAILSMITH_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests are required but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser.new_page(viewport={"width": 1200, "height": 900})
        finally:
            browser.close()


@pytest.fixture(scope="module")
def report() -> SegmentReport:
    return segment_report(load_campaign(demo_campaign_path()))


@pytest.fixture(scope="module")
def opened(page: Any, report: SegmentReport, tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("report") / "segments.html"
    path.write_text(report.to_html(), encoding="utf-8")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    assert requests == [path.as_uri()]  # self-contained: nothing else is fetched
    return page


def boxes(page: Any, selector: str) -> list[dict[str, float]]:
    """Bounding boxes of every element matching ``selector``, as the browser drew them."""
    return page.eval_on_selector_all(
        selector,
        "els => els.map(e => { const r = e.getBoundingClientRect();"
        " return {width: r.width, height: r.height, x: r.x, y: r.y}; })",
    )


def test_every_chart_is_drawn(opened: Any) -> None:
    for chart in CHARTS:
        (svg,) = boxes(opened, f"#{chart} svg")
        assert svg["width"] > 200 and svg["height"] > 100, chart


def test_one_bar_per_segment_sized_by_members(opened: Any, report: SegmentReport) -> None:
    bars = boxes(opened, "#chart-sizes rect.bar")
    assert len(bars) == len(report.segments)
    assert all(b["width"] > 0 and b["height"] > 0 for b in bars)
    names = opened.eval_on_selector_all(
        "#chart-sizes rect.bar", "els => els.map(e => e.dataset.segment)"
    )
    assert names == [row.name for row in report.segments]
    widest = max(range(len(bars)), key=lambda i: bars[i]["width"])
    assert report.segments[widest].size == max(row.size for row in report.segments)


def test_heatmap_scatter_kselection_and_funnel(opened: Any, report: SegmentReport) -> None:
    cells = boxes(opened, "#chart-overlap rect.cell")
    assert len(cells) == len(report.segments) ** 2 and all(c["width"] > 0 for c in cells)
    points = boxes(opened, "#chart-scatter circle.point")
    assert len(points) > 100 and all(p["width"] > 0 for p in points)
    colours = opened.eval_on_selector_all(
        "#chart-scatter circle.point", "els => new Set(els.map(e => e.getAttribute('fill'))).size"
    )
    assert colours == report.clusters[0].k  # one colour per cluster
    (cluster,) = report.clusters
    assert len(boxes(opened, "#chart-kselect circle.k-point")) == 2 * len(cluster.metrics)
    chosen = opened.eval_on_selector_all(
        "#chart-kselect circle.chosen", "els => els.map(e => Number(e.dataset.k))"
    )
    assert chosen == [cluster.k, cluster.k]
    for line in ("polyline.inertia-line", "polyline.silhouette-line"):
        (drawn,) = boxes(opened, f"#chart-kselect {line}")
        assert drawn["width"] > 50
    stages = boxes(opened, "#chart-funnel rect.stage")
    assert len(stages) == 4 and all(s["width"] > 0 for s in stages)
