"""Why a recipient got the email they got: the explain panel's data, and the matrix.

:func:`explain_recipient` answers, for one recipient (variants forced or not), what
``segments --explain`` answers (every segment rule by rule, with the values and the
resolved percentiles: :func:`renderer.reports.segments.segment_checks`) plus the
content side: exclusive groups and clusters, each experiment's bucket and split,
each block shown or hidden and why, and the tokens that printed their fallback.

:func:`representatives` picks one recipient per exclusive-group label and variant
combination, for the matrix of thumbnails.

An explanation holds the recipient's own values: it goes to the designer's browser,
never to a log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from itertools import islice, product
from typing import Any

from renderer.content import BlockSpec
from renderer.env import is_missing
from renderer.reports.segments import segment_checks
from renderer.runtime import CampaignRuntime, Rendered, block_overrides
from renderer.serve.session import Audience, Compiled, Recipient
from segments.batch import SegmentedBatch
from segments.experiments.assign import Experiment, bucket

GMAIL_CLIP_BYTES = 102 * 1024  # Gmail shows "[Message clipped]" past this much HTML
MAX_MATRIX = 48  # cells in the matrix: labels x variant combinations, at most
_FALLBACK_RE = re.compile(r"([A-Za-z_][\w.]*)\s*\|\s*fallback\b")


def explain_recipient(
    loaded: Audience,
    compiled: Compiled,
    batch: SegmentedBatch,
    rendered: Rendered | None,
) -> dict[str, Any]:
    """The explain panel for the one-row ``batch`` (JSON-ready; see module docs)."""
    runtime = compiled.runtime
    record, member_of = batch.records[0], batch.segments[0]
    variants = batch.variants[0]
    checks = segment_checks(runtime.segments, loaded.audience, record, set(member_of), loaded.as_of)
    context = runtime.full_context(record, member_of, variants)
    return {
        "id": batch.ids[0],
        "row": batch.rows[0],
        "as_of": loaded.as_of.isoformat(),
        "segments": [asdict(check) for check in checks],
        "member_of": [s for s in member_of if not s.startswith("block:")],
        "groups": {g.name: g.label_of(member_of) for g in runtime.segments.groups},
        "clusters": {c.name: record.get(c.name) for c in loaded.audience.document.clusters},
        "thresholds": [str(t) for t in loaded.audience.thresholds],
        "experiments": [
            explain_variant(e, batch.ids[0], set(member_of), variants, batch.held_out[0])
            for e in runtime.experiments
        ],
        "blocks": explain_blocks(runtime, set(member_of), variants, context),
        "fallbacks": fallback_tokens(runtime, context),
        "inbox": inbox(runtime, context, rendered),
    }


def explain_variant(
    experiment: Experiment,
    recipient_id: str,
    member_of: set[str],
    variants: Mapping[str, str | None],
    held_out: Sequence[str],
) -> dict[str, Any]:
    """One experiment for one recipient: its audience, bucket, holdout draw and split
    (see :mod:`segments.experiments.assign` for the algorithm)."""
    total = sum(experiment.weights.values())
    split, edge = [], 0.0
    for name, weight in experiment.weights.items():
        share = weight / total
        split.append({"variant": name, "from": round(edge, 6), "to": round(edge + share, 6)})
        edge += share
    entry: dict[str, Any] = {
        "key": experiment.key,
        "variant": variants.get(experiment.key),
        "held_out": experiment.key in held_out,
        "audience": experiment.audience,
        "in_audience": experiment.audience is None or experiment.audience in member_of,
        "layer": experiment.layer,
        "bucket": round(bucket(experiment.layer or experiment.key, recipient_id), 6),
        "split": split,
        "holdout_share": experiment.holdout,
    }
    if experiment.holdout:
        draw = bucket(f"{experiment.key}:holdout", recipient_id)
        entry["holdout_bucket"] = round(draw, 6)
    return entry


def explain_blocks(
    runtime: CampaignRuntime,
    member_of: set[str],
    variants: Mapping[str, str | None],
    context: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Each block: its ``show_if`` and required fields tested, the fallback it names, and
    the variant that swaps or hides it. A fallback block shows only where the block
    naming it does not."""
    blocks = runtime.assembled.blocks
    overrides = block_overrides(runtime.experiments)
    passes = {name: _passes(spec, member_of, context)[0] for name, spec in blocks.items()}
    fallback_of = {spec.fallback: name for name, spec in blocks.items() if spec.fallback}
    result = []
    for name, spec in blocks.items():
        passed, reasons = _passes(spec, member_of, context)
        primary = fallback_of.get(name)
        if primary is not None:
            state = "shown" if passes[primary] else "hidden"
            reasons.append(f"fallback of {primary}, which is {state}")
        shown = passed and (primary is None or not passes[primary])
        swapped = [
            {"experiment": key, "variant": arm, "replacement": replacement}
            for key, arm, replacement in overrides.get(name, [])
            if variants.get(key) == arm
        ]
        if swapped and shown:
            replacement = swapped[0]["replacement"]
            reasons.append(
                f"variant {swapped[0]['variant']} of {swapped[0]['experiment']} "
                + (f"swaps it for {replacement}" if replacement else "hides it")
            )
        result.append(
            {
                "name": name,
                "file": spec.file,
                "shown": shown and not swapped,
                "reasons": reasons or ["no show_if: always shown"],
                "fallback": spec.fallback,
                "swapped": swapped,
            }
        )
    return result


def _passes(
    spec: BlockSpec, member_of: set[str], context: Mapping[str, Any]
) -> tuple[bool, list[str]]:
    """Whether a block's own condition holds, and why, as sentences."""
    passed, reasons = True, []
    if spec.segment_name is not None:
        hit = spec.segment_name in member_of
        rule = spec.segment_name if isinstance(spec.show_if, str) else "its inline rule"
        reasons.append(f"show_if {rule}: {'yes' if hit else 'no'}")
        passed = passed and hit
    if spec.fields:
        missing = [f for f in spec.fields if is_missing(context.get(f))]
        if missing:
            reasons.append("needs fields without a value: " + ", ".join(missing))
        else:
            reasons.append("needs fields: " + ", ".join(spec.fields) + " (all present)")
        passed = passed and not missing
    return passed, reasons


def fallback_tokens(runtime: CampaignRuntime, context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``{{ field | fallback(...) }}`` tokens whose field has no value for this
    recipient (so the fallback printed), with the designer's file and line."""
    found = []
    seen: set[tuple[str, int, str]] = set()
    sources = [(runtime.campaign.file, 0, text) for text in runtime.header_sources.values()]
    sources += [(t.file, t.line, t.text) for t in runtime.assembled.tokens if t.kind == "var"]
    for file, line, text in sources:
        for match in _FALLBACK_RE.finditer(text):
            name = match.group(1)
            if (file, line, name) in seen or not is_missing(_lookup(context, name)):
                continue
            seen.add((file, line, name))
            found.append({"field": name, "file": file, "line": line or None})
    return found


def _lookup(context: Mapping[str, Any], dotted: str) -> Any:
    value: Any = context
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else getattr(value, part, None)
    return value


def inbox(
    runtime: CampaignRuntime, context: Mapping[str, Any], rendered: Rendered | None
) -> dict[str, Any]:
    """The inbox line (sender, subject, preheader) and the email's size against Gmail's
    clip. The sender is ``vars.from_name`` (or ``sender``, ``shop_name``), else the
    campaign name: the campaign file names no sender of its own."""
    names = runtime.campaign.vars
    sender = next(
        (str(names[k]) for k in ("from_name", "sender", "shop_name") if names.get(k)),
        runtime.campaign.name,
    )
    html_bytes = len(rendered.html.encode("utf-8")) if rendered else None
    return {
        "sender": sender,
        "subject": context.get("subject", ""),
        "preheader": context.get("preheader", ""),
        "html_bytes": html_bytes,
        "text_bytes": len(rendered.text.encode("utf-8")) if rendered else None,
        "clip_bytes": GMAIL_CLIP_BYTES,
        "clipped": html_bytes is not None and html_bytes > GMAIL_CLIP_BYTES,
    }


def representatives(compiled: Compiled) -> list[dict[str, Any]]:
    """One recipient per exclusive-group label and combination of arms (forced), in
    priority and variant order; labels nobody has are left out. Without groups, one
    row (the first recipient) per combination."""
    runtime = compiled.runtime
    experiments = runtime.experiments
    combos = list(islice(product(*(list(e.weights) for e in experiments)), MAX_MATRIX))
    keys = [e.key for e in experiments]
    rows: list[tuple[str, str, Recipient]] = []
    for group in runtime.segments.groups:
        for label in group.labels:
            first = _first_with(compiled.recipients, group.column(label))
            if first is not None:
                rows.append((group.name, label, first))
    if not rows and compiled.recipients:
        rows.append(("", "everyone", compiled.recipients[0]))
    cells = []
    for group_name, label, recipient in rows:
        for combo in combos:
            cells.append(
                {
                    "group": group_name,
                    "label": label,
                    "id": recipient.id,
                    "variants": dict(zip(keys, combo, strict=True)),
                }
            )
            if len(cells) >= MAX_MATRIX:
                return cells
    return cells


def _first_with(recipients: Sequence[Recipient], column: str) -> Recipient | None:
    """The first recipient in this group column (file order)."""
    return next((r for r in recipients if column in r.segments), None)
