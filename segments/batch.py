"""The audience side of one chunk: :func:`segment_chunk`, pure.

One validated chunk of profiles goes in; what every row gets comes out: its
segments (exclusive-group labels and cluster labels are membership columns too),
its variants, whether it is held out, and its typed record with the derived
fields joined. No files, no clocks, no counters kept anywhere else: the counts a
build needs travel in the result. The build, the previews, ``segments --explain``
and every executor (in-process, process pool) call this one function; the content
side renders what it returns (``renderer.runtime.render_batch``).

Both inputs pickle, so the same call runs in a worker process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from segments.audience.document import AudienceSegments
from segments.experiments.assign import HOLDOUT_SUFFIX, Experiment, assign_frame, sample_mask
from segments.profiles.read import Rejection
from segments.profiles.schema import ProfileSchema, to_records
from segments.profiles.spool import ValidatedChunk


@dataclass(frozen=True)
class SegmentPlan:
    """Everything :func:`segment_chunk` needs besides the chunk; made once per build.

    ``forced`` variants replace the assigned ones: for a build (``--winner``) only
    where the recipient takes part and is not held out; for a preview
    (``force_holdouts``) everywhere, a held-out recipient included. ``sample`` keeps
    a deterministic share of the audience; ``excluded`` ids are skipped.
    """

    segments: AudienceSegments
    experiments: tuple[Experiment, ...]
    schema: ProfileSchema
    field_types: Mapping[str, str]
    as_of: datetime
    forced: Mapping[str, str] = field(default_factory=dict)
    force_holdouts: bool = False
    sample: float | None = None
    excluded: frozenset[str] = frozenset()


@dataclass
class SegmentedBatch:
    """One chunk, segmented: the audience rows in input order, and the chunk's counts.

    ``rows`` ... ``held_out`` have one entry per audience row (rows skipped by
    ``excluded`` or ``sample`` are only counted); ``held_out`` names the experiments
    that hold a row out (empty: it gets an email). ``rejected`` are the chunk's
    validation rejections, carried through.
    """

    rows: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    segments: list[tuple[str, ...]] = field(default_factory=list)
    variants: list[dict[str, str | None]] = field(default_factory=list)
    held_out: list[tuple[str, ...]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    input_rows: int = 0
    excluded: int = 0
    not_sampled: int = 0
    members: dict[str, int] = field(default_factory=dict)  # per membership column

    def __len__(self) -> int:
        return len(self.rows)

    def is_holdout(self, index: int) -> bool:
        return bool(self.held_out[index])

    def holdouts(self) -> dict[str, int]:
        """Held-out rows per experiment."""
        counts: dict[str, int] = {}
        for keys in self.held_out:
            for key in keys:
                counts[key] = counts.get(key, 0) + 1
        return counts

    def take(self, indices: Sequence[int]) -> SegmentedBatch:
        """These audience rows only (no rejections, no chunk counts): a sub-batch."""
        return SegmentedBatch(
            rows=[self.rows[i] for i in indices],
            ids=[self.ids[i] for i in indices],
            records=[self.records[i] for i in indices],
            segments=[self.segments[i] for i in indices],
            variants=[self.variants[i] for i in indices],
            held_out=[self.held_out[i] for i in indices],
        )


def segment_chunk(chunk: ValidatedChunk, plan: SegmentPlan) -> SegmentedBatch:
    """Segments, variants, holdouts and records of every row of a validated chunk."""
    valid = chunk.valid
    ids = valid[plan.schema.id_field].astype(str)
    keep, excluded, not_sampled = _audience_mask(ids, plan)
    valid, ids = valid[keep], ids[keep]
    membership = plan.segments.evaluate_frame(valid, plan.as_of)
    names = list(membership.columns)
    segment_lists = [
        tuple(n for n, hit in zip(names, row, strict=True) if hit) for row in membership.to_numpy()
    ]
    variants, held_out = _assign(ids, membership, plan)
    # derived fields joined for the whole chunk at once (cheaper than per record)
    records = to_records(plan.segments.enrich(valid), plan.field_types)
    return SegmentedBatch(
        rows=[int(row) for row in valid.index],
        ids=ids.tolist(),
        records=records,
        segments=segment_lists,
        variants=variants,
        held_out=held_out,
        rejected=list(chunk.rejected),
        input_rows=chunk.rows,
        excluded=excluded,
        not_sampled=not_sampled,
        members={str(k): int(v) for k, v in membership.sum().items()},
    )


def segment_members(chunk: ValidatedChunk, plan: SegmentPlan, segment: str) -> list[int]:
    """The input rows of ``segment``'s members that :func:`segment_chunk` gives an email
    (in the audience, not held out), without the records: a build counts them first."""
    valid = chunk.valid
    ids = valid[plan.schema.id_field].astype(str)
    keep, _, _ = _audience_mask(ids, plan)
    valid, ids = valid[keep], ids[keep]
    membership = plan.segments.evaluate_frame(valid, plan.as_of)
    _, held_out = _assign(ids, membership, plan)
    hits = membership[segment].to_numpy(dtype=bool)
    rows = zip(valid.index, hits, held_out, strict=True)
    return [int(row) for row, hit, out in rows if hit and not out]


def _audience_mask(ids: pd.Series, plan: SegmentPlan) -> tuple[pd.Series, int, int]:
    """Rows that stay in the audience; how many ``excluded`` and ``sample`` skipped."""
    keep = pd.Series(True, index=ids.index)
    excluded = not_sampled = 0
    if plan.excluded:
        skipped = ids.isin(plan.excluded)
        excluded = int(skipped.sum())
        keep &= ~skipped
    if plan.sample is not None:
        sampled = sample_mask(ids, plan.sample)
        not_sampled = int((keep & ~sampled).sum())
        keep &= sampled
    return keep, excluded, not_sampled


def _assign(
    ids: pd.Series, membership: pd.DataFrame, plan: SegmentPlan
) -> tuple[list[dict[str, str | None]], list[tuple[str, ...]]]:
    """Each row's variants (forced ones in place) and the experiments holding it out."""
    experiments = plan.experiments
    if not experiments:
        return [dict(plan.forced) for _ in range(len(ids))], [() for _ in range(len(ids))]
    frame = assign_frame(list(experiments), ids, membership)
    keys = [e.key for e in experiments]
    for key, name in plan.forced.items():
        if plan.force_holdouts:
            frame[key] = name
            frame[key + HOLDOUT_SUFFIX] = False
        else:
            frame.loc[frame[key].notna(), key] = name
    variants = [dict(zip(keys, row, strict=True)) for row in frame[keys].itertuples(index=False)]
    flags = np.column_stack([frame[k + HOLDOUT_SUFFIX].to_numpy(dtype=bool) for k in keys])
    held_out = [tuple(k for k, hit in zip(keys, row, strict=True) if hit) for row in flags]
    return variants, held_out
