"""The ``mailsmith`` command line: a thin shell over the library.

Each command parses its options, makes one library call and prints. Errors
cross one boundary (:func:`_run`) that prints ``Error: ...`` to stderr and exits
with the error's code; :func:`_fail` is the one place that prints it.

The library is imported lazily (``import renderer`` resolves names on first use),
so ``--help``, ``--version`` and usage errors never load pandas, scipy or MJML.
Everything printed is literal text: no rich markup is read from data.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.text import Text

# The library's public API, resolved lazily: pandas, scipy, Jinja and MJML load
# when a command first uses them, so --help, --version and usage errors are instant.
import cli_i18n
import cli_output
import renderer

if TYPE_CHECKING:
    from renderer import (
        BuildOptions,
        Campaign,
        CampaignBuild,
        Rendered,
    )

app = typer.Typer(
    help="mailsmith: personalized email rendering (segments + Jinja + MJML, compiled once).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich panels cost 0.2 s (docs/performance.md)
)
out, err = cli_output.out, cli_output.err  # literal, never wrapped: see cli_output.py
T = TypeVar("T")
VERSION = "0.1.0"  # shown when mailsmith runs from a source tree that is not installed
TOO_MANY_REJECTED = 6
SNAPSHOTS_DIFFER = 9  # mailsmith snapshot: a snapshot is new, changed or orphaned
INTERRUPTED = 130  # Ctrl-C or SIGTERM, as shells report a SIGINT

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
    """The error boundary: a library error prints as ``Error: ...`` and exits with its code."""
    try:
        return action()
    except renderer.MailsmithError as exc:
        _fail(str(exc), exc.exit_code)


def _fail(message: str, code: int) -> NoReturn:
    """The one way the CLI reports a failure: ``Error: message`` on stderr, exit ``code``."""
    err.print(Text.assemble(("Error:", "bold red"), " ", message))
    raise typer.Exit(code)


def _campaign(path: Path | None) -> Campaign:
    return renderer.load_campaign(path or renderer.demo_campaign_path())


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _pairs(items: list[str] | None, option: str) -> dict[str, str]:
    """``["exp=B"]`` -> ``{"exp": "B"}``; raises ConfigError for anything else."""
    pairs = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise renderer.ConfigError(f"{option} {item!r} must look like experiment=variant")
        pairs[key] = value
    return pairs


def _write(path: Path, text: str) -> None:
    """Write a file the user named; failing to is an OutputError, never a traceback."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise renderer.OutputError(
            f"cannot write the file: {exc.strerror or exc}", file=str(path)
        ) from None


def _print_version(value: bool) -> None:
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version("mailsmith")
    except PackageNotFoundError:
        number = VERSION
    out.print(f"mailsmith {number}")
    raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    pass


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
        typer.Option(
            help="Fail (exit 6) when more rows are rejected: a count (100) or share (5%). "
            "Default: fail when rows were rejected and nothing was rendered."
        ),
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
    delimiter: Annotated[
        str, typer.Option(help="Ad-hoc build: the CSV field separator, e.g. ';' or 'tab'.")
    ] = ",",
    encoding: Annotated[
        str, typer.Option(help="Ad-hoc build: the profiles' text encoding, e.g. cp1252.")
    ] = "utf-8",
    schema: Annotated[
        Path | None,
        typer.Option(
            help="Ad-hoc build: field types, a YAML `schema:` as in a campaign file; "
            "fields it leaves out are inferred from the first rows."
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Print the field types inferred from the data.")
    ] = False,
    sample: Annotated[
        str | None, typer.Option(help="Render a deterministic test cohort: a share like 20%.")
    ] = None,
    winner: Annotated[
        list[str] | None,
        typer.Option(help="Send one variant to everyone: experiment=variant (repeatable)."),
    ] = None,
    exclude: Annotated[
        list[Path] | None,
        typer.Option(help="Skip recipients listed in an earlier manifest.jsonl (repeatable)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    workers: Annotated[
        int, typer.Option(help="Processes (0: one per core); the output is the same.", min=0)
    ] = 1,
    strict: Annotated[
        bool, typer.Option(help="Fail (exit 7) on audience warnings: small segment, drift.")
    ] = False,
    refit: Annotated[
        bool, typer.Option(help="Fit the cluster models again and save them next to the campaign.")
    ] = False,
    baseline: Annotated[
        Path | None,
        typer.Option(help="An earlier build's output: warn when rule features drifted from it."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the last build (added files deleted with it).")
    ] = False,
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="files (an HTML and a text file per email), jsonl or parquet shards, eml "
            "(a message per email) or mbox shards. Default: the campaign's output.format, "
            "else files.",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue a build into the same --out that was killed outright (power loss, "
            "out of memory): its finished chunks are kept. Exit 2 if its inputs changed.",
        ),
    ] = False,
    executor: Annotated[
        str, typer.Option(help="local, or dask: a local Dask cluster of --workers processes.")
    ] = "local",
    scheduler: Annotated[
        str | None, typer.Option(help="--executor dask on a running cluster: tcp://host:8786.")
    ] = None,
    no_check: Annotated[
        bool,
        typer.Option(
            "--no-check",
            help="Skip the static part of `mailsmith check`, which otherwise refuses to "
            "start (exit 8) on errors such as a misspelled field.",
        ),
    ] = False,
) -> None:
    """Render every recipient of a campaign into files, a manifest and a summary."""
    # long: over 60 lines for its options only: the body parses them, makes one build, prints.
    # Every option value is checked before anything is read or written.
    from segments import parse_share

    def parse() -> BuildOptions:
        if (template is None) != (profiles is None):
            raise renderer.ConfigError("an ad-hoc build needs both --template and --profiles")
        if schema is not None and template is None:
            raise renderer.ConfigError(
                "--schema is for an ad-hoc build; a campaign file has `schema:`"
            )
        if max_rejected is not None:
            renderer.parse_max_rejected(max_rejected)
        return renderer.BuildOptions(
            out=out_dir,
            as_of=_utc(as_of),
            limit=limit,
            sample=parse_share(sample) if sample else None,
            winner=_pairs(winner, "--winner"),
            exclude=list(exclude or []),
            workers=workers,
            strict=strict,
            refit=refit,
            baseline=baseline,
            force=force,
            check=not no_check,
            format=format,
            resume=resume,
            executor=executor,
            scheduler=scheduler,
        )

    def load() -> Campaign:
        return _load_campaign(
            campaign, template, profiles, segments=segments, subject=subject,
            delimiter=delimiter, encoding=encoding, schema=schema,
        )  # fmt: skip

    options = _run(parse)
    chosen = _run(load)
    if verbose:
        for name, kind in _run(lambda: renderer.inferred_types(chosen)).items():
            err.print(f"inferred {name}: {kind}")
    run = _run(lambda: _drive(chosen, options, quiet))
    for note in run.notes:
        err.print(f"Note: {note}", markup=False)
    cli_output.print_summary(run.summary, chosen)
    problem = _rejection_problem(run.summary, max_rejected)
    if problem:
        _fail(f"{problem}; see {run.out / 'errors.jsonl'}", TOO_MANY_REJECTED)


def _load_campaign(
    campaign: Path | None, template: Path | None, profiles: Path | None, **adhoc: Any
) -> Campaign:
    """The campaign file, or the ad-hoc campaign of ``--template`` and ``--profiles``."""
    if (template is None) != (profiles is None):
        raise renderer.ConfigError("an ad-hoc campaign needs both --template and --profiles")
    if template is not None and profiles is not None:
        if adhoc.get("delimiter") in ("tab", "\\t"):
            adhoc["delimiter"] = "\t"
        return renderer.adhoc_campaign(template, profiles, **adhoc)
    return _campaign(campaign)


def _rejection_problem(summary: dict[str, Any], max_rejected: str | None) -> str | None:
    """Why rejected rows fail the build: more than --max-rejected or, without that
    option, nothing rendered while rows were rejected (an empty file is no failure)."""
    if max_rejected is not None:
        return renderer.too_many_rejected(summary, max_rejected)  # parsed before the build
    if summary["rendered"] or not summary["rejected"]:
        return None
    reasons: dict[str, int] = summary["rejected_by_reason"]
    mostly = max(reasons, key=lambda reason: reasons[reason])
    rows = summary["input_rows"]
    return f"nothing was rendered: {summary['rejected']} of {rows} rows rejected (mostly {mostly})"


@contextmanager
def _terminate_cleanly() -> Iterator[None]:
    """SIGTERM (a cancelled CI job, a killed container) stops a build like Ctrl-C does:
    workers stopped, staging folder removed, the previous build left as it was."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _drive(campaign: Campaign, options: BuildOptions, quiet: bool) -> CampaignBuild:
    try:
        with _terminate_cleanly():
            return _drive_build(campaign, options, quiet)
    except KeyboardInterrupt:
        err.print(
            "Interrupted: the build stopped and removed its partial output; "
            "the previous build (if any) is unchanged."
        )
        raise typer.Exit(INTERRUPTED) from None


def _drive_build(campaign: Campaign, options: BuildOptions, quiet: bool) -> CampaignBuild:
    """The build, with a progress bar on stderr; returns the finished build."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from segments import count_rows

    source = campaign.profiles
    total = count_rows(campaign.path(source.path), source.resolved_format)
    if options.limit is not None and total is not None:
        total = min(total, options.limit)
    run, progress_events = renderer.iter_build(campaign, options)
    columns = [
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rendered {task.fields[rendered]}, rejected {task.fields[rejected]}"),
        TimeRemainingColumn(),
    ]
    console = Console(stderr=True)  # its own: err never wraps, a bar must fit the terminal
    with Progress(*columns, console=console, disable=quiet, transient=False) as bar:
        task = bar.add_task(f"Building {campaign.name}", total=total, rendered=0, rejected=0)
        for step in progress_events:
            bar.update(task, completed=step.rows, rendered=step.rendered, rejected=step.rejected)
        bar.update(task, total=run.summary.get("input_rows", total))
    if run.audience is not None and run.audience.fitted:
        fitted = ", ".join(run.audience.fitted)
        err.print(f"Fitted cluster model(s) {fitted}; saved to {run.audience.model_path}")
    return run


@app.command()
def check(
    campaign: CampaignArg = None,
    fmt: Annotated[
        str, typer.Option("--format", help="table (default), json, or github (annotations).")
    ] = "table",
    strict: Annotated[bool, typer.Option(help="Fail (exit 8) on warnings too.")] = False,
    infos: Annotated[bool, typer.Option(help="Show infos in the table too.")] = False,
    as_of: AsOf = None,
    template: Annotated[Path | None, typer.Option(help="Ad-hoc: an MJML template file.")] = None,
    profiles: Annotated[Path | None, typer.Option(help="Ad-hoc: the profiles file.")] = None,
    segments: Annotated[Path | None, typer.Option(help="Ad-hoc: a segments YAML file.")] = None,
    subject: Annotated[str, typer.Option(help="Ad-hoc: the subject (Jinja).")] = "",
    delimiter: Annotated[str, typer.Option(help="Ad-hoc: the CSV field separator.")] = ",",
    encoding: Annotated[str, typer.Option(help="Ad-hoc: the profiles' text encoding.")] = "utf-8",
    schema: Annotated[Path | None, typer.Option(help="Ad-hoc: field types (YAML).")] = None,
) -> None:
    """Lint a campaign before sending: names, data, rendered emails. Exit 8 on errors."""
    if fmt not in ("table", "json", "github"):
        _fail(f"--format {fmt!r}: use table, json or github", 2)
    adhoc = {"segments": segments, "subject": subject, "delimiter": delimiter}
    adhoc |= {"encoding": encoding, "schema": schema}
    chosen = _run(lambda: _load_campaign(campaign, template, profiles, **adhoc))
    report = _run(lambda: renderer.check_campaign(chosen, as_of=_utc(as_of)))
    if fmt == "table":
        cli_output.print_findings(report, infos=infos)
    else:
        sys.stdout.write(renderer.format_findings(report.findings, fmt))
    raise typer.Exit(report.exit_code(strict))


@app.command()
def render(
    campaign: CampaignArg = None,
    profile: Annotated[
        str | None, typer.Option("--profile", "-p", help="The recipient id to render.")
    ] = None,
    segment: Annotated[
        str | None,
        typer.Option("--segment", "-s", help="Render the first recipient of this segment instead."),
    ] = None,
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
    """Render one recipient's email (subject, preheader and HTML or text) for a designer:
    exactly what the build writes for them (the same variants, unless --variant)."""

    def parse() -> dict[str, str]:
        if (profile is None) == (segment is None):
            raise renderer.ConfigError("give one of --profile ID or --segment NAME")
        return _pairs(variant, "--variant")

    forced = _run(parse)
    chosen = _run(lambda: _campaign(campaign))
    moment = _utc(as_of)

    def render_one() -> Rendered:
        if profile is not None:
            return renderer.render_profile(chosen, profile, as_of=moment, variants=forced)
        assert segment is not None  # parse() saw to it
        return renderer.render_segment(chosen, segment, as_of=moment, variants=forced)

    email = _run(render_one)
    body = email.text if text else email.html
    if output is not None:
        _run(lambda: _write(output, body))
        err.print(f"Wrote {output} ({len(body.encode())} bytes)")
    segments = ", ".join(email.segments) or "-"
    variants = ", ".join(f"{k}={v}" for k, v in email.variants.items()) or "-"
    header = (
        f"Subject: {email.subject}\nPreheader: {email.preheader}\n"
        f"Segments: {segments}\nVariants: {variants}\nProfile: {email.id} (row {email.row})\n"
    )
    if output is None:
        sys.stdout.write(header + "\n" + body)
    else:
        sys.stdout.write(header)


@app.command()
def preview(
    campaign: CampaignArg = None,
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free one).")] = 8025,
    host: Annotated[str, typer.Option(help="Address to bind (another host warns).")] = "127.0.0.1",
    open_: Annotated[bool, typer.Option("--open", help="Open the app in a browser.")] = False,
    as_of: AsOf = None,
) -> None:
    """Live preview app: every recipient, segment and variant, explained; reloads on edits."""

    def ready(url: str, warnings: list[str]) -> None:
        out.print(f"mailsmith preview on {url} (Ctrl-C to stop)")
        for warning in warnings:
            err.print(f"warning: {warning}")

    path = campaign or renderer.demo_campaign_path()
    _run(lambda: renderer.serve_preview(path, host=host, port=port, open_browser=open_,
                                        as_of=_utc(as_of), on_ready=ready))  # fmt: skip


@app.command("segments")
def segments_command(
    campaign: CampaignArg = None,
    as_of: AsOf = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Also write one self-contained HTML page.")
    ] = None,
    explain: Annotated[
        str | None, typer.Option("--explain", help="Test every rule on this profile id instead.")
    ] = None,
    strict: Annotated[
        bool, typer.Option(help="Exit 7 on warnings (a segment below its minimum size).")
    ] = False,
    refit: Annotated[
        bool, typer.Option(help="Fit the cluster models again and save them.")
    ] = False,
    x: Annotated[
        str | None, typer.Option("--x", help="Scatter x field. Default: first cluster feature.")
    ] = None,
    y: Annotated[
        str | None, typer.Option("--y", help="Scatter y field. Default: second cluster feature.")
    ] = None,
) -> None:
    """Every segment's size, share and flags; exclusive groups; clusters; or one profile."""
    chosen = _run(lambda: _campaign(campaign))
    if explain is not None:
        cli_output.print_explanation(
            _run(lambda: renderer.explain_profile(chosen, explain, _utc(as_of)))
        )
        return
    result = _run(lambda: renderer.segment_report(chosen, _utc(as_of), refit=refit))
    cli_output.print_segments(result)
    if report is not None:
        page = _run(lambda: result.to_html(x=x, y=y))
        _run(lambda: _write(report, page))
        err.print(f"Wrote {report}")
    if strict:
        _run(result.raise_for_warnings)
    for warning in result.warnings:
        err.print(f"warning: {warning}")


ab_app = typer.Typer(help="A/B test results.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(ab_app, name="ab")
app.add_typer(cli_i18n.app, name="i18n")  # mailsmith i18n extract | init | update | compile


@ab_app.command("report")
def ab_report_command(
    results: Annotated[
        Path, typer.Argument(help="Outcomes per recipient: CSV or Parquet with id.")
    ],
    manifest: Annotated[Path, typer.Option(help="The build's manifest.jsonl.")] = Path(
        "out/manifest.jsonl"
    ),
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    metric: Annotated[
        list[str] | None, typer.Option(help="Metrics to test (repeatable); the first decides.")
    ] = None,
    alpha: Annotated[float, typer.Option(help="Significance level.", min=0.0001, max=0.5)] = 0.05,
    html: Annotated[Path | None, typer.Option("--html", help="Also write an HTML page.")] = None,
) -> None:
    """Per variant and metric: rate, lift, interval, p-value, sample size, verdict."""
    reports = _run(
        lambda: renderer.ab_report(
            results, manifest, experiment=experiment, metrics=metric, alpha=alpha
        )
    )
    for report in reports:
        cli_output.print_report(report)
    if html is not None:
        _run(lambda: _write(html, renderer.ab_reports_html(reports)))
        err.print(f"Wrote {html}")


@app.command()
def snapshot(
    campaign: CampaignArg = None,
    update: Annotated[bool, typer.Option(help="Write new and changed snapshots.")] = False,
    prune: Annotated[bool, typer.Option(help="Remove snapshots no persona makes.")] = False,
    profile: Annotated[
        list[str] | None, typer.Option("--profile", "-p", help="Add a real profile (repeatable).")
    ] = None,
    visual: Annotated[
        bool, typer.Option(help="Compare screenshots too (Chromium at 600 and 375 px).")
    ] = False,
    tolerance: Annotated[
        float | None, typer.Option(help="Share of pixels a screenshot may change (1e-5).")
    ] = None,
    report: Annotated[Path | None, typer.Option(help="Folder of the visual report.")] = None,
    as_of: AsOf = None,
) -> None:
    """Compare each persona x variant email with its snapshot in __snapshots__/ beside the
    campaign; exit 9 when any is new, changed or orphaned (--update writes them)."""
    chosen = _run(lambda: _campaign(campaign))
    options = renderer.SnapshotOptions(
        update, prune, tuple(profile or ()), _utc(as_of), visual, tolerance, report
    )
    result = _run(lambda: renderer.snapshot(chosen, options))
    sys.stdout.write("".join(line + "\n" for line in result.lines()))
    for warning in result.warnings:
        err.print(f"warning: {warning}")
    if result.differs:
        raise typer.Exit(SNAPSHOTS_DIFFER)


if __name__ == "__main__":  # pragma: no cover
    app()
