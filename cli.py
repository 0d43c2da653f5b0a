"""The ``mailsmith`` command line: a thin shell over the library.

Each command parses its options, makes one library call and prints. Errors
cross one boundary (:func:`_run`) that prints ``Error: ...`` to stderr and exits
with the error's code.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from renderer import (
    BuildOptions,
    Campaign,
    MailsmithError,
    adhoc_campaign,
    demo_campaign_path,
    iter_build,
    load_campaign,
    render_profile,
    too_many_rejected,
)
from segments.profiles import count_rows

app = typer.Typer(
    help="mailsmith: personalized email rendering (segments + Jinja + MJML, compiled once).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)
T = TypeVar("T")
TOO_MANY_REJECTED = 6

CampaignArg = Annotated[
    Path | None,
    typer.Argument(
        help="Campaign YAML file. Default: the shipped demo campaign.", show_default=False
    ),
]
AsOf = Annotated[
    datetime | None,
    typer.Option("--as-of", help="Reference time for relative windows (ISO 8601, UTC if naive)."),
]


def _run(action: Callable[[], T]) -> T:
    try:
        return action()
    except MailsmithError as exc:
        err.print(f"[bold red]Error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None


def _campaign(path: Path | None) -> Campaign:
    return load_campaign(path or demo_campaign_path())


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@app.command()
def build(
    campaign: CampaignArg = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder. Default: ./out")
    ] = None,
    as_of: AsOf = None,
    limit: Annotated[
        int | None, typer.Option(help="Build only the first N input rows.", min=1)
    ] = None,
    max_rejected: Annotated[
        str | None,
        typer.Option(help="Fail when more rows are rejected: a count (100) or share (5%)."),
    ] = None,
    template: Annotated[
        Path | None, typer.Option(help="Ad-hoc build: an MJML template file.")
    ] = None,
    profiles: Annotated[
        Path | None, typer.Option(help="Ad-hoc build: CSV, JSONL or Parquet profiles.")
    ] = None,
    segments: Annotated[
        Path | None, typer.Option(help="Ad-hoc build: a segments YAML file.")
    ] = None,
    subject: Annotated[str, typer.Option(help="Ad-hoc build: the subject (Jinja).")] = "",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Render every recipient of a campaign into files, a manifest and a summary."""
    if (template is None) != (profiles is None):
        err.print("Error: an ad-hoc build needs both --template and --profiles")
        raise typer.Exit(2)

    def load() -> Campaign:
        if template is not None and profiles is not None:
            return adhoc_campaign(template, profiles, segments, subject=subject)
        return _campaign(campaign)

    chosen = _run(load)
    options = BuildOptions(out=out_dir, as_of=_utc(as_of), limit=limit)
    summary = _run(lambda: _drive(chosen, options, quiet))
    _print_summary(summary, chosen)
    problem = too_many_rejected(summary, max_rejected) if max_rejected else None
    if max_rejected:
        problem = _run(lambda: too_many_rejected(summary, max_rejected))
    if problem:
        err.print(f"Error: {problem}. See {options.out or chosen.output.dir}/errors.jsonl")
        raise typer.Exit(TOO_MANY_REJECTED)


def _drive(campaign: Campaign, options: BuildOptions, quiet: bool) -> dict[str, Any]:
    source = campaign.profiles
    total = count_rows(campaign.path(source.path), source.resolved_format)
    if options.limit is not None and total is not None:
        total = min(total, options.limit)
    run, progress_events = iter_build(campaign, options)
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rendered {task.fields[rendered]}, rejected {task.fields[rejected]}"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=err, disable=quiet, transient=False) as bar:
        task = bar.add_task(f"Building {campaign.name}", total=total, rendered=0, rejected=0)
        for step in progress_events:
            bar.update(task, completed=step.rows, rendered=step.rendered, rejected=step.rejected)
        bar.update(task, total=run.summary.get("input_rows", total))
    return run.summary


def _print_summary(summary: dict[str, Any], campaign: Campaign) -> None:
    table = Table(title=f"{summary['campaign']} ({summary['template']}, as of {summary['as_of']})")
    table.add_column("", style="bold")
    table.add_column("count", justify="right")
    table.add_column("share", justify="right")
    rows = summary["input_rows"] or 1
    table.add_row("input rows", str(summary["input_rows"]), "100.0%")
    table.add_row("rendered", str(summary["rendered"]), f"{summary['rendered'] / rows:.1%}")
    if summary.get("holdout"):
        table.add_row(
            "holdout (not sent)", str(summary["holdout"]), f"{summary['holdout'] / rows:.1%}"
        )
    table.add_row("rejected", str(summary["rejected"]), f"{summary['rejected'] / rows:.1%}")
    for reason, count in summary["rejected_by_reason"].items():
        table.add_row(f"  {reason}", str(count), f"{count / rows:.1%}")
    table.add_section()
    rendered = summary["rendered"] or 1
    for name, count in summary["segments"].items():
        table.add_row(f"segment {name}", str(count), f"{count / rendered:.1%} of rendered")
    for key, counts in summary.get("experiments", {}).items():
        for variant, count in counts.get("counts", {}).items():
            table.add_row(f"{key} = {variant}", str(count), "")
    out.print(table)
    timing = summary["timing"]
    out.print(
        f"{summary['rendered']} emails in {timing['duration_seconds']} s "
        f"({timing['recipients_per_second']} rows/s); "
        f"{summary['layouts_compiled']} layout(s) compiled. "
        "Reconciled: input rows = rendered + rejected + holdout."
        if summary["input_rows"]
        == summary["rendered"] + summary["rejected"] + summary.get("holdout", 0)
        else "WARNING: counts do not reconcile"
    )


@app.command()
def render(
    campaign: CampaignArg = None,
    profile: Annotated[
        str, typer.Option("--profile", "-p", help="The recipient id to render.")
    ] = ...,  # type: ignore[assignment]
    text: Annotated[
        bool, typer.Option("--text", help="Print the plain-text part instead of HTML.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file.")
    ] = None,
    as_of: AsOf = None,
    variant: Annotated[
        list[str] | None,
        typer.Option("--variant", help="Force a variant: experiment=variant (repeatable)."),
    ] = None,
) -> None:
    """Render one recipient's email (subject, preheader and HTML or text) for a designer."""
    forced = {}
    for item in variant or []:
        key, sep, value = item.partition("=")
        if not sep:
            err.print(f"Error: --variant {item!r} must look like experiment=variant")
            raise typer.Exit(2)
        forced[key] = value
    chosen = _run(lambda: _campaign(campaign))
    email = _run(lambda: render_profile(chosen, profile, as_of=_utc(as_of), variants=forced))
    body = email.text if text else email.html
    if output is not None:
        output.write_text(body, encoding="utf-8")
        err.print(f"Wrote {output} ({len(body.encode())} bytes)")
    segments = ", ".join(email.segments) or "-"
    header = f"Subject: {email.subject}\nPreheader: {email.preheader}\nSegments: {segments}\n"
    if output is None:
        sys.stdout.write(header + "\n" + body)
    else:
        sys.stdout.write(header)


if __name__ == "__main__":  # pragma: no cover
    app()
