"""A campaign's audience stage: one pre-pass over the profiles, before rendering.

RFM quintiles, percentile thresholds (``value: p75``) and clusters need the whole
audience, so when a campaign has ``events:``, a percentile, a cluster or a drift
baseline, :func:`prepare_audience` reads the profiles once up front: a fresh
validator gives exactly the valid rows the render pass will see; only the id and
the fields the audience stage reads are kept (see :func:`_population_columns`).
Then the events file is read and folded chunk by chunk into compact per-profile
state (:func:`segments.features.eventstream.stream_events`), never held whole; then,
vectorized: features from that state, cluster labels (from the saved model, or
fitted and saved when there is none or ``refit``), percentile thresholds resolved
on this population. What stays for the render pass is about 200 bytes per
profile; it joins the derived fields to each chunk by id (see
:class:`segments.audience.document.AudienceSegments`).

A build's output gains ``events_errors.jsonl`` (rejected event rows: row,
profile_id, field, reason) and ``feature_distributions.json`` (the sketch that a
later build's ``--baseline`` compares against); ``summary.json`` gains
``audience``, ``events``, ``drift`` and ``warnings``.

Cluster models live next to the campaign, in ``<campaign dir>/<name>.clusters.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from segments.audience.clusters import load_cluster_models, save_cluster_models
from segments.audience.document import (
    Audience,
    AudienceSegments,
    PercentileThreshold,
    SegmentDocument,
    derive_audience,
)
from segments.audience.drift import compare_distributions, feature_distributions
from segments.audience.hierarchy import size_warnings
from segments.chunkmap import SERIAL, ChunkMapper
from segments.errors import AudienceWarningError, ConfigError, SegmentRuleError
from segments.features.eventstream import stream_events
from segments.features.scores import FeatureConfig
from segments.profiles.parallel import validate_chunks, validate_packed
from segments.profiles.read import DEFAULT_NA_VALUES, RawChunk, Rejection, read_chunks
from segments.profiles.schema import ProfileSchema
from segments.profiles.spool import ChunkSpool, ValidatedChunk
from segments.profiles.sqlread import SqlSource, read_sql_chunks
from segments.profiles.validate import ProfileValidator
from segments.recommend.evaluate import Evaluation
from segments.recommend.groups import choose_groups, profile_groups
from segments.recommend.prepass import (
    RecommendationSpec,
    add_recommendations,
    evaluate_events,
    read_product_events,
)
from segments.rules.ruleset import parse_segments
from segments.yamlsrc import LineDict

DISTRIBUTIONS_FILE = "feature_distributions.json"
EVENTS_ERRORS_FILE = "events_errors.jsonl"


@dataclass
class EventsReport:
    """How the events file went: rows read, accepted, and the rejected rows."""

    file: str
    rows: int
    accepted: int
    rejected: pd.DataFrame

    def summary(self) -> dict[str, Any]:
        """Counts for summary.json."""
        reasons = self.rejected.groupby(["field", "reason"]).size()
        return {
            "file": self.file,
            "rows": self.rows,
            "accepted": self.accepted,
            "rejected": self.rows - self.accepted,
            "rejected_by_reason": {f"{f}: {r}": int(n) for (f, r), n in reasons.items()},
        }


@dataclass
class CampaignAudience:
    """A campaign's segments document and, after a pre-pass, its derived audience."""

    document: SegmentDocument
    id_field: str
    model_path: Path
    audience: Audience | None = None
    events: EventsReport | None = None
    rejections: list[Rejection] = field(default_factory=list)
    recommendations: Evaluation | None = None  # the offline evaluation, with ``full``

    @property
    def population(self) -> pd.DataFrame | None:
        """The valid profiles' id and audience-stage fields, with the derived fields
        (None without a pre-pass; every field a rule reads with ``full``)."""
        return self.audience.population if self.audience is not None else None

    @property
    def definitions(self) -> Mapping[str, Any]:
        """The rules, with percentile thresholds resolved when there was a pre-pass."""
        return self.audience.definitions if self.audience else self.document.definitions

    @property
    def thresholds(self) -> list[PercentileThreshold]:
        """The resolved percentile thresholds."""
        return self.audience.thresholds if self.audience is not None else []

    @property
    def fitted(self) -> list[str]:
        """Clusters fitted (and saved) by this pre-pass rather than loaded."""
        return self.audience.fitted if self.audience is not None else []

    def field_types(self, schema: ProfileSchema) -> dict[str, str]:
        """Profile fields plus derived ones; a derived field never changes a profile type."""
        types = dict(schema.types())
        derived = self.audience.derived.types if self.audience is not None else {}
        for name, kind in derived.items():
            if name in types and types[name] != kind:
                raise ConfigError(
                    f"profile field '{name}' is a {types[name]}, but the derived field of "
                    f"that name is a {kind}",
                    field=name,
                    hint="rename the profile field, or declare it with the derived type",
                )
            types.setdefault(name, kind)
        return types


@dataclass(frozen=True)
class ProfileFile:
    """Where the profiles are and how to read them."""

    path: Path
    format: str
    chunk_size: int
    reader_options: Mapping[str, Any] = field(default_factory=dict)
    sql: SqlSource | None = None  # a database source (then ``path`` is unused)

    def chunks(self) -> Iterator[RawChunk]:
        if self.sql is not None:
            na_values = self.reader_options.get("na_values", DEFAULT_NA_VALUES)
            return read_sql_chunks(self.sql, self.chunk_size, na_values=na_values)
        return read_chunks(self.path, self.format, self.chunk_size, **self.reader_options)


@dataclass(frozen=True)
class EventsFile:
    """The behavioural events file (``label``: its name as the campaign wrote it)."""

    path: Path
    label: str
    delimiter: str = ","
    encoding: str = "utf-8"
    sql: SqlSource | None = None  # a database source (then ``path`` is unused)


@dataclass(frozen=True)
class DriftSettings:
    """Compare a build's feature distributions with a baseline's (KS test)."""

    baseline: Path | None = None
    threshold: float = 0.1
    alpha: float | None = 0.01


@dataclass(frozen=True)
class AudienceSpec:
    """What the audience stage needs to know of a campaign, and nothing of its content.

    ``validator`` makes a fresh :class:`ProfileValidator` (it remembers the ids it
    has seen, so each pass over the profiles needs its own); ``file`` is the
    campaign file, for messages.
    """

    document: SegmentDocument
    schema: ProfileSchema
    profiles: ProfileFile
    validator: Callable[[], ProfileValidator]
    model_path: Path
    events: EventsFile | None = None
    features: FeatureConfig | None = None
    drift: DriftSettings | None = None
    file: str | None = None
    recommendations: RecommendationSpec | None = None  # segments.recommend.prepass


def needs_prepass(spec: AudienceSpec, baseline: Path | None) -> bool:
    """True when segments or outputs need the whole audience before rendering."""
    drift = spec.drift is not None and spec.drift.baseline is not None
    return bool(spec.events) or spec.document.needs_population or drift or baseline is not None


def prepare_audience(
    spec: AudienceSpec,
    as_of: datetime,
    *,
    refit: bool = False,
    baseline: Path | None = None,
    full: bool = False,
    spool: ChunkSpool | None = None,
    mapper: ChunkMapper = SERIAL,
) -> CampaignAudience:
    """The campaign's audience stage (a pre-pass only when needed, or always with ``full``).

    A pre-pass writes the chunks it validated to ``spool`` (a build's render pass
    reads them back instead of validating the profiles a second time). ``mapper``
    runs the per-chunk work (validating profiles, cleaning events), in this process
    or in a build's workers (:mod:`segments.chunkmap`): the result is the same.
    """
    document, schema = spec.document, spec.schema
    result = CampaignAudience(document, schema.id_field, spec.model_path)
    if not (full or needs_prepass(spec, baseline)):
        return result
    columns = _population_columns(schema, document, full=full)
    population, other_ids = _read_population(spec, columns, result, spool, mapper)
    config = spec.features or FeatureConfig.model_validate({})
    events = None
    if spec.events is not None:
        streamed = stream_events(
            spec.events.path,
            ids=population[schema.id_field],
            other_ids=other_ids,
            as_of=as_of,
            config=config,
            delimiter=spec.events.delimiter,
            encoding=spec.events.encoding,
            sql=spec.events.sql,
            mapper=mapper,
        )
        result.events = EventsReport(
            spec.events.label, streamed.rows, streamed.accepted, streamed.rejected
        )
        events = streamed.summary
        del streamed
    saved = load_cluster_models(result.model_path) if document.clusters else {}
    result.audience = derive_audience(
        population,
        document,
        id_field=schema.id_field,
        as_of=as_of,
        events=events,
        config=config,
        saved_models=saved,
        refit=refit,
        text_fields=full,  # the segments report evaluates rules over the population
    )
    if result.audience.fitted:
        save_cluster_models(result.model_path, result.audience.models)
    _recommend(spec, result, as_of, config, evaluated=full, spool=spool, mapper=mapper)
    return result


def _recommend(
    spec: AudienceSpec,
    result: CampaignAudience,
    as_of: datetime,
    config: FeatureConfig,
    *,
    evaluated: bool = False,
    spool: ChunkSpool | None = None,
    mapper: ChunkMapper = SERIAL,
) -> None:
    """Add each profile's ``recommendations`` to ``result``'s audience (when the campaign
    has them: segments.recommend.prepass), and with ``evaluated`` the offline evaluation
    on the same events. The segment fallback evaluates the segments over the pre-pass's
    ``spool`` (or the profiles read again, validated through ``mapper``)."""
    recommend, source, audience = spec.recommendations, spec.events, result.audience
    if recommend is None or source is None or audience is None:
        return
    types = list(recommend.config.weights)
    events = read_product_events(
        source.path, as_of, types, delimiter=source.delimiter, encoding=source.encoding,
        sql=source.sql,
    )  # fmt: skip
    half_life = config.half_life_days
    if evaluated:
        result.recommendations = evaluate_events(recommend, events, as_of, half_life)
    result.audience = add_recommendations(
        audience,
        recommend,
        events,
        id_field=spec.schema.id_field,
        as_of=as_of,
        half_life_days=half_life,
        groups=_segment_groups(spec, result, as_of, spool, mapper),
    )


def _segment_groups(
    spec: AudienceSpec,
    result: CampaignAudience,
    as_of: datetime,
    spool: ChunkSpool | None,
    mapper: ChunkMapper,
) -> list[object] | None:
    """Each profile's segment for the fallback (segments.recommend.groups), None when off."""
    assert spec.recommendations is not None
    setting = spec.recommendations.config.segment_fallback
    choice = choose_groups(setting, result.document, file=spec.file)
    if choice is None:
        return None
    segments = audience_segments(spec.schema, result, file=spec.file)
    chunks: Iterable[ValidatedChunk] = ()  # a cluster label needs none
    if choice.needs_rules and spool is not None and spool.complete:
        chunks = spool  # the pre-pass's validated chunks, as the render pass reads them
    elif choice.needs_rules:
        chunks = validate_chunks(spec.profiles.chunks(), spec.validator, mapper)
    return profile_groups(choice, segments, chunks, as_of)


def _population_columns(schema: ProfileSchema, document: SegmentDocument, full: bool) -> list[str]:
    """The id and the fields the audience stage reads, in schema order.

    Those are ``signed_up_at`` (lifecycle), cluster features, and the numeric fields
    rules name (percentiles, feature distributions, drift). With ``full`` (the
    segments report evaluates every rule over the population), every field a rule
    names; a build evaluates rules chunk by chunk and needs no more.
    """
    features = {name for spec in document.clusters for name in spec.features}
    rules = document.fields_used()

    def wanted(name: str) -> bool:
        if name == "signed_up_at" or name in features:
            return True
        return name in rules and (full or schema.fields[name].type in ("int", "float", "bool"))

    id_field = schema.id_field
    return [id_field, *(n for n in schema.fields if n != id_field and wanted(n))]


def _read_population(
    spec: AudienceSpec,
    columns: list[str],
    result: CampaignAudience,
    spool: ChunkSpool | None = None,
    mapper: ChunkMapper = SERIAL,
) -> tuple[pd.DataFrame, list[str]]:
    """The valid rows' ``columns``, and the ids of rejected rows (events may name them)."""
    schema = spec.schema
    text_id = schema.fields[schema.id_field].type == "string"
    frames = []
    for part, rejected in _validated(spec, columns, spool, mapper):
        if text_id:  # pandas' own text dtype: a few bytes per id, not a Python string each
            part = part.assign(**{schema.id_field: part[schema.id_field].astype(str)})
        frames.append(part)
        result.rejections.extend(rejected)
    if spool is not None:
        spool.finish()
    population = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    del frames
    other_ids = sorted({r.id for r in result.rejections if r.id is not None})
    return population, other_ids


def _validated(
    spec: AudienceSpec, columns: list[str], spool: ChunkSpool | None, mapper: ChunkMapper
) -> Iterator[tuple[pd.DataFrame, list[Rejection]]]:
    """Each chunk's valid rows' ``columns`` and its rejections; the whole validated chunks
    go to ``spool`` (packed where they were validated: see
    :func:`segments.profiles.parallel.validate_packed`)."""
    chunks = spec.profiles.chunks()
    if spool is None:
        for chunk in validate_chunks(chunks, spec.validator, mapper):
            yield chunk.valid[columns], chunk.rejected
        return
    for packed in validate_packed(chunks, spec.validator, columns, mapper):
        spool.add_packed(packed.packed)
        yield packed.audience, packed.rejected


def audience_segments(
    schema: ProfileSchema,
    audience: CampaignAudience,
    extra: Mapping[str, Any] | None = None,
    *,
    file: str | None = None,
) -> AudienceSegments:
    """Compile the campaign's segments (plus ``extra`` rules, e.g. blocks' ``show_if``)."""
    definitions = audience.definitions
    combined = LineDict(definitions)
    combined.file = getattr(definitions, "file", audience.document.file or file or "<segments>")
    combined.line = getattr(definitions, "line", 0)
    combined.key_lines = dict(getattr(definitions, "key_lines", {}))
    combined.update(extra or {})
    types = audience.field_types(schema)
    _check_group_names(audience.document, types)
    parsed = parse_segments(combined, fields=types, source=audience.document.file)  # type: ignore[arg-type]
    derived = audience.audience.derived if audience.audience is not None else None
    return AudienceSegments(
        parsed, groups=audience.document.exclusive, derived=derived, id_field=schema.id_field
    )


def _check_group_names(document: SegmentDocument, types: Mapping[str, str]) -> None:
    for group in document.exclusive:
        if group.name in types:
            raise SegmentRuleError(
                f"exclusive group '{group.name}' has the name of a profile field",
                file=group.file,
                line=group.line,
                hint="the group becomes a field of that name: rename the group",
            )


# --- after the render pass ---------------------------------------------------------------


def finish_audience(
    spec: AudienceSpec,
    audience: CampaignAudience,
    folder: Path,
    sizes: Mapping[str, int],
    profiles: int,
    *,
    baseline: Path | None = None,
) -> dict[str, Any]:
    """Write the audience files into a build's ``folder``; the summary.json additions.

    ``sizes`` counts members per membership column over the ``profiles`` the
    build evaluated. Returns ``audience``, ``events``, ``drift`` and ``warnings``.
    """
    document = audience.document
    segment_sizes = {name: int(sizes.get(name, 0)) for name in document.segment_names}
    warnings = [str(w) for w in size_warnings(segment_sizes, profiles, document.min_sizes)]
    summary: dict[str, Any] = {
        "audience": audience_counts(audience, segment_sizes, sizes, profiles)
    }
    if audience.events is not None:
        write_events_errors(audience.events, folder / EVENTS_ERRORS_FILE)
        summary["events"] = audience.events.summary()
    if audience.population is not None:
        columns = distribution_columns(audience.population, spec.schema.id_field)
        write_json(folder / DISTRIBUTIONS_FILE, feature_distributions(audience.population, columns))
    chosen = baseline or (spec.drift.baseline if spec.drift else None)
    if chosen is not None and audience.population is not None:
        drift = check_drift(audience, spec.drift or DriftSettings(), chosen)
        summary["drift"] = drift
        warnings.extend(drift["warnings"])
    summary["warnings"] = warnings
    return summary


def audience_counts(
    audience: CampaignAudience,
    segment_sizes: Mapping[str, int],
    sizes: Mapping[str, int],
    profiles: int,
) -> dict[str, Any]:
    """The ``audience`` section of summary.json."""
    counts: dict[str, Any] = {"profiles": profiles, "segments": dict(segment_sizes)}
    counts["exclusive"] = {
        g.name: {label: int(sizes.get(g.column(label), 0)) for label in g.labels}
        for g in audience.document.exclusive
    }
    if audience.audience is not None:
        population = audience.audience.population
        counts["clusters"] = {
            name: {
                "model": audience.model_path.name,
                "k": model.k,
                "sizes": {label: int((population[name] == label).sum()) for label in model.labels},
            }
            for name, model in audience.audience.models.items()
        }
        counts["percentiles"] = [
            {"segment": t.segment, "field": t.field, "op": t.op, "percentile": t.text,
             "value": t.value}
            for t in audience.thresholds
        ]  # fmt: skip
    return counts


def write_events_errors(events: EventsReport, path: Path) -> None:
    """One JSON line per rejected event row problem, in row order."""
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in events.rejected.itertuples(index=False):
            entry = {"row": int(row.row), "profile_id": _text(row.profile_id)}
            entry.update({"field": row.field, "reason": row.reason})
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")


def _text(value: Any) -> str | None:
    return None if value is None or value != value or value in ("nan", "None") else str(value)


def write_json(path: Path, value: Any) -> None:
    """Deterministic pretty JSON."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, indent=2, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")


def distribution_columns(population: pd.DataFrame, id_field: str) -> list[str]:
    """The numeric fields whose distributions a build saves (id excluded)."""
    return [
        str(name)
        for name in population.columns
        if name != id_field and _is_numeric(population[name])
    ]


def _is_numeric(series: pd.Series) -> bool:
    kind = series.dtype
    return bool(pd.api.types.is_bool_dtype(kind) or pd.api.types.is_numeric_dtype(kind))


def check_drift(
    audience: CampaignAudience, settings: DriftSettings, baseline: Path
) -> dict[str, Any]:
    """Compare the numeric fields rules and clusters use with a baseline build's sketch."""
    path = baseline / DISTRIBUTIONS_FILE if baseline.is_dir() else baseline
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ConfigError(
            f"no readable {DISTRIBUTIONS_FILE} in the drift baseline",
            file=str(path),
            hint="point --baseline at an earlier build's output folder",
        ) from None
    population = audience.audience.population if audience.audience else pd.DataFrame()
    used = audience.document.fields_used()
    for cluster in audience.document.clusters:
        used.update(cluster.features)
    available = set(saved.get("columns", {}))
    numeric = distribution_columns(population, audience.id_field)
    columns = [c for c in numeric if c in used and c in available]
    threshold, alpha = settings.threshold, settings.alpha
    found = compare_distributions(saved, population, columns, threshold, alpha=alpha)
    return {
        "baseline": str(path),
        "threshold": threshold,
        "alpha": alpha,
        "compared": columns,
        "shifted": [
            {"field": w.field, "ks_statistic": round(w.ks_statistic, 6), "p_value": w.p_value}
            for w in found
        ],
        "warnings": [str(w) for w in found],
    }


def raise_for_warnings(warnings: Iterable[str], what: str = "build") -> None:
    """``--strict``: any warning is an :class:`AudienceWarningError`."""
    found = list(warnings)
    if found:
        listed = "\n  ".join(found)
        raise AudienceWarningError(
            f"{len(found)} warning(s) and --strict, {what} stopped:\n  {listed}",
            hint="fix the segments, or drop --strict",
        )
