"""From the campaign file to what each stage takes.

The audience side (:mod:`segments`) knows nothing of the campaign file: it takes
an :class:`~segments.audience.prepass.AudienceSpec` (schema, segments document,
profile and events files, row checks, cluster model file). This module makes it,
and the other campaign-derived inputs of the pipeline.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from renderer.campaign import Campaign, infer_campaign_schema, shipped_dir
from renderer.content import ContentFolders
from segments.audience.document import SegmentDocument, parse_segment_document
from segments.audience.prepass import AudienceSpec, DriftSettings, EventsFile, ProfileFile
from segments.errors import ConfigError
from segments.profiles.schema import FieldDef, ProfileSchema
from segments.profiles.sqlread import sql_warnings as sql_source_warnings
from segments.profiles.validate import ProfileValidator, load_suppression
from segments.recommend.prepass import RecommendationSpec
from segments.yamlsrc import LineDict, load_yaml


def content_folders(campaign: Campaign) -> ContentFolders:
    """Templates: the campaign file's own folder, then ``paths.templates``, then the shipped
    ones; blocks: ``paths.blocks``, then the shipped ones. Folders that do not exist are
    left out, and a folder named twice is searched once."""
    own = Path(campaign.file)
    beside = [own.parent] if own.is_file() else []  # an ad-hoc build has no campaign file
    templates = beside + [campaign.path(p) for p in campaign.paths.templates]
    blocks = [campaign.path(p) for p in campaign.paths.blocks]
    return ContentFolders(
        templates=_folders([*templates, shipped_dir("templates")]),
        blocks=_folders([*blocks, shipped_dir("blocks")]),
    )


def _folders(paths: list[Path]) -> list[Path]:
    """The existing folders among ``paths``, each once, in order."""
    seen: set[Path] = set()
    found = []
    for path in paths:
        if path.is_dir() and path.resolve() not in seen:
            seen.add(path.resolve())
            found.append(path)
    return found


def schema_of(campaign: Campaign) -> ProfileSchema | None:
    """The declared schema, or None when it is to be inferred from the data."""
    if not campaign.schema_:
        return None
    fields = {n: FieldDef(n, s.type, s.required, s.default) for n, s in campaign.schema_.items()}
    return ProfileSchema(fields, campaign.profiles.id_field, campaign.profiles.email_field)


def inferred_types(campaign: Campaign) -> dict[str, str]:
    """The field types taken from the data rather than declared, by field: an ad-hoc
    campaign's inferred fields, or every column for a campaign without ``schema:`` (from
    the first chunk, as a build infers them)."""
    if campaign.schema_:
        return {name: campaign.schema_[name].type for name in campaign.inferred}
    return infer_campaign_schema(campaign).types()


def profile_file(campaign: Campaign) -> ProfileFile:
    """The campaign's profile source as the readers take it."""
    source = campaign.profiles
    return ProfileFile(
        campaign.path(source.path),
        source.resolved_format,
        source.chunk_size,
        source.reader_options,
        sql=campaign.sql_source("profiles") if source.is_sql else None,
    )


def profiles_label(campaign: Campaign) -> str:
    """The profile source in messages: its file, or the campaign file for a database."""
    source = campaign.profiles
    return campaign.file if source.is_sql else str(campaign.path(source.path))


def sql_warnings(campaign: Campaign) -> list[str]:
    """Warnings about the campaign's database sources (a query without ORDER BY)."""
    found = []
    if campaign.profiles.is_sql:
        found += sql_source_warnings(campaign.sql_source("profiles"))
    if campaign.events is not None and campaign.events.is_sql:
        found += sql_source_warnings(campaign.sql_source("events"))
    return found


def segment_document(campaign: Campaign) -> SegmentDocument:
    """The campaign's segments document: its segments file, or the inline mapping."""
    if isinstance(campaign.segments, str):
        path = campaign.path(campaign.segments)
        return parse_segment_document(load_yaml(path), file=str(path))
    if isinstance(campaign.segments, dict):
        inline = _inline_segments(campaign)
        return parse_segment_document(inline, file=campaign.file)
    return parse_segment_document(None, file=campaign.file)


def _inline_segments(campaign: Campaign) -> Any:
    """The campaign file's own ``segments:`` (with lines), else the validated mapping."""
    path = Path(campaign.file)
    if path.is_file():
        data = load_yaml(path)
        inline = data.get("segments") if isinstance(data, LineDict) else None
        if isinstance(inline, dict) and inline == campaign.segments:
            return inline
    return campaign.segments


def cluster_model_path(campaign: Campaign) -> Path:
    """Where the campaign's fitted cluster models are kept: next to the campaign file."""
    return campaign.base_dir / f"{campaign.name}.clusters.json"


def validator_factory(campaign: Campaign, schema: ProfileSchema) -> partial[ProfileValidator]:
    """The campaign's row checks (schema, email, duplicates, consent, suppression), as a
    picklable factory: each pass over the profiles needs a fresh validator."""
    emails: frozenset[str] = frozenset()
    ids: frozenset[str] = frozenset()
    if campaign.suppression is not None:
        spec = campaign.suppression
        values = load_suppression(campaign.path(spec.path), spec.column, **spec.reader_options)
        emails, ids = (values, ids) if campaign.suppression.column == "email" else (emails, values)
    consent = campaign.consent.field if campaign.consent else None
    if consent and consent not in schema.fields:
        raise ConfigError(
            f"consent field {consent!r} is not a profile field",
            file=campaign.file,
            field=consent,
            hint="add it to the schema or fix consent.field",
        )
    return partial(
        ProfileValidator,
        schema,
        file=profiles_label(campaign),
        consent_field=consent,
        suppressed_emails=emails,
        suppressed_ids=ids,
        email_rules=campaign.profiles.email_rules,
    )


def make_validator(campaign: Campaign, schema: ProfileSchema) -> ProfileValidator:
    """A fresh validator with the campaign's row checks."""
    return validator_factory(campaign, schema)()


def audience_spec(campaign: Campaign, schema: ProfileSchema) -> AudienceSpec:
    """What the audience stage needs of ``campaign``."""
    events = None
    if campaign.events is not None:
        spec = campaign.events
        sql = campaign.sql_source("events") if spec.is_sql else None
        path = Path(campaign.file) if sql else campaign.path(spec.path)
        label = sql.label if sql else spec.path  # (the password masked)
        events = EventsFile(path, label, spec.delimiter, spec.encoding, sql)
    drift = None
    if campaign.drift is not None:
        baseline = campaign.drift.baseline
        drift = DriftSettings(
            campaign.path(baseline) if baseline is not None else None,
            campaign.drift.threshold,
            campaign.drift.alpha,
        )
    return AudienceSpec(
        document=segment_document(campaign),
        schema=schema,
        profiles=profile_file(campaign),
        validator=validator_factory(campaign, schema),
        model_path=cluster_model_path(campaign),
        events=events,
        features=campaign.features,
        drift=drift,
        file=campaign.file,
        recommendations=_recommendations(campaign),
    )


def _recommendations(campaign: Campaign) -> RecommendationSpec | None:
    config = campaign.recommendations
    if config is None:
        return None
    return RecommendationSpec(config, campaign.path(config.catalog))
