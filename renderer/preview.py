"""Previewing one recipient's email: what ``mailsmith render --profile ID`` (or
``--segment NAME``) shows: the email the build writes for that recipient.

A preview runs the build's own stages on the chunk that holds the recipient:
:func:`segments.batch.segment_chunk` (with forced variants in place, held-out
recipients included when their experiment is forced) and
:func:`renderer.runtime.render_batch`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime

from renderer.campaign import Campaign
from renderer.coupons import load_pool
from renderer.runtime import CampaignRuntime, Rendered, render_batch
from renderer.specs import make_validator, profile_file, profiles_label, schema_of
from segments.batch import SegmentedBatch, SegmentPlan, segment_chunk
from segments.errors import ConfigError, ProfileDataError
from segments.profiles.read import Rejection
from segments.profiles.schema import infer_schema
from segments.profiles.spool import ValidatedChunk
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
    for runtime, chunk in validated_chunks(campaign, as_of):
        valid = chunk.valid
        match = valid[valid[id_field].astype(str) == profile_id]
        if len(match):  # the one row the build renders for this id
            batch = segment_chunk(ValidatedChunk(match.iloc[:1], []), _plan(runtime, variants))
            return _render(runtime, batch, 0, campaign)
        rejections.extend(r for r in chunk.rejected if r.id == profile_id)
    raise profile_not_found(campaign, profile_id, rejections)


def profile_not_found(
    campaign: Campaign, profile_id: str, rejections: Iterable[Rejection]
) -> ProfileDataError:
    """Why no email can be shown for ``profile_id``: the first of its rows' rejections,
    or no row with that id at all."""
    path = profiles_label(campaign)
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
    for runtime, chunk in validated_chunks(campaign, as_of):
        names = [n for n in runtime.segments.names if not n.startswith("block:")]
        if segment not in names:
            raise ConfigError(
                f"unknown segment {segment!r}",
                file=campaign.file,
                segment=segment,
                hint="segments of this campaign: " + ", ".join(names),
            )
        batch = segment_chunk(chunk, _plan(runtime, variants))
        for index, memberships in enumerate(batch.segments):
            if segment in memberships and not batch.held_out[index]:
                return _render(runtime, batch, index, campaign)
    raise ProfileDataError(
        f"no recipient of segment {segment!r} gets an email",
        file=profiles_label(campaign),
        segment=segment,
        hint="the segment is empty (or every member is held out of an experiment)",
    )


def validated_chunks(
    campaign: Campaign, as_of: datetime | None
) -> Iterator[tuple[CampaignRuntime, ValidatedChunk]]:
    """The runtime and each validated chunk, as the build sees them."""
    source = campaign.profiles
    schema = schema_of(campaign)
    runtime: CampaignRuntime | None = None
    validator: ProfileValidator | None = None
    for chunk in profile_file(campaign).chunks():
        schema = schema or infer_schema(chunk.frame, source.id_field, source.email_field)
        if runtime is None:
            runtime = CampaignRuntime(campaign, schema, campaign.reference_time(as_of))
            validator = make_validator(campaign, schema)
        assert validator is not None
        yield runtime, ValidatedChunk(*validator.validate(chunk))


def _plan(runtime: CampaignRuntime, forced: Mapping[str, str] | None) -> SegmentPlan:
    return runtime.segment_plan(forced or {}, force_holdouts=True)


def _render(
    runtime: CampaignRuntime, batch: SegmentedBatch, index: int, campaign: Campaign
) -> Rendered:
    """Row ``index`` of ``batch`` rendered; refused when it is held out or rejected.
    With ``coupons:``, the recipient gets the code the build gives it (assigned over
    every profile, as the build assigns them)."""
    if batch.held_out[index]:
        key = batch.held_out[index][0]
        raise ProfileDataError(
            f"profile {batch.ids[index]!r} is in the holdout of experiment {key!r}: "
            "the build sends it no email",
            row=batch.rows[index],
            hint=f"preview it anyway with --variant {key}=<variant>",
        )
    one = batch.take([index])
    pool = load_pool(campaign.coupons, campaign.base_dir, campaign.file)
    if pool is not None:
        validator = make_validator(campaign, runtime.schema)
        chunks = (ValidatedChunk(*validator.validate(c)) for c in profile_file(campaign).chunks())
        pool.assign(runtime.segment_plan(), chunks).give(one.rows, one.records)
    result = render_batch(runtime, one)
    if result.rejected:
        rejection = result.rejected[0]
        raise ProfileDataError(
            f"profile cannot be rendered: {rejection.detail}",
            field=rejection.field,
            row=rejection.row,
        )
    return result.rendered[0]
