"""The report pages (segments, A/B) in a real browser: Playwright driving Debian's chromium.

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
from renderer.reports.ab import reports_html
from renderer.reports.segments import SegmentReport, segment_report
from segments.experiments.stats import AbReport
from tests.test_report_pages import experiment

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
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser: Any, path: Path, text: str) -> Any:
    """``text`` written to ``path`` and opened; it must fetch nothing but itself."""
    path.write_text(text, encoding="utf-8")
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    assert requests == [path.as_uri()]  # self-contained: nothing else is fetched
    return page


@pytest.fixture(scope="module")
def report() -> SegmentReport:
    return segment_report(load_campaign(demo_campaign_path()))


@pytest.fixture(scope="module")
def opened(browser: Any, report: SegmentReport, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return open_page(browser, tmp_path_factory.mktemp("report") / "segments.html", report.to_html())


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


# -- the A/B page ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def experiments() -> list[AbReport]:
    return [
        experiment("subject_test", {"A": (1000, 100), "B": (1000, 160), "C": (1000, 95)}),
        experiment("offer_test", {"control": (800, 90), "free_shipping": (800, 100)}),
    ]


@pytest.fixture(scope="module")
def ab_opened(
    browser: Any, experiments: list[AbReport], tmp_path_factory: pytest.TempPathFactory
) -> Any:
    return open_page(browser, tmp_path_factory.mktemp("ab") / "ab.html", reports_html(experiments))


def test_ab_page_draws_a_chart_and_a_table_per_metric(
    ab_opened: Any, experiments: list[AbReport]
) -> None:
    sections = ab_opened.eval_on_selector_all(
        "section.experiment", "els => els.map(e => e.dataset.experiment)"
    )
    assert sections == [r.experiment for r in experiments]
    for report in experiments:
        for metric in report.metrics:
            where = f'section[data-experiment="{report.experiment}"] [data-metric="{metric}"]'
            (svg,) = boxes(ab_opened, f"{where} svg")
            assert svg["width"] > 200 and svg["height"] > 50
            dots = boxes(ab_opened, f"{where} circle.rate")
            assert len(dots) == len(report.variants)
            inside = [
                svg["x"] <= d["x"] and d["x"] + d["width"] <= svg["x"] + svg["width"] for d in dots
            ]
            assert all(inside) and all(d["width"] > 0 for d in dots)
            (reference,) = boxes(ab_opened, f"{where} line.reference")
            control = dots[0]
            assert abs(reference["x"] - (control["x"] + control["width"] / 2)) < 1.5
            rows = ab_opened.eval_on_selector_all(
                f"{where} table.comparison tr", "els => els.length"
            )
            assert rows == 1 + len(report.variants)
    winners = ab_opened.eval_on_selector_all(
        "tr.winner td:first-child", "els => els.map(e => e.textContent)"
    )
    assert winners == ["B"]
