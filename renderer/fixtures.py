"""Fixtures: named personas a campaign renders for snapshots and previews.

A campaign names a YAML (or JSON) file with ``fixtures: fixtures.yaml``; it maps
each persona's name to its profile fields and, where the campaign reads events,
its events::

    vip_ada:
      description: A VIP in New York who spent a lot
      profile: {first_name: Ada, total_spent: 1250, last_purchase_at: "2026-11-02T10:00:00Z"}
      events:
        - {type: purchase, timestamp: "2026-11-02T10:00:00Z", value: 240}

``profile.id`` defaults to ``fixture-<name>`` and ``profile.email`` to
``<name>@example.com``. Personas are validated as profile rows are (the schema, the
email address, consent, suppression), but a persona the build would reject is an
error here, located at the persona's field in the fixtures file.

Fixtures render through the build's own stages (:func:`segments.batch.segment_chunk`,
:func:`renderer.runtime.render_batch`). Whatever needs the whole audience comes
from the campaign's real profiles when it has them: percentile thresholds are the
ones the build resolves, cluster labels come from the build's models, and RFM
quintiles rank a persona among the real customers (its features are derived with
the real profiles and events, then only its own are kept).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from renderer.campaign import Campaign, infer_campaign_schema
from renderer.runtime import CampaignRuntime, Rendered, render_batch
from renderer.specs import audience_spec, make_validator, schema_of
from segments.audience.clusters import load_cluster_models
from segments.audience.document import derive_audience
from segments.audience.prepass import AudienceSpec, CampaignAudience, prepare_audience
from segments.batch import SegmentedBatch, segment_chunk
from segments.errors import ConfigError, ProfileDataError
from segments.features.events import check_columns, clean_events, load_events
from segments.features.eventstream import CHUNK_SIZE
from segments.features.scores import FeatureConfig
from segments.profiles.read import RawChunk
from segments.profiles.schema import ProfileSchema, infer_schema
from segments.profiles.spool import ValidatedChunk
from segments.profiles.sqlread import read_sql_event_chunks
from segments.yamlsrc import line_at, load_yaml

PERSONA_KEYS = ("description", "profile", "events")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # it names a folder of snapshots


@dataclass(frozen=True)
class Fixture:
    """One persona: its name, profile fields and events as written in ``file``."""

    name: str
    description: str
    profile: Mapping[str, Any]
    events: tuple[Mapping[str, Any], ...]
    file: str
    line: int | None = None
    source: Any = None  # the persona's mapping as loaded (for line numbers)

    def field_line(self, *loc: Any) -> int | None:
        """The line of ``loc`` (keys, list indexes) inside this persona."""
        return line_at(self.source, list(loc)) if self.source is not None else self.line


def fixtures_file(campaign: Campaign) -> Path | None:
    """The campaign's fixtures file, or None when it names none."""
    return campaign.path(campaign.fixtures) if campaign.fixtures else None


def load_fixtures(campaign: Campaign) -> list[Fixture]:
    """The campaign's personas in file order (``[]`` without ``fixtures:``), each checked
    against the profile schema as the build checks a profile row.

    :class:`ConfigError` names the fixtures file, the line, the persona and the field.
    """
    fixtures = read_fixtures(campaign)
    if fixtures:
        validate_fixtures(campaign, fixtures, fixture_schema(campaign, fixtures))
    return fixtures


def read_fixtures(campaign: Campaign) -> list[Fixture]:
    """The personas of the fixtures file, checked for shape only (no schema)."""
    path = fixtures_file(campaign)
    if path is None:
        return []
    if not path.is_file():
        raise ConfigError(
            "fixtures file not found",
            file=campaign.file,
            field="fixtures",
            hint=f"create {path}, or fix the campaign's fixtures: key",
        )
    data = load_yaml(path)  # JSON is YAML too, with the same line numbers
    if not isinstance(data, dict) or not data:
        raise ConfigError(
            "a fixtures file must be a mapping of persona name to persona",
            file=str(path),
            line=1,
            hint="write `name: {profile: {field: value, ...}, events: [...]}` per persona",
        )
    return [_persona(str(path), name, value, data) for name, value in data.items()]


def _persona(file: str, name: Any, value: Any, data: Any) -> Fixture:
    line = line_at(data, [name])
    where = f"persona {name!r}"
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(
            f"{where}: a persona name is letters, digits, '_', '.' and '-'",
            file=file,
            line=line,
            hint="it names the persona's folder of snapshots",
        )
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: a persona must be a mapping", file=file, line=line)
    for key in value:
        if key not in PERSONA_KEYS:
            raise ConfigError(
                f"{where}: unknown key {key!r}",
                file=file,
                line=line_at(value, [key]),
                field=str(key),
                hint=f"a persona has {', '.join(PERSONA_KEYS)}; profile fields go under profile",
            )
    profile = value.get("profile") or {}
    events = value.get("events") or []
    if not isinstance(profile, dict):
        raise ConfigError(
            f"{where}: profile must be a mapping of field to value",
            file=file,
            line=line_at(value, ["profile"]),
            field="profile",
        )
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise ConfigError(
            f"{where}: events must be a list of mappings (type, timestamp, ...)",
            file=file,
            line=line_at(value, ["events"]),
            field="events",
        )
    return Fixture(
        name=name,
        description=str(value.get("description") or ""),
        profile=profile,
        events=tuple(events),
        file=file,
        line=line,
        source=value,
    )


def fixture_schema(campaign: Campaign, fixtures: Sequence[Fixture]) -> ProfileSchema:
    """The declared schema, else the one a build infers (from the profiles, or, when the
    profile file does not exist, from the personas themselves)."""
    declared = schema_of(campaign)
    if declared is not None:
        return declared
    if has_real_profiles(campaign):
        return infer_campaign_schema(campaign)
    source = campaign.profiles
    return infer_schema(_raw_chunk(campaign, fixtures).frame, source.id_field, source.email_field)


def fixture_record(campaign: Campaign, fixture: Fixture) -> dict[str, Any]:
    """The persona's profile row, with its default id and email, dates as ISO text."""
    source = campaign.profiles
    record = {source.id_field: f"fixture-{fixture.name}"}
    record[source.email_field] = f"{fixture.name}@example.com"
    record.update({str(k): _plain(v) for k, v in fixture.profile.items()})
    return record


def _plain(value: Any) -> Any:
    """YAML's dates and datetimes as the ISO text a profile file holds."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _raw_chunk(campaign: Campaign, fixtures: Sequence[Fixture]) -> RawChunk:
    records = [fixture_record(campaign, f) for f in fixtures]
    return RawChunk(pd.DataFrame.from_records(records, index=range(1, len(records) + 1)))


def validate_fixtures(
    campaign: Campaign, fixtures: Sequence[Fixture], schema: ProfileSchema
) -> pd.DataFrame:
    """The personas as typed, validated profile rows (index 1, 2, ...: file order)."""
    for fixture in fixtures:
        unknown = [str(k) for k in fixture.profile if str(k) not in schema.fields]
        if unknown:
            raise _persona_error(
                fixture, f"profile.{unknown[0]} is not a field of the schema", unknown[0]
            )
    valid, rejected = make_validator(campaign, schema).validate(_raw_chunk(campaign, fixtures))
    for rejection in rejected:
        fixture = fixtures[rejection.row - 1]
        name = rejection.field or ""
        raise _persona_error(fixture, f"profile.{name}: {rejection.detail}", name)
    return valid


def _persona_error(fixture: Fixture, message: str, field: str) -> ConfigError:
    in_profile = field in fixture.profile
    return ConfigError(
        f"persona {fixture.name!r}: {message}",
        file=fixture.file,
        line=fixture.field_line("profile", field) if in_profile else fixture.line,
        field=field,
        hint="fix the persona so that the build would accept it as a profile row",
    )


@dataclass
class FixtureSet:
    """The personas of a campaign ready to render: the runtime they render with and
    their validated rows (one per persona, in file order)."""

    fixtures: list[Fixture]
    runtime: CampaignRuntime
    chunk: ValidatedChunk

    def names(self) -> list[str]:
        return [f.name for f in self.fixtures]

    def segmented(self, name: str, variants: Mapping[str, str] | None = None) -> SegmentedBatch:
        """The persona ``name`` segmented, ``variants`` forced (as a preview forces them)."""
        index = self.names().index(name)
        frame = self.chunk.valid.iloc[index : index + 1]
        plan = self.runtime.segment_plan(variants or {}, force_holdouts=True)
        return segment_chunk(ValidatedChunk(frame, []), plan)

    def render(self, name: str, variants: Mapping[str, str] | None = None) -> Rendered:
        """The persona's email (``variants`` forced); a render that rejects the persona
        is a :class:`ProfileDataError` naming it."""
        result = render_batch(self.runtime, self.segmented(name, variants))
        if result.rejected:
            rejection = result.rejected[0]
            fixture = self.fixtures[self.names().index(name)]
            raise ProfileDataError(
                f"persona {name!r} cannot be rendered: {rejection.detail}",
                file=fixture.file,
                line=fixture.line,
                field=rejection.field,
                hint="give the persona the field, or add a fallback in the template",
            )
        return result.rendered[0]


def prepare_fixtures(
    campaign: Campaign,
    *,
    as_of: datetime | None = None,
    real: CampaignAudience | None = None,
) -> FixtureSet:
    """The campaign's personas (see :func:`load_fixtures`) and a runtime for them whose
    audience-wide values come from the real profiles (``real``: a prepared audience to
    reuse, else the campaign's pre-pass runs here)."""
    fixtures = read_fixtures(campaign)
    schema = fixture_schema(campaign, fixtures)
    moment = campaign.reference_time(as_of)
    if not fixtures:  # no personas: the runtime alone (a preview may still want it)
        runtime = CampaignRuntime(campaign, schema, moment, real)
        return FixtureSet([], runtime, ValidatedChunk(pd.DataFrame(), []))
    valid = validate_fixtures(campaign, fixtures, schema)
    if real is None and has_real_profiles(campaign):
        real = prepare_audience(audience_spec(campaign, schema), moment)
    audience = fixture_audience(campaign, fixtures, valid, schema, moment, real)
    runtime = CampaignRuntime(campaign, schema, moment, audience)
    return FixtureSet(fixtures, runtime, ValidatedChunk(valid, []))


def fixture_audience(
    campaign: Campaign,
    fixtures: Sequence[Fixture],
    valid: pd.DataFrame,
    schema: ProfileSchema,
    as_of: datetime,
    real: CampaignAudience | None,
) -> CampaignAudience:
    """The audience the personas render with: the real one's resolved percentile
    thresholds and cluster models, and derived fields computed for the personas among
    the real profiles (or among the personas alone, when there are no real ones)."""
    spec = audience_spec(campaign, schema)
    document = real.document if real is not None else spec.document
    if real is not None and real.audience is None and not _has_events(fixtures):
        return real  # nothing audience-wide: the personas need no derived fields
    if real is None and not (spec.events or document.needs_population):
        return CampaignAudience(document, schema.id_field, spec.model_path)
    ids = valid[schema.id_field].astype(str)
    events = _fixture_events(campaign, fixtures, pd.Index(ids), as_of)
    population = valid
    models = load_cluster_models(spec.model_path) if document.clusters else {}
    if real is not None and real.audience is not None:
        document = replace(document, definitions=real.definitions)  # thresholds resolved
        models = real.audience.models
        columns = [c for c in real.audience.population.columns if c in schema.fields]
        theirs = real.audience.population[columns]
        _check_ids_unique(fixtures, ids, theirs[schema.id_field].astype(str))
        population = pd.concat([theirs, valid[columns]], ignore_index=True)
        if events is not None and spec.events is not None:
            known = pd.Index(theirs[schema.id_field].astype(str))
            their_events = _real_events(spec, known, as_of)
            events = pd.concat([their_events, events], ignore_index=True)
    if document.clusters and not models:
        raise ConfigError(
            "clusters need the real profiles (or a saved cluster model) to label personas",
            file=campaign.file,
            field="profiles",
            hint="build the campaign once with its profiles, so the model is saved",
        )
    derived = derive_audience(
        population,
        document,
        id_field=schema.id_field,
        as_of=as_of,
        events=events,
        config=campaign.features or FeatureConfig.model_validate({}),
        saved_models=models,
        text_fields=False,
    )
    return CampaignAudience(document, schema.id_field, spec.model_path, audience=derived)


def has_real_profiles(campaign: Campaign) -> bool:
    """True when the campaign's profiles exist: a database source, or an existing file."""
    return campaign.profiles.is_sql or campaign.path(campaign.profiles.path).is_file()


def _real_events(spec: AudienceSpec, known: pd.Index, as_of: datetime) -> pd.DataFrame:
    """The accepted events of the real profiles ``known``, from the events file or database."""
    assert spec.events is not None  # (the caller checked)
    if spec.events.sql is None:
        return load_events(spec.events.path, known_ids=known, as_of=as_of).events
    raw = pd.concat(list(read_sql_event_chunks(spec.events.sql, CHUNK_SIZE)), ignore_index=True)
    check_columns(raw.columns, spec.events.label)
    return clean_events(raw, known_ids=known, as_of=as_of).events


def _has_events(fixtures: Sequence[Fixture]) -> bool:
    return any(f.events for f in fixtures)


def _check_ids_unique(fixtures: Sequence[Fixture], ids: pd.Series, theirs: pd.Series) -> None:
    clash = ids.isin(theirs).to_numpy()
    for fixture, taken in zip(fixtures, clash, strict=True):
        if taken:
            raise _persona_error(fixture, "profile id is also a real profile's id", "id")


def _fixture_events(
    campaign: Campaign, fixtures: Sequence[Fixture], ids: pd.Index, as_of: datetime
) -> pd.DataFrame | None:
    """The personas' events as the build reads an events file (None without ``events:``);
    an event the build would reject is an error at its line."""
    if campaign.events is None:
        for fixture in fixtures:
            if fixture.events:
                raise ConfigError(
                    f"persona {fixture.name!r}: events, but the campaign has no events source",
                    file=fixture.file,
                    line=fixture.field_line("events"),
                    field="events",
                    hint="add `events:` to the campaign, or remove the persona's events",
                )
        return None
    rows: list[dict[str, Any]] = []
    where: list[tuple[Fixture, int]] = []
    for fixture, persona_id in zip(fixtures, ids, strict=True):
        for number, event in enumerate(fixture.events):
            rows.append({**{str(k): _plain(v) for k, v in event.items()}, "profile_id": persona_id})
            where.append((fixture, number))
    raw = pd.DataFrame.from_records(rows, columns=_event_columns(rows))
    result = clean_events(raw, known_ids=ids, as_of=as_of)
    for problem in result.rejected.itertuples(index=False):
        fixture, number = where[int(problem.row) - 1]
        raise ConfigError(
            f"persona {fixture.name!r}: events[{number}].{problem.field}: {problem.reason}",
            file=fixture.file,
            line=fixture.field_line("events", number),
            field=str(problem.field),
            hint="an event has type, timestamp (ISO 8601, not after as_of) and optional "
            "product_id, category, name, image_url, url, value, quantity",
        )
    return result.events


def _event_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    columns = ["profile_id", "type", "timestamp"]
    for row in rows:
        columns += [k for k in row if k not in columns]
    return columns
