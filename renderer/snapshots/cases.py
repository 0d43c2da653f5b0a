"""What a snapshot holds: one email per persona (or real profile) and variant.

Every persona of the campaign's fixtures renders in every combination of the arms
of the experiments it takes part in (an experiment whose audience segment the
persona is not in stays out); ``--profile ID`` adds real rows the same way. The
three files of a case are the normalized HTML, the text part, and a JSON summary:
subject, preheader, segments, variants, which blocks show and which do not (and
why), and the size of each part.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from renderer.campaign import Campaign
from renderer.env import is_missing
from renderer.fixtures import FixtureSet, prepare_fixtures
from renderer.preview import profile_not_found, validated_chunks
from renderer.runtime import (
    CampaignRuntime,
    Rendered,
    block_overrides,
    recipient_key,
    render_batch,
)
from renderer.snapshots.normalize import normalize_html
from segments.audience.prepass import CampaignAudience
from segments.batch import SegmentedBatch, segment_chunk
from segments.errors import ProfileDataError
from segments.experiments.assign import Experiment
from segments.profiles.read import Rejection
from segments.profiles.spool import ValidatedChunk

DEFAULT_VARIANT = "default"  # the variant key of a campaign without experiments


@dataclass(frozen=True)
class BlockState:
    """Whether a block shows in one email, and why (or why not)."""

    block: str
    shown: bool
    why: str


@dataclass(frozen=True)
class SnapshotCase:
    """One email to snapshot: ``name`` is the persona (``profile-<key>`` for a real
    row), ``variant`` the variant key (``experiment=variant,...``)."""

    name: str
    variant: str
    rendered: Rendered
    blocks: tuple[BlockState, ...]

    def summary(self) -> dict[str, Any]:
        """The JSON snapshot: what the email is, without the profile's id or address."""
        email = self.rendered
        return {
            "persona": self.name,
            "variants": {k: v for k, v in email.variants.items() if v is not None},
            "subject": email.subject,
            "preheader": email.preheader,
            "segments": [s for s in email.segments if not s.startswith("block:")],
            "blocks": [{"block": b.block, "shown": b.shown, "why": b.why} for b in self.blocks],
            "bytes": {"html": len(email.html.encode()), "text": len(email.text.encode())},
            "warnings": list(email.warnings),
        }

    def files(self) -> dict[str, str]:
        """File suffix to content: ``.html`` (normalized), ``.txt`` and ``.json``."""
        text = self.rendered.text
        summary = json.dumps(self.summary(), ensure_ascii=False, indent=2)
        return {
            ".html": normalize_html(self.rendered.html),
            ".txt": text if text.endswith("\n") else text + "\n",
            ".json": summary + "\n",
        }


def variant_key(variants: Mapping[str, str | None]) -> str:
    """``subject_test=A,offer_test=control`` (experiments the email is outside of left
    out); ``default`` when there are none."""
    parts = [f"{key}={name}" for key, name in variants.items() if name is not None]
    return ",".join(parts) or DEFAULT_VARIANT


def variant_choices(
    experiments: Sequence[Experiment], segments: Sequence[str]
) -> list[dict[str, str]]:
    """Every combination of arms for a recipient in ``segments``, in experiment order."""
    arms: list[list[tuple[str, str]]] = []
    for experiment in experiments:
        if experiment.audience is None or experiment.audience in segments:
            arms.append([(experiment.key, v.name) for v in experiment.variants])
    return [dict(combination) for combination in itertools.product(*arms)]


def collect_cases(
    campaign: Campaign,
    *,
    profiles: Sequence[str] = (),
    as_of: datetime | None = None,
) -> list[SnapshotCase]:
    """The cases of ``campaign``: its personas, then the real ``profiles`` (by id), each
    in every variant combination, in a stable order."""
    cases: list[SnapshotCase] = []
    real: CampaignAudience | None = None
    if profiles:
        runtime, rows = _real_rows(campaign, profiles, as_of)
        real = runtime.audience
        for profile_id, row in rows:
            name = f"profile-{recipient_key(campaign.name, profile_id)}"
            cases.extend(_cases(runtime, [name], row))
    if campaign.fixtures:
        fixtures = prepare_fixtures(campaign, as_of=as_of, real=real)
        cases[:0] = list(fixture_cases(fixtures))
    return cases


def fixture_cases(fixtures: FixtureSet) -> Iterator[SnapshotCase]:
    """Each persona in each of its variant combinations."""
    yield from _cases(fixtures.runtime, fixtures.names(), fixtures.chunk)


def _cases(
    runtime: CampaignRuntime, names: Sequence[str], chunk: ValidatedChunk
) -> Iterator[SnapshotCase]:
    """The rows of ``chunk`` (named ``names``) segmented once, then rendered in each
    combination of variants, forced as :func:`segment_chunk` forces them for a preview
    (the variant set, the holdout lifted): variants change no segment or field."""
    batch = segment_chunk(chunk, runtime.segment_plan({}, force_holdouts=True))
    for index, name in enumerate(names):
        for forced in variant_choices(runtime.experiments, batch.segments[index]):
            one = batch.take([index])
            one.variants = [{**one.variants[0], **forced}]
            one.held_out = [tuple(k for k in one.held_out[0] if k not in forced)]
            rendered = _render(runtime, name, one)
            states = block_states(runtime, one.records[0], one.segments[0], one.variants[0])
            yield SnapshotCase(name, variant_key(one.variants[0]), rendered, states)


def _render(runtime: CampaignRuntime, name: str, batch: SegmentedBatch) -> Rendered:
    result = render_batch(runtime, batch)
    if result.rejected:
        rejection = result.rejected[0]
        raise ProfileDataError(
            f"{name} cannot be rendered: {rejection.detail}",
            field=rejection.field,
            variant=variant_key(batch.variants[0]),
            hint="give the persona the field, or add a fallback in the template",
        )
    return result.rendered[0]


def _real_rows(
    campaign: Campaign, ids: Sequence[str], as_of: datetime | None
) -> tuple[CampaignRuntime, list[tuple[str, ValidatedChunk]]]:
    """The runtime and, for each id, its validated row (the first row with that id, as
    the build renders it); an id without a valid row is a :class:`ProfileDataError`."""
    found: dict[str, ValidatedChunk] = {}
    rejections: list[Rejection] = []
    runtime: CampaignRuntime | None = None
    wanted = set(ids)
    for current, chunk in validated_chunks(campaign, as_of):
        runtime = current
        id_field = campaign.profiles.id_field
        texts = chunk.valid[id_field].astype(str)
        for profile_id in wanted - set(found):
            match = chunk.valid[texts == profile_id]
            if len(match):
                found[profile_id] = ValidatedChunk(match.iloc[:1], [])
        rejections.extend(r for r in chunk.rejected if r.id in wanted)
        if len(found) == len(wanted):
            break
    for profile_id in ids:
        if profile_id not in found:
            raise profile_not_found(campaign, profile_id, rejections)
    assert runtime is not None  # there was a chunk: an id was found in it
    return runtime, [(profile_id, found[profile_id]) for profile_id in dict.fromkeys(ids)]


def block_states(
    runtime: CampaignRuntime,
    record: Mapping[str, Any],
    segments: Sequence[str],
    variants: Mapping[str, str | None],
) -> tuple[BlockState, ...]:
    """Every block of the template in assembly order: shown or not, and why."""
    return _BlockWalk(runtime, record, segments, variants).states()


class _BlockWalk:
    """Follows the template's placements as the assembled template decides them: a
    block's fallback chain (:func:`renderer.content.assemble`), then the variants that
    swap or remove the block that would show."""

    def __init__(
        self,
        runtime: CampaignRuntime,
        record: Mapping[str, Any],
        segments: Sequence[str],
        variants: Mapping[str, str | None],
    ) -> None:
        self.blocks = runtime.assembled.blocks
        self.overrides = block_overrides(runtime.experiments)
        self.record, self.segments, self.variants = record, set(segments), variants
        self.found: dict[str, BlockState] = {}

    def states(self) -> tuple[BlockState, ...]:
        fallbacks = {b.fallback for b in self.blocks.values() if b.fallback}
        swapped_in = {
            replacement: (original, key, name)
            for original, items in self.overrides.items()
            for key, name, replacement in items
            if replacement
        }
        for name in self.blocks:
            if name not in fallbacks and name not in swapped_in:
                self.chain(name, "")
        for name in self.blocks:
            if name not in self.found:
                self.found[name] = BlockState(name, False, self.unreached(swapped_in.get(name)))
        return tuple(self.found[name] for name in self.blocks)

    def unreached(self, swap: tuple[str, str, str] | None) -> str:
        """Why a block that no placement reached does not show."""
        if swap is None:
            return "not reached"
        original, key, name = swap
        if self.variants.get(key) == name:
            return f"would replace {original} in variant {key}={name}, which does not show"
        return f"only in variant {key}={name}"

    def note(self, name: str, shown: bool, why: str) -> None:
        if not (name in self.found and self.found[name].shown):  # shown anywhere: shown
            self.found[name] = BlockState(name, shown, why)

    def chain(self, name: str, note: str) -> None:
        shown: str | None = None
        current: str | None = name
        while current is not None:
            spec = self.blocks[current]
            if shown is not None:
                self.note(current, False, f"{shown} shows instead")
            elif (unmet := self.unmet(current)) is not None:
                self.note(current, False, unmet)
            else:
                shown = current
                reasons = [self.met(current), note if current == name else f"fallback of {name}"]
                self.body(current, "; ".join(r for r in reasons if r) or "always shown")
            current = spec.fallback

    def body(self, name: str, why: str) -> None:
        for key, variant, replacement in self.overrides.get(name, []):
            if self.variants.get(key) != variant:
                continue
            if replacement is None:
                self.note(name, False, f"removed in variant {key}={variant}")
            else:
                self.note(name, False, f"replaced by {replacement} in variant {key}={variant}")
                self.chain(replacement, f"replaces {name} in variant {key}={variant}")
            return
        self.note(name, True, why)

    def unmet(self, name: str) -> str | None:
        spec = self.blocks[name]
        segment = spec.segment_name
        if segment is not None and segment not in self.segments:
            if segment.startswith("block:"):
                return "its show_if rule does not match"
            return f"not in segment {segment}"
        missing = [f for f in spec.fields if is_missing(self.record.get(f))]
        return f"no value for {', '.join(missing)}" if missing else None

    def met(self, name: str) -> str:
        spec = self.blocks[name]
        parts = []
        if spec.segment_name is not None:
            segment = spec.segment_name
            inline = segment.startswith("block:")
            parts.append("its show_if rule matches" if inline else f"in segment {segment}")
        if spec.fields:
            parts.append(f"has {', '.join(spec.fields)}")
        return " and ".join(parts)
