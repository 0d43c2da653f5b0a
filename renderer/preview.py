"""Previewing one recipient's email: what ``mailsmith render --profile ID`` shows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import pandas as pd

from segments.errors import ProfileDataError
from segments.profiles import ProfileValidator, infer_schema, read_chunks, to_records

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
    for chunk in chunks:
        schema = schema or infer_schema(chunk.frame, source.id_field, source.email_field)
        if runtime is None:
            runtime = CampaignRuntime(campaign, schema, campaign.reference_time(as_of))
            validator = make_validator(campaign, schema)
        assert validator is not None
        valid, rejected = validator.validate(chunk)
        for rejection in rejected:
            if rejection.id == profile_id:
                raise ProfileDataError(
                    f"profile {profile_id!r} is rejected: {rejection.detail}",
                    file=str(path),
                    line=None,
                    field=rejection.field,
                    row=rejection.row,
                )
        ids = valid[source.id_field].astype(str)
        match = valid[ids == profile_id]
        if len(match):
            return _render(runtime, match.iloc[:1], variants or {})
    raise ProfileDataError(
        f"no profile with id {profile_id!r}",
        file=str(path),
        field=source.id_field,
        hint="check the id, or the profiles.id_field of the campaign",
    )


def _render(runtime: CampaignRuntime, frame: pd.DataFrame, variants: Mapping[str, str]) -> Rendered:
    membership = runtime.segments.evaluate_frame(frame, runtime.as_of)
    names = [n for n, hit in zip(membership.columns, membership.iloc[0], strict=True) if hit]
    record = to_records(frame, runtime.schema.types())[0]
    batch = ProfileBatch([int(frame.index[0])], [record], [tuple(names)], [dict(variants)])
    result = runtime.render_batch(batch)
    if result.rejected:
        rejection = result.rejected[0]
        raise ProfileDataError(
            f"profile cannot be rendered: {rejection.detail}",
            field=rejection.field,
            row=rejection.row,
        )
    return result.rendered[0]
