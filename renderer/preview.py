"""Previewing one recipient's email: what ``mailsmith render --profile ID`` (or
``--segment NAME``) shows: the email the build writes for that recipient."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime

import numpy as np
import pandas as pd

from renderer.campaign import Campaign
from renderer.runtime import CampaignRuntime, ProfileBatch, Rendered
from renderer.specs import make_validator, schema_of
from segments.errors import ConfigError, ProfileDataError
from segments.experiments.assign import HOLDOUT_SUFFIX, assign_frame
from segments.profiles.read import Rejection, read_chunks
from segments.profiles.schema import infer_schema, to_records
from segments.profiles.validate import ProfileValidator


def render_profile(
    campaign: Campaign,
    profile_id: str,
    *,
    as_of: datetime | None = None,
    variants: Mapping[str, str] | None = None,
) -> Rendered:
    """Render the email the build would give ``profile_id`` (optionally forcing variants).

    A profile the build would reject raises :class:`ProfileDataError` with the
    reason, so a designer sees the same outcome as the campaign.
    """
    id_field = campaign.profiles.id_field
    rejections: list[Rejection] = []  # of rows with this id
    for runtime, valid, rejected in _validated(campaign, as_of):
        match = valid[valid[id_field].astype(str) == profile_id]
        if len(match):  # the one row the build renders for this id
            return _render(runtime, match.iloc[:1], variants or {})
        rejections.extend(r for r in rejected if r.id == profile_id)
    raise profile_not_found(campaign, profile_id, rejections)


def profile_not_found(
    campaign: Campaign, profile_id: str, rejections: Iterable[Rejection]
) -> ProfileDataError:
    """Why no email can be shown for ``profile_id``: the first of its rows' rejections,
    or no row with that id at all."""
    path = str(campaign.path(campaign.profiles.path))
    for rejection in rejections:
        if rejection.id == profile_id:
            return ProfileDataError(
                f"profile {profile_id!r} is rejected: {rejection.detail}",
                file=path,
                field=rejection.field,
                row=rejection.row,
            )
    return ProfileDataError(
        f"no profile with id {profile_id!r}",
        file=path,
        field=campaign.profiles.id_field,
        hint="check the id, or the profiles.id_field of the campaign",
    )


def render_segment(
    campaign: Campaign,
    segment: str,
    *,
    as_of: datetime | None = None,
    variants: Mapping[str, str] | None = None,
) -> Rendered:
    """The email of the first recipient (in file order) of ``segment`` that the build
    sends an email to: what a segment gets, without looking up an id."""
    forced = variants or {}
    for runtime, valid, _ in _validated(campaign, as_of):
        names = [n for n in runtime.segments.names if not n.startswith("block:")]
        if segment not in names:
            raise ConfigError(
                f"unknown segment {segment!r}",
                file=campaign.file,
                hint="segments of this campaign: " + ", ".join(names),
            )
        membership = runtime.segments.evaluate_frame(valid, runtime.as_of)
        in_segment = membership[segment].to_numpy(dtype=bool)
        members = valid[in_segment]
        if len(members) and runtime.experiments:
            ids = members[runtime.schema.id_field].astype(str)
            assigned = assign_frame(runtime.experiments, ids, membership[in_segment])
            sent = np.ones(len(members), dtype=bool)
            for experiment in runtime.experiments:
                if experiment.key not in forced:
                    sent &= ~assigned[experiment.key + HOLDOUT_SUFFIX].to_numpy(dtype=bool)
            members = members[sent]
        if len(members):
            return _render(runtime, members.iloc[:1], forced)
    raise ProfileDataError(
        f"no recipient of segment {segment!r} gets an email",
        file=str(campaign.path(campaign.profiles.path)),
        hint="the segment is empty (or every member is held out of an experiment)",
    )


def _validated(
    campaign: Campaign, as_of: datetime | None
) -> Iterator[tuple[CampaignRuntime, pd.DataFrame, list[Rejection]]]:
    """The runtime and each chunk's valid rows and rejections, as the build sees them."""
    source = campaign.profiles
    path = campaign.path(source.path)
    chunks = read_chunks(path, source.resolved_format, source.chunk_size, **source.reader_options)
    schema = schema_of(campaign)
    runtime: CampaignRuntime | None = None
    validator: ProfileValidator | None = None
    for chunk in chunks:
        schema = schema or infer_schema(chunk.frame, source.id_field, source.email_field)
        if runtime is None:
            runtime = CampaignRuntime(campaign, schema, campaign.reference_time(as_of))
            validator = make_validator(campaign, schema)
        assert validator is not None
        valid, rejected = validator.validate(chunk)
        yield runtime, valid, rejected


def _render(runtime: CampaignRuntime, frame: pd.DataFrame, forced: Mapping[str, str]) -> Rendered:
    membership = runtime.segments.evaluate_frame(frame, runtime.as_of)
    names = [n for n, hit in zip(membership.columns, membership.iloc[0], strict=True) if hit]
    variants = _variants(runtime, frame, membership, forced)
    record = to_records(frame, runtime.schema.types())[0]
    batch = ProfileBatch([int(frame.index[0])], [record], [tuple(names)], [variants])
    result = runtime.render_batch(batch)
    if result.rejected:
        rejection = result.rejected[0]
        raise ProfileDataError(
            f"profile cannot be rendered: {rejection.detail}",
            field=rejection.field,
            row=rejection.row,
        )
    return result.rendered[0]


def _variants(
    runtime: CampaignRuntime,
    frame: pd.DataFrame,
    membership: pd.DataFrame,
    forced: Mapping[str, str],
) -> dict[str, str | None]:
    """The variants the build assigns this profile (stable hashing), with ``forced`` ones
    in their place; a profile held out of an experiment that is not forced gets no email."""
    if not runtime.experiments:
        return dict(forced)
    ids = frame[runtime.schema.id_field].astype(str)
    assigned = assign_frame(runtime.experiments, ids, membership).iloc[0]
    variants: dict[str, str | None] = {}
    for experiment in runtime.experiments:
        key = experiment.key
        if key in forced:
            variants[key] = forced[key]
        elif assigned[key + HOLDOUT_SUFFIX]:
            raise ProfileDataError(
                f"profile {ids.iloc[0]!r} is in the holdout of experiment {key!r}: "
                "the build sends it no email",
                row=int(frame.index[0]),
                hint=f"preview it anyway with --variant {key}=<variant>",
            )
        else:
            variants[key] = assigned[key]
    return variants
