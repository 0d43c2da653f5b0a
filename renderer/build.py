"""``mailsmith build``: load, segment, render, write; every input row accounted for.

:func:`iter_build` is a generator of :class:`Progress` (one per chunk) so a CLI
can drive a progress bar and a library user can stream; :func:`build_campaign`
runs it to the end and returns the summary. Always:
``input_rows == rendered + rejected + holdout``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from segments.errors import ConfigError
from segments.profiles import (
    ProfileSchema,
    ProfileValidator,
    RawChunk,
    Rejection,
    infer_schema,
    load_suppression,
    read_chunks,
    to_records,
)

from .campaign import Campaign
from .output import OutputWriter
from .runtime import CampaignRuntime, ProfileBatch, schema_of


@dataclass
class Progress:
    """Where a running build stands, after each chunk."""

    rows: int
    rendered: int
    rejected: int
    holdout: int = 0


@dataclass
class BuildOptions:
    out: Path | None = None
    as_of: datetime | None = None
    limit: int | None = None


@dataclass
class BuildState:
    """Counters a build accumulates; turned into summary.json at the end."""

    rows: int = 0
    rendered: int = 0
    holdout: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    segments: Counter[str] = field(default_factory=Counter)
    variants: dict[str, Counter[str]] = field(default_factory=dict)
    rejected_count: int = 0


class CampaignBuild:
    """One build of a campaign. Iterate :meth:`run`; read :attr:`summary` after."""

    def __init__(self, campaign: Campaign, options: BuildOptions | None = None) -> None:
        self.campaign = campaign
        self.options = options or BuildOptions()
        self.as_of = campaign.reference_time(self.options.as_of)
        self.out = self.options.out or Path(
            campaign.output.dir
        )  # relative to the working directory
        self.summary: dict[str, Any] = {}
        self.runtime: CampaignRuntime | None = None

    def run(self) -> Iterator[Progress]:
        started = time.perf_counter()
        source = self.campaign.profiles
        chunks = read_chunks(
            self.campaign.path(source.path), source.resolved_format, source.chunk_size
        )
        first = next(chunks, None)
        schema = schema_of(self.campaign) or infer_schema(
            first.frame if first else pd.DataFrame(columns=[source.id_field, source.email_field]),
            source.id_field,
            source.email_field,
        )
        self.runtime = CampaignRuntime(self.campaign, schema, self.as_of)
        validator = make_validator(self.campaign, schema)
        writer = OutputWriter(self.out, text=self.campaign.output.text)
        state = BuildState()
        try:
            for chunk in _limited(_chain(first, chunks), self.options.limit):
                self._build_chunk(chunk, validator, writer, state)
                yield Progress(state.rows, state.rendered, state.rejected_count, state.holdout)
            self.summary = self._summary(state, time.perf_counter() - started)
            writer.commit(self.summary)
        except BaseException:
            writer.abort()
            raise

    def _build_chunk(
        self, chunk: RawChunk, validator: ProfileValidator, writer: OutputWriter, state: BuildState
    ) -> None:
        assert self.runtime is not None
        runtime = self.runtime
        valid, rejected = validator.validate(chunk)
        state.rows += len(chunk.frame) + len(chunk.rejections)
        membership = runtime.segments.evaluate_frame(valid, self.as_of)
        names = list(membership.columns)
        flags = membership.to_numpy()
        segment_lists = [
            tuple(n for n, hit in zip(names, row, strict=True) if hit) for row in flags
        ]
        records = to_records(valid, runtime.schema.types())
        batch = ProfileBatch(
            [int(r) for r in valid.index], records, segment_lists, [{} for _ in records]
        )
        result = runtime.render_batch(batch)
        all_rejected = sorted(rejected + result.rejected, key=lambda r: r.row)
        writer.write(result.rendered, all_rejected)
        state.rendered += len(result.rendered)
        state.rejected_count += len(all_rejected)
        state.reasons.update(r.reason for r in all_rejected)
        for item in result.rendered:
            state.segments.update(s for s in item.segments if not s.startswith("block:"))

    def _summary(self, state: BuildState, seconds: float) -> dict[str, Any]:
        assert self.runtime is not None
        segment_names = [n for n in self.runtime.segments.names if not n.startswith("block:")]
        return {
            "campaign": self.campaign.name,
            "template": self.campaign.template,
            "as_of": self.as_of.isoformat(),
            "input_rows": state.rows,
            "rendered": state.rendered,
            "rejected": state.rejected_count,
            "holdout": state.holdout,
            "rejected_by_reason": dict(sorted(state.reasons.items())),
            "segments": {name: state.segments.get(name, 0) for name in segment_names},
            "layouts_compiled": len(self.runtime.template.shapes),
            "timing": {
                "duration_seconds": round(seconds, 3),
                "recipients_per_second": round(state.rows / seconds, 1) if seconds else None,
            },
        }


def make_validator(campaign: Campaign, schema: ProfileSchema) -> ProfileValidator:
    """The campaign's row checks: schema, email, duplicates, consent, suppression."""
    emails: frozenset[str] = frozenset()
    ids: frozenset[str] = frozenset()
    if campaign.suppression is not None:
        values = load_suppression(
            campaign.path(campaign.suppression.path), campaign.suppression.column
        )
        emails, ids = (values, ids) if campaign.suppression.column == "email" else (emails, values)
    consent = campaign.consent.field if campaign.consent else None
    if consent and consent not in schema.fields:
        raise ConfigError(
            f"consent field {consent!r} is not a profile field",
            file=campaign.file,
            field=consent,
            hint="add it to the schema or fix consent.field",
        )
    return ProfileValidator(
        schema,
        file=str(campaign.path(campaign.profiles.path)),
        consent_field=consent,
        suppressed_emails=emails,
        suppressed_ids=ids,
    )


def parse_max_rejected(text: str) -> tuple[float, bool]:
    """``"100"`` -> (100, False) a count; ``"5%"`` -> (0.05, True) a share."""
    text = text.strip()
    try:
        if text.endswith("%"):
            return float(text[:-1]) / 100, True
        return float(int(text)), False
    except ValueError:
        raise ConfigError(
            f"--max-rejected {text!r} is neither a count nor a percentage", hint="write 100 or 5%"
        ) from None


def too_many_rejected(summary: dict[str, Any], max_rejected: str | None) -> str | None:
    """A message when the build rejected more rows than allowed, else None."""
    if max_rejected is None:
        return None
    limit, is_share = parse_max_rejected(max_rejected)
    rejected, rows = summary["rejected"], summary["input_rows"]
    value = rejected / rows if is_share and rows else rejected
    if value > limit:
        allowed = f"{limit:.1%}" if is_share else f"{int(limit)}"
        return f"{rejected} of {rows} rows rejected, more than --max-rejected {allowed}"
    return None


def _chain(first: RawChunk | None, rest: Iterator[RawChunk]) -> Iterator[RawChunk]:
    if first is not None:
        yield first
        yield from rest


def _limited(chunks: Iterator[RawChunk], limit: int | None) -> Iterator[RawChunk]:
    if limit is None:
        yield from chunks
        return
    remaining = limit
    for chunk in chunks:
        if remaining <= 0:
            return
        size = len(chunk.frame) + len(chunk.rejections)
        if size > remaining:
            last_row = sorted([*chunk.frame.index, *(r.row for r in chunk.rejections)])[
                remaining - 1
            ]
            chunk = RawChunk(
                chunk.frame[chunk.frame.index <= last_row],
                [r for r in chunk.rejections if r.row <= last_row],
            )
            size = remaining
        remaining -= size
        yield chunk


def iter_build(
    campaign: Campaign, options: BuildOptions | None = None
) -> tuple[CampaignBuild, Iterator[Progress]]:
    """Start a build; iterate the progress, then read ``build.summary``."""
    build = CampaignBuild(campaign, options)
    return build, build.run()


def build_campaign(campaign: Campaign, options: BuildOptions | None = None) -> dict[str, Any]:
    """Build a campaign to the end and return its summary."""
    build, progress = iter_build(campaign, options)
    for _ in progress:
        pass
    return build.summary
