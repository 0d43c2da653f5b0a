"""Previewing one recipient's email: what ``mailsmith render --profile ID`` shows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import pandas as pd

from segments.errors import ProfileDataError
from segments.experiments import HOLDOUT_SUFFIX, assign_frame
from segments.profiles import (
    ProfileValidator,
    Rejection,
    infer_schema,
    read_chunks,
    to_records,
)

from .build import make_validator
from .campaign import Campaign
from .runtime import CampaignRuntime, ProfileBatch, Rendered, schema_of


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
    source = campaign.profiles
    path = campaign.path(source.path)
    chunks = read_chunks(path, source.resolved_format, source.chunk_size, **source.reader_options)
    schema = schema_of(campaign)
    runtime: CampaignRuntime | None = None
    validator: ProfileValidator | None = None
    first_rejection: Rejection | None = None
    for chunk in chunks:
        schema = schema or infer_schema(chunk.frame, source.id_field, source.email_field)
        if runtime is None:
            runtime = CampaignRuntime(campaign, schema, campaign.reference_time(as_of))
            validator = make_validator(campaign, schema)
        assert validator is not None
        valid, rejected = validator.validate(chunk)
        ids = valid[source.id_field].astype(str)
        match = valid[ids == profile_id]
        if len(match):  # the one row the build renders for this id
            return _render(runtime, match.iloc[:1], variants or {})
        if first_rejection is None:
            first_rejection = next((r for r in rejected if r.id == profile_id), None)
    if first_rejection is not None:  # no row with the id passed: the build rejects it
        raise ProfileDataError(
            f"profile {profile_id!r} is rejected: {first_rejection.detail}",
            file=str(path),
            line=None,
            field=first_rejection.field,
            row=first_rejection.row,
        )
    raise ProfileDataError(
        f"no profile with id {profile_id!r}",
        file=str(path),
        field=source.id_field,
        hint="check the id, or the profiles.id_field of the campaign",
    )


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
