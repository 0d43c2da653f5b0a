"""What the ``mailsmith`` shell prints: rich tables and lines for each command's result.

Split from ``cli.py`` so the shell stays a list of commands; every function takes a
library result and prints it literally (no rich markup is read from data, nothing wraps).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

import renderer

if TYPE_CHECKING:
    from renderer import AbReport, Campaign, CheckReport, ProfileExplanation, SegmentReport

# Everything printed is literal (file names, messages and profile values may hold
# "[...]", which rich would take for markup) and never wrapped (a wrapped path or
# message cannot be copied or grepped); tables still fit the terminal.
out = Console(markup=False, soft_wrap=True)
err = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)


def summary_table(summary: dict[str, Any]) -> Table:
    """Where every input row went (reasons of rejection included), segments, experiments."""
    table = Table(title=f"{summary['campaign']} ({summary['template']}, as of {summary['as_of']})")
    table.add_column("", style="bold")
    table.add_column("count", justify="right")
    table.add_column("share", justify="right")
    for row in renderer.summary_rows(summary):
        if row is None:
            table.add_section()
        else:
            table.add_row(*row)
    return table


def output_line(output: dict[str, Any] | None) -> str:
    """Where the emails went: ``Output: jsonl (zstd), 12 shards of up to 1000 rows.``"""
    if not output or output["format"] == "files":
        return "Output: files (an HTML and a text file per email)."
    compression = "" if output["compression"] in (None, "none") else f" ({output['compression']})"
    shards = output["shards"]
    plural = "shard" if shards == 1 else "shards"
    return (
        f"Output: {output['format']}{compression}, {shards} {plural} "
        f"of up to {output['shard_size']} rows."
    )


def print_summary(summary: dict[str, Any], campaign: Campaign) -> None:
    out.print(summary_table(summary))
    timing = summary["timing"]
    accounted = sum(
        summary.get(k, 0) for k in ("rendered", "rejected", "holdout", "excluded", "not_sampled")
    )
    out.print(
        f"{summary['rendered']} emails in {timing['duration_seconds']} s "
        f"({timing['recipients_per_second']} rows/s); "
        f"{summary['layouts_used']} layout(s), each compiled once."
    )
    out.print(output_line(summary.get("output")))
    if not summary["input_rows"]:
        source = campaign.path(campaign.profiles.path)
        err.print(f"Warning: {source} has no profile rows; nothing was rendered")
    if accounted == summary["input_rows"]:
        out.print(
            "Reconciled: input rows = rendered + rejected + holdout + excluded + not sampled."
        )
    else:
        err.print(f"WARNING: {summary['input_rows']} input rows but {accounted} accounted for")
    events = summary.get("events")
    if events:
        out.print(
            f"Events: {events['accepted']} of {events['rows']} rows used, {events['rejected']} "
            f"rejected (see events_errors.jsonl)."
        )
    for warning in summary.get("warnings", []):
        err.print(f"warning: {warning}")


def print_segments(report: SegmentReport) -> None:
    table = Table(title=f"{report.campaign}: {report.profiles} profiles as of {report.as_of}")
    for column in ("segment", "size", "share", "minimum", "flags"):
        table.add_column(column, justify="right" if column in ("size", "share") else "left")
    for row in report.segments:
        table.add_row(
            row.name, str(row.size), f"{row.share:.1%}", f"{row.minimum} ({row.limit})",
            ", ".join(row.flags),
        )  # fmt: skip
    out.print(table)
    for group in report.groups:
        counts = Table(title=f"exclusive group {group.name} (in priority order)")
        counts.add_column("label")
        counts.add_column("profiles", justify="right")
        for label, count in [*group.counts.items(), ("(unassigned)", group.unassigned)]:
            counts.add_row(label, str(count))
        out.print(counts)
    for cluster in report.clusters:
        how = "fitted now" if cluster.fitted else "loaded"
        title = (f"cluster {cluster.name}", "bold")
        out.print(Text.assemble(title, f" (k = {cluster.k}, {how}: {cluster.model_file})"))
        for line in cluster.descriptions:
            out.print(f"  {line}", highlight=False)
    for threshold in report.thresholds:
        out.print(f"percentile: {threshold.segment}: {threshold.field} {threshold.op} {threshold}")
    if report.events:
        events = report.events
        out.print(
            f"events: {events['accepted']} of {events['rows']} used, {events['rejected']} rejected"
        )
    for line in report.recommendations:  # the offline evaluation (docs/delivery.md)
        out.print(line, highlight=False)


def print_explanation(result: ProfileExplanation) -> None:
    shown = renderer.shown
    out.print(Text.assemble((f"Profile {result.profile_id}", "bold"), f" as of {result.as_of}"))
    for check in result.segments:
        verdict = ("yes", "green") if check.matched else ("no", "red")
        table = Table(title=Text.assemble(f"{check.name}: ", verdict), title_justify="left")
        for column in ("field", "op", "threshold", "value", "matched"):
            table.add_column(column)
        for cond in check.conditions:
            threshold = "" if cond.op in ("exists", "missing") else shown(cond.threshold)
            if cond.percentile:
                threshold = f"{cond.percentile} = {threshold}"
            table.add_row(
                cond.field,
                cond.op,
                threshold,
                renderer.shown(cond.actual),
                "yes" if cond.matched else "no",
            )
        for name, hit in check.uses.items():
            table.add_row(f"segment {name}", "", "", "", "yes" if hit else "no")
        out.print(table)
    for name, label in {**result.groups, **result.clusters}.items():
        out.print(f"{name}: {label if label is not None else '(none)'}", highlight=False)


def print_report(report: AbReport) -> None:
    table = Table(title=f"{report.experiment}: {report.verdict}")
    for column in renderer.AB_COLUMNS:
        left = column in ("metric", "variant", "verdict")
        table.add_column(column, justify="left" if left else "right")
    for row in renderer.ab_rows(report):
        table.add_row(*row)
    out.print(table)
    for note in renderer.ab_notes(report):
        err.print(f"note: {note}")


def print_findings(report: CheckReport, *, infos: bool = False) -> None:
    """``mailsmith check``: one table per file (infos only with ``infos``), then counts."""
    shown = [f for f in report.findings if infos or f.severity.value != "info"]
    for file, findings in renderer.findings_by_file(shown).items():
        table = Table(title=file, title_justify="left")
        for column in ("line", "severity", "rule", "message", "hint"):
            table.add_column(column, justify="right" if column == "line" else "left")
        for f in findings:
            table.add_row(str(f.line or ""), f.severity.value, f.rule, f.message, f.hint)
        out.print(table)
    hidden = len(report.findings) - len(shown)
    out.print(
        f"{report.campaign}: {report.errors} error(s), {report.warnings} warning(s) over "
        f"{report.representatives} representative email(s); {report.ignored} ignored"
        + (f"; {hidden} info(s) not shown (--infos)." if hidden else ".")
    )
