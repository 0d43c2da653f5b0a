"""``mailsmith ab report``: join outcomes to a build's manifest and test each experiment.

:func:`report_from_manifest` returns one :class:`~segments.experiments.stats.AbReport`
per experiment (pure data); :func:`reports_html` draws them as one
self-contained page (``ab.html.j2``): per experiment its verdict and counts,
then per metric a chart of every variant's rate with its interval (a dashed
line at the control's rate) and the comparison table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from renderer.build.output import iter_manifest
from renderer.reports.charts import Chart, Interval, interval_chart
from renderer.reports.pages import render_page
from segments.errors import ConfigError
from segments.experiments.stats import (
    LOSER,
    SRM_VERDICT,
    WINNER,
    AbReport,
    VariantMetric,
    ab_report,
    load_results,
)

COLOURS = {WINNER: "#1a7f37", LOSER: "#cf222e"}
NEUTRAL = "#0969da"
DASH = "\u2013"  # an undefined number in the table
HEADINGS = "variant n successes rate lift rel.lift CI p p(adj) n/group verdict".split()


def read_assignments(manifest: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Assignments (id, holdout, one column per experiment) and the build's experiment config."""
    rows = [
        {"id": str(e["id"]), "holdout": bool(e.get("holdout")), **e.get("variants", {})}
        for e in iter_manifest(manifest)
    ]
    summary_path = manifest.with_name("summary.json")
    experiments: dict[str, Any] = {}
    if summary_path.is_file():
        experiments = json.loads(summary_path.read_text(encoding="utf-8")).get("experiments", {})
    return pd.DataFrame(rows), experiments


def report_from_manifest(
    results: Path,
    manifest: Path,
    *,
    experiment: str | None = None,
    metrics: list[str] | None = None,
    alpha: float = 0.05,
) -> list[AbReport]:
    """One report per experiment in the manifest (or just ``experiment``)."""
    assignments, configs = read_assignments(manifest)
    outcomes = load_results(results)
    keys = (
        [experiment]
        if experiment
        else list(configs) or [c for c in assignments.columns if c not in ("id", "holdout")]
    )
    reports = []
    for key in keys:
        if key not in assignments.columns:
            raise ConfigError(
                f"the manifest has no experiment {key!r}",
                file=str(manifest),
                hint=f"experiments: {', '.join(configs) or '(none)'}",
            )
        weights = configs.get(key, {}).get("weights")
        frame = assignments[["id", "holdout", key]]
        reports.append(
            ab_report(
                frame, outcomes, experiment=key, metrics=metrics, weights=weights, alpha=alpha
            )
        )
    return reports


# --- the page ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSection:
    """One metric of one experiment: its chart and table rows (cells already formatted)."""

    metric: str
    kind: str
    chart: Chart
    rows: list[tuple[str, list[str]]]  # (row class: winner, loser or "", cells)


@dataclass(frozen=True)
class ExperimentSection:
    """One experiment: its report, the lines under the verdict and a section per metric."""

    report: AbReport
    alarm: bool  # the verdict is a sample ratio mismatch
    summary: list[str]
    metrics: list[MetricSection]


def reports_html(reports: list[AbReport]) -> str:
    """All experiments' reports, one after the other, as one self-contained page."""
    return render_page("ab.html.j2", experiments=[_section(r) for r in reports], headings=HEADINGS)


def _section(report: AbReport) -> ExperimentSection:
    metrics = []
    for metric in report.metrics:
        rows = [r for r in report.rows if r.metric == metric]
        table = [(r.verdict if r.verdict in COLOURS else "", _cells(r)) for r in rows]
        metrics.append(MetricSection(metric, rows[0].kind, rates_chart(rows), table))
    return ExperimentSection(report, report.verdict == SRM_VERDICT, _summary(report), metrics)


def _summary(report: AbReport) -> list[str]:
    srm = report.srm
    return [
        f"control: {report.control}; alpha {report.alpha:g}",
        f"recipients analysed: {report.analysed} of {report.assigned} assigned",
        f"assigned without results (excluded): {len(report.missing_result_ids)}",
        f"results for unassigned ids (ignored): {len(report.unassigned_ids)}",
        f"results for recipients outside the experiment: {report.outside_experiment}",
        "sample ratio: not checked"
        if srm is None
        else f"sample ratio: chi2 {srm.chi2:.3f}, p {srm.p_value:.4g}",
        *report.warnings,
    ]


def _fmt(value: float | None, kind: str, *, signed: bool = False) -> str:
    """A rate or lift: percent for binary metrics, four significant digits otherwise."""
    if value is None:
        return DASH
    sign = "+" if signed else ""
    return f"{value * 100:{sign}.2f}%" if kind == "binary" else f"{value:{sign},.4g}"


def _maybe(value: float | int | None, spec: str) -> str:
    return DASH if value is None else format(value, spec)


def _cells(r: VariantMetric) -> list[str]:
    ci = DASH if r.ci_low is None else f"{_fmt(r.ci_low, r.kind)} \u2026 {_fmt(r.ci_high, r.kind)}"
    return [
        r.variant + (" (control)" if r.is_control else ""),
        f"{r.n:,}",
        f"{r.successes:,.6g}",
        _fmt(r.rate, r.kind),
        _fmt(r.abs_lift, r.kind, signed=True),
        DASH if r.rel_lift is None else f"{r.rel_lift * 100:+.1f}%",
        ci,
        _maybe(r.p_value, ".4g"),
        _maybe(r.p_adjusted, ".4g"),
        _maybe(r.sample_size, ","),
        r.verdict or "",
    ]


def rates_chart(rows: list[VariantMetric]) -> Chart:
    """Rates as dots with their intervals, one line per variant; dashed at the control's rate."""
    kind = rows[0].kind
    intervals = [
        Interval(
            r.variant,
            r.rate,
            r.rate_ci_low,
            r.rate_ci_high,
            COLOURS.get(r.verdict or "", NEUTRAL),
            data={"variant": r.variant},
            tip=f"{r.variant}: {_fmt(r.rate, kind)} ({_fmt(r.rate_ci_low, kind)} \u2026 "
            f"{_fmt(r.rate_ci_high, kind)})",
        )
        for r in rows
    ]
    return interval_chart(
        intervals,
        "rates with confidence intervals",
        reference=rows[0].rate,
        fmt=lambda value: _fmt(value, kind),
    )
