"""``mailsmith segments``: every segment's size, flags, groups and clusters; explanations.

:func:`segment_report` reads the whole audience (the same pre-pass a build runs,
always) and returns a :class:`SegmentReport`: sizes and shares over the valid
profiles, flags (``empty``, ``below minimum``, ``overlaps <other>``), the overlap
matrix, exclusive-group counts, cluster summaries and the lifecycle funnel;
:meth:`SegmentReport.to_html` draws it as one self-contained page.
:func:`explain_profile` shows, for one profile, every condition of every segment
with the profile's value, the threshold (percentiles resolved) and the outcome.

An explanation holds the profile's own values: it is for the person who asked,
never for logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from renderer.campaign import Campaign
from renderer.preview import profile_not_found
from renderer.specs import audience_spec, schema_of
from segments.audience.clusters import KMetrics
from segments.audience.document import AudienceSegments, PercentileThreshold
from segments.audience.hierarchy import (
    Overlap,
    is_overlapping,
    largest_overlaps,
    overlap_matrix,
    size_warnings,
)
from segments.audience.prepass import (
    CampaignAudience,
    audience_segments,
    prepare_audience,
    raise_for_warnings,
)
from segments.batch import SegmentPlan, segment_chunk
from segments.profiles.read import read_chunks
from segments.profiles.schema import ProfileSchema, infer_schema
from segments.profiles.spool import ValidatedChunk

LIFECYCLE_ORDER = ("new", "active", "at_risk", "lapsed")
SCATTER_POINTS = 1500


@dataclass(frozen=True)
class SegmentRow:
    """One segment's size over the audience, its minimum and its largest overlap."""

    name: str
    size: int
    share: float
    minimum: int
    limit: str
    overlap: Overlap | None = None

    @property
    def flags(self) -> list[str]:
        """``empty``, ``below minimum`` and ``overlaps <other> (NN%)``, as they apply."""
        flags = []
        if self.size == 0:
            flags.append("empty")
        if self.size < self.minimum:
            flags.append("below minimum")
        if is_overlapping(self.overlap):
            assert self.overlap is not None
            flags.append(f"overlaps {self.overlap.other} ({self.overlap.share:.0%})")
        return flags


@dataclass(frozen=True)
class GroupSummary:
    """An exclusive group: profiles per label, in priority order, and those left out."""

    name: str
    counts: dict[str, int]
    unassigned: int


@dataclass(frozen=True)
class ClusterSummary:
    """A cluster segment: its model, sizes in this audience and readable descriptions."""

    name: str
    features: list[str]
    labels: list[str]
    sizes: dict[str, int]
    descriptions: list[str]
    metrics: list[KMetrics]
    fitted: bool
    model_file: str

    @property
    def k(self) -> int:
        """Number of clusters."""
        return len(self.labels)


@dataclass
class SegmentReport:
    """What ``mailsmith segments`` prints and draws (see module docs)."""

    campaign: str
    as_of: datetime
    profiles: int
    segments: list[SegmentRow]
    overlap: pd.DataFrame
    groups: list[GroupSummary] = field(default_factory=list)
    clusters: list[ClusterSummary] = field(default_factory=list)
    lifecycle: dict[str, int] | None = None
    thresholds: list[PercentileThreshold] = field(default_factory=list)
    events: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    points: pd.DataFrame = field(default_factory=pd.DataFrame)
    recommendations: list[str] = field(default_factory=list)  # the offline evaluation

    def raise_for_warnings(self) -> None:
        """``--strict``: any warning raises :class:`~segments.errors.AudienceWarningError`."""
        raise_for_warnings(self.warnings, "segments report")

    def numeric_fields(self) -> list[str]:
        """Fields the scatter chart can plot."""
        return [c for c in self.points.columns if pd.api.types.is_numeric_dtype(self.points[c])]

    def to_html(self, x: str | None = None, y: str | None = None) -> str:
        """One self-contained HTML page (inline SVG, no scripts, no network)."""
        from renderer.reports.segments_page import render_report

        return render_report(self, x=x, y=y)


def campaign_schema(campaign: Campaign) -> ProfileSchema:
    """The declared schema, or one inferred from the first chunk (as a build does)."""
    declared = schema_of(campaign)
    if declared is not None:
        return declared
    source = campaign.profiles
    chunks = read_chunks(
        campaign.path(source.path),
        source.resolved_format,
        source.chunk_size,
        **source.reader_options,
    )
    first = next(chunks, None)
    frame = first.frame if first else pd.DataFrame(columns=[source.id_field, source.email_field])
    return infer_schema(frame, source.id_field, source.email_field)


def _prepared(
    campaign: Campaign, as_of: datetime | None, refit: bool
) -> tuple[ProfileSchema, datetime, CampaignAudience, AudienceSegments]:
    schema = campaign_schema(campaign)
    moment = campaign.reference_time(as_of)
    audience = prepare_audience(audience_spec(campaign, schema), moment, refit=refit, full=True)
    segments = audience_segments(schema, audience, file=campaign.file)
    return schema, moment, audience, segments


def segment_report(
    campaign: Campaign, as_of: datetime | None = None, *, refit: bool = False
) -> SegmentReport:
    """Evaluate every segment over the campaign's whole valid audience."""
    _, moment, audience, segments = _prepared(campaign, as_of, refit)
    population = audience.population
    assert population is not None
    membership = segments.evaluate_frame(population, moment)
    names = segments.segment_names
    overlap = overlap_matrix(membership[names])
    document = audience.document
    largest = largest_overlaps(overlap, document.references())
    total = len(population)
    sizes = {name: int(overlap.at[name, name]) for name in names}
    rows = []
    for name in names:
        limit = document.min_sizes.for_segment(name)
        minimum = limit.minimum(total)
        share = sizes[name] / total if total else 0.0
        rows.append(SegmentRow(name, sizes[name], share, minimum, str(limit), largest.get(name)))
    return SegmentReport(
        campaign=campaign.name,
        as_of=moment,
        profiles=total,
        segments=rows,
        overlap=overlap,
        groups=_groups(audience, membership),
        clusters=_clusters(audience),
        lifecycle=_lifecycle(population),
        thresholds=list(audience.thresholds),
        events=audience.events.summary() if audience.events else None,
        warnings=[str(w) for w in size_warnings(sizes, total, document.min_sizes)],
        points=_points(population, [s.name for s in document.clusters], campaign.profiles.id_field),
        recommendations=audience.recommendations.lines() if audience.recommendations else [],
    )


def _groups(audience: CampaignAudience, membership: pd.DataFrame) -> list[GroupSummary]:
    result = []
    for group in audience.document.exclusive:
        counts = {label: int(membership[group.column(label)].sum()) for label in group.labels}
        result.append(GroupSummary(group.name, counts, len(membership) - sum(counts.values())))
    return result


def _clusters(audience: CampaignAudience) -> list[ClusterSummary]:
    if audience.audience is None:
        return []
    population = audience.audience.population
    return [
        ClusterSummary(
            name=name,
            features=list(model.features),
            labels=list(model.labels),
            sizes={label: int((population[name] == label).sum()) for label in model.labels},
            descriptions=model.describe(),
            metrics=list(model.metrics),
            fitted=name in audience.fitted,
            model_file=str(audience.model_path),
        )
        for name, model in audience.audience.models.items()
    ]


def _lifecycle(population: pd.DataFrame) -> dict[str, int] | None:
    if "lifecycle_stage" not in population.columns:
        return None
    counts = population["lifecycle_stage"].value_counts()
    return {stage: int(counts.get(stage, 0)) for stage in LIFECYCLE_ORDER}


def _points(population: pd.DataFrame, clusters: list[str], id_field: str) -> pd.DataFrame:
    """An evenly spaced, deterministic sample for the scatter: numeric fields and clusters."""
    keep = [
        c
        for c in population.columns
        if c in clusters
        or (
            c != id_field
            and pd.api.types.is_numeric_dtype(population[c].dtype)
            and not pd.api.types.is_bool_dtype(population[c].dtype)
        )
    ]
    if len(population) > SCATTER_POINTS:
        rows = np.linspace(0, len(population) - 1, SCATTER_POINTS).round().astype(int)
        population = population.iloc[np.unique(rows)]
    return population[keep].reset_index(drop=True)


# --- one profile, explained -----------------------------------------------------------


@dataclass(frozen=True)
class ConditionCheck:
    """One condition tested on the profile: its value, the threshold and the outcome."""

    field: str
    op: str
    threshold: Any
    actual: Any
    matched: bool
    line: int | None = None
    percentile: str | None = None  # e.g. "p75", when the threshold was one


@dataclass(frozen=True)
class SegmentCheck:
    """A segment's outcome for the profile, its own conditions and the segments it uses."""

    name: str
    matched: bool
    conditions: list[ConditionCheck]
    uses: dict[str, bool]


@dataclass
class ProfileExplanation:
    """Why one profile is (not) in each segment, and its groups, clusters and features."""

    profile_id: str
    as_of: datetime
    segments: list[SegmentCheck]
    groups: dict[str, str | None]
    clusters: dict[str, str | None]
    derived: dict[str, Any]


def explain_profile(
    campaign: Campaign, profile_id: str, as_of: datetime | None = None
) -> ProfileExplanation:
    """Every condition of every segment, tested on one profile (see module docs)."""
    schema, moment, audience, segments = _prepared(campaign, as_of, refit=False)
    population = audience.population
    assert population is not None
    match = population[population[schema.id_field].astype(str) == profile_id]
    if match.empty:
        raise profile_not_found(campaign, profile_id, audience.rejections)
    plan = SegmentPlan(segments, (), schema, audience.field_types(schema), moment)
    batch = segment_chunk(ValidatedChunk(match.iloc[:1], []), plan)  # as the build does
    record, member_of = batch.records[0], set(batch.segments[0])
    checks = segment_checks(segments, audience, record, member_of, moment)
    member = sorted(member_of)
    derived_names = audience.audience.derived.columns if audience.audience else []
    return ProfileExplanation(
        profile_id=profile_id,
        as_of=moment,
        segments=checks,
        groups={g.name: g.label_of(member) for g in audience.document.exclusive},
        clusters={spec.name: record.get(spec.name) for spec in audience.document.clusters},
        derived={name: record.get(name) for name in derived_names},
    )


def segment_checks(
    segments: AudienceSegments,
    audience: CampaignAudience,
    record: Mapping[str, Any],
    member_of: set[str],
    moment: datetime,
) -> list[SegmentCheck]:
    """Every rule segment's conditions tested on one segmented ``record`` (its
    ``member_of`` from :func:`segment_chunk`), percentiles resolved; blocks' inline
    ``show_if`` rules left out."""
    membership = {name: name in member_of for name in segments.names}
    references = audience.document.references()
    percentiles = {(t.segment, t.line, t.field): t for t in audience.thresholds}
    checks = []
    for name in segments.segment_names:
        if name.startswith("block:"):
            continue
        rows = [r for r in segments.explain_profile(name, record, moment) if r["segment"] == name]
        conditions = [
            _condition(row, percentiles.get((name, row.get("line"), row["field"]))) for row in rows
        ]
        uses = {ref: membership.get(ref, False) for ref in sorted(references.get(name, ()))}
        checks.append(SegmentCheck(name, membership[name], conditions, uses))
    return checks


def _condition(row: Mapping[str, Any], percentile: PercentileThreshold | None) -> ConditionCheck:
    return ConditionCheck(
        field=row["field"],
        op=row["op"],
        threshold=row["threshold"],
        actual=row["actual"],
        matched=bool(row["matched"]),
        line=row.get("line"),
        percentile=percentile.text if percentile else None,
    )
