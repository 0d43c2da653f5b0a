"""Results as rows of text: what the CLI prints as tables (and a script can print too).

Rows are tuples of cells; ``None`` stands between sections.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from segments.experiments.stats import AbReport

Row = tuple[str, ...]

AB_COLUMNS = (
    "metric", "variant", "n", "rate", "lift", "95% CI of lift", "p (adj.)", "n needed",
    "verdict",
)  # fmt: skip


def summary_rows(summary: dict[str, Any]) -> list[Row | None]:
    """(label, count, share) rows of a build summary: where every input row went
    (rejection reasons included), segment sizes, experiment arms and their checks."""
    rows = summary["input_rows"] or 1
    table: list[Row | None] = [
        ("input rows", str(summary["input_rows"]), "100.0%"),
        ("rendered", str(summary["rendered"]), f"{summary['rendered'] / rows:.1%}"),
    ]
    for key, label in (
        ("holdout", "holdout (no email)"),
        ("excluded", "excluded (--exclude)"),
        ("not_sampled", "not in --sample"),
    ):
        if summary.get(key):
            table.append((label, str(summary[key]), f"{summary[key] / rows:.1%}"))
    table.append(("rejected", str(summary["rejected"]), f"{summary['rejected'] / rows:.1%}"))
    for reason, count in summary["rejected_by_reason"].items():
        table.append((f"  {reason}", str(count), f"{count / rows:.1%}"))
    table.append(None)
    rendered = summary["rendered"] or 1
    for name, count in summary["segments"].items():
        table.append((f"segment {name}", str(count), f"{count / rendered:.1%} of rendered"))
    for key, info in summary.get("experiments", {}).items():
        table.append(None)
        table.extend(_experiment_rows(key, info))
    return table


def _experiment_rows(key: str, info: dict[str, Any]) -> list[Row | None]:
    assigned = sum(info["counts"].values()) or 1
    rows: list[Row | None] = []
    for variant, count in info["counts"].items():
        share = f"{count / assigned:.1%} (weight {info['weights'][variant]:g})"
        rows.append((f"{key} = {variant}", str(count), share))
    if info.get("holdout"):
        rows.append((f"{key} holdout", str(info["holdout"]), f"{info['holdout_share']:.0%} target"))
    srm = info.get("srm")
    if srm:
        verdict = "MISMATCH: do not trust" if srm["mismatch"] else "ok"
        rows.append((f"{key} sample ratio", verdict, f"p = {srm['p_value']:.3g}"))
    return rows


def ab_rows(report: AbReport) -> list[Row]:
    """One row per metric and variant, in :data:`AB_COLUMNS` order."""
    rows: list[Row] = []
    for row in report.rows:
        if row.ci_low is None or row.ci_high is None:
            ci = ""
        elif row.kind == "binary":
            ci = f"[{row.ci_low * 100:+.2f}, {row.ci_high * 100:+.2f}] pp"
        else:
            ci = f"[{row.ci_low:+.2f}, {row.ci_high:+.2f}]"
        if row.rate is None:
            rate = ""
        else:
            rate = f"{row.rate:.2%}" if row.kind == "binary" else f"{row.rate:.2f}"
        rows.append((
            row.metric,
            row.variant + (" (control)" if row.is_control else ""),
            str(row.n),
            rate,
            "" if row.rel_lift is None else f"{row.rel_lift:+.1%}",
            ci,
            "" if row.p_adjusted is None else f"{row.p_adjusted:.3g}",
            "" if row.sample_size is None else str(row.sample_size),
            row.verdict or "",
        ))  # fmt: skip
    return rows


def ab_notes(report: AbReport) -> list[str]:
    """What the reader of an A/B table should know: warnings and unmatched ids."""
    notes = list(report.warnings)
    if report.unassigned_ids:
        notes.append(f"{len(report.unassigned_ids)} result ids are not in the manifest (ignored)")
    if report.missing_result_ids:
        notes.append(f"{len(report.missing_result_ids)} assigned recipients have no result row")
    return notes


def shown(value: Any) -> str:
    """A profile or threshold value as one short cell."""
    if value is None:
        return "(missing)"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:,.6g}"
    if isinstance(value, list | tuple) and value and isinstance(value[0], dict):
        return f"{len(value)} item(s)"
    if isinstance(value, list | tuple):
        return ", ".join(shown(item) for item in value)
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."
