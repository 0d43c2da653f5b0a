"""``mailsmith ab report``: join outcomes to a build's manifest and test each experiment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from renderer.build.output import iter_manifest
from segments.errors import ConfigError
from segments.experiments.stats import AbReport, ab_report, load_results


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


def reports_html(reports: list[AbReport]) -> str:
    """All experiments' pages, one after the other, as one self-contained page."""
    if len(reports) == 1:
        return reports[0].to_html()
    bodies = []
    for report in reports:
        page = report.to_html()
        start, end = page.find("<body>"), page.rfind("</body>")
        bodies.append(page[start + 6 : end] if start >= 0 and end > start else page)
    head = reports[0].to_html()
    head = head[: head.find("<body>") + 6] if "<body>" in head else "<html><body>"
    return head + "<hr>".join(bodies) + "</body></html>\n"
