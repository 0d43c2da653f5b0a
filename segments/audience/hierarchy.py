"""Segment hierarchies: exclusive groups, minimum sizes and overlaps.

An *exclusive group* lists segments in priority order; each profile lands in the
first one it belongs to, or in the group's ``otherwise`` label when it belongs to
none (without ``otherwise`` it stays unassigned)::

    exclusive:
      journey:
        segments: [cart_abandoner, vip, lapsed, new_subscriber]
        otherwise: regular
      tier: [vip, loyalty_elite]          # shorthand: just the list

The assignment is a field named after the group (``journey`` = ``"vip"``) and a
membership column ``journey:vip``, so it shows in the manifest's segments and in
``in_segment('journey:vip')``.

A *minimum size* is a count (``50``) or a share of the audience (``"1%"`` or
``0.01``); ``min_size`` sets the default (1%) and may name segments::

    min_size: 2%
    min_size: {default: 1%, high_value_ny: 10}

A smaller segment is a :class:`SizeWarning`, never an error (``--strict`` turns
warnings into :class:`~segments.errors.AudienceWarningError`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from segments.errors import SegmentRuleError
from segments.yamlsrc import line_at

DEFAULT_MIN_SHARE = 0.01
OVERLAP_FLAG_SHARE = 0.5


@dataclass(frozen=True)
class ExclusiveGroup:
    """Segments in priority order; a profile gets the first it matches, else ``otherwise``."""

    name: str
    segments: tuple[str, ...]
    otherwise: str | None = None
    file: str | None = None
    line: int | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        """Every value the group field can take."""
        return self.segments + ((self.otherwise,) if self.otherwise else ())

    def column(self, label: str) -> str:
        """The membership column of one label: ``journey:vip``."""
        return f"{self.name}:{label}"

    @property
    def columns(self) -> list[str]:
        """Membership columns, in priority order (``otherwise`` last)."""
        return [self.column(label) for label in self.labels]

    def assign(self, membership: pd.DataFrame) -> pd.Series:
        """The label of each row of a membership frame (one bool column per segment)."""
        conditions = [membership[name].to_numpy(dtype=bool) for name in self.segments]
        labels = np.select(conditions, list(self.segments), default="")
        result = pd.Series(labels, index=membership.index, dtype=object)
        return result.where(result != "", self.otherwise)

    def label_of(self, segments: Iterable[str]) -> str | None:
        """The label for one profile, given the names of the segments it belongs to."""
        member = set(segments)
        return next((name for name in self.segments if name in member), self.otherwise)


def exclusive_columns(membership: pd.DataFrame, groups: Sequence[ExclusiveGroup]) -> pd.DataFrame:
    """One bool column per group label (``journey:vip``); each row has at most one per group."""
    columns: dict[str, np.ndarray] = {}
    for group in groups:
        labels = group.assign(membership).to_numpy(dtype=object)
        for label in group.labels:
            columns[group.column(label)] = labels == label
    return pd.DataFrame(columns, index=membership.index)


def parse_exclusive(
    raw: Any, *, segments: Sequence[str], file: str | None
) -> tuple[ExclusiveGroup, ...]:
    """Parse ``exclusive:``; every listed segment must exist, none twice in a group."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise SegmentRuleError(
            "'exclusive' must map group names to segment lists",
            file=file,
            line=line_at(raw, []),
            hint="exclusive: {journey: {segments: [a, b], otherwise: rest}}",
        )
    groups = []
    for name, body in raw.items():
        line = line_at(raw, [name])
        groups.append(_parse_group(str(name), body, segments, file, line))
    return tuple(groups)


def _parse_group(
    name: str, body: Any, known: Sequence[str], file: str | None, line: int | None
) -> ExclusiveGroup:
    def error(message: str, hint: str | None = None) -> SegmentRuleError:
        return SegmentRuleError(message, file=file, line=line, hint=hint, group=name)

    if name in known:
        raise error(f"exclusive group '{name}' has the name of a segment")
    otherwise = None
    if isinstance(body, Mapping):
        unknown = [key for key in body if key not in ("segments", "otherwise")]
        if unknown:
            raise error(f"unknown key '{unknown[0]}' in exclusive group", "use segments, otherwise")
        otherwise, body = body.get("otherwise"), body.get("segments")
        if otherwise is not None and (not isinstance(otherwise, str) or not otherwise):
            raise error("'otherwise' must be a label (a non-empty string)")
    if not isinstance(body, list) or not body or not all(isinstance(s, str) for s in body):
        raise error("an exclusive group needs a non-empty list of segment names")
    for index, segment in enumerate(body):
        if segment not in known:
            raise SegmentRuleError(
                f"unknown segment '{segment}' in exclusive group '{name}'",
                file=file,
                line=line_at(body, [index]) or line,
                hint=f"segments: {', '.join(known)}",
            )
    if len(set(body)) != len(body):
        raise error("a segment is listed twice in the exclusive group")
    if otherwise in body:
        raise error(f"'otherwise' label '{otherwise}' is one of the group's segments")
    return ExclusiveGroup(name, tuple(body), otherwise, file, line)


# --- minimum sizes -----------------------------------------------------------------


@dataclass(frozen=True)
class SizeLimit:
    """A minimum segment size: a count, or a share of the audience."""

    value: float
    is_share: bool

    def minimum(self, audience: int) -> int:
        """The smallest allowed member count for an audience of ``audience`` profiles."""
        if not self.is_share:
            return int(self.value)
        return math.ceil(self.value * audience - 1e-9)

    def __str__(self) -> str:
        return f"{self.value * 100:g}%" if self.is_share else f"{int(self.value)}"


@dataclass(frozen=True)
class MinSizes:
    """The default minimum and per-segment overrides."""

    default: SizeLimit = SizeLimit(DEFAULT_MIN_SHARE, True)
    segments: Mapping[str, SizeLimit] = field(default_factory=dict)

    def for_segment(self, name: str) -> SizeLimit:
        """The limit that applies to segment ``name``."""
        return self.segments.get(name, self.default)


@dataclass(frozen=True)
class SizeWarning:
    """A segment with fewer members than its minimum (possibly none at all)."""

    segment: str
    size: int
    minimum: int
    limit: SizeLimit
    audience: int

    def __str__(self) -> str:
        share = self.size / self.audience if self.audience else 0.0
        what = "is empty" if self.size == 0 else f"has {self.size} members ({share:.1%})"
        return (
            f"segment '{self.segment}' {what}, below its minimum size {self.limit} "
            f"({self.minimum} of {self.audience})"
        )


def parse_size_limit(raw: Any) -> SizeLimit:
    """``50`` -> 50 profiles; ``"2%"`` or ``0.02`` -> 2% of the audience. ValueError if neither."""
    if isinstance(raw, bool):
        raise ValueError("expected a count or a share")
    if isinstance(raw, int) and raw >= 0:
        return SizeLimit(float(raw), False)
    if isinstance(raw, float) and 0 <= raw < 1:
        return SizeLimit(raw, True)
    if isinstance(raw, str) and raw.strip().endswith("%"):
        try:
            share = float(raw.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"'{raw}' is not a percentage") from None
        if 0 <= share <= 1:
            return SizeLimit(share, True)
    raise ValueError("expected a count (50) or a share ('1%' or 0.01)")


def parse_min_size(
    raw: Any, *, segments: Sequence[str], file: str | None, line: int | None
) -> MinSizes:
    """Parse ``min_size:``: one limit, or ``{default: limit, <segment>: limit, ...}``."""
    if raw is None:
        return MinSizes()
    if not isinstance(raw, Mapping):
        return MinSizes(default=_limit(raw, file, line))
    default = MinSizes().default
    overrides: dict[str, SizeLimit] = {}
    for key, value in raw.items():
        key_line = line_at(raw, [key]) or line
        if key == "default":
            default = _limit(value, file, key_line)
        elif key in segments:
            overrides[str(key)] = _limit(value, file, key_line)
        else:
            raise SegmentRuleError(
                f"min_size names unknown segment '{key}'",
                file=file,
                line=key_line,
                hint="use 'default' or a segment name",
            )
    return MinSizes(default, overrides)


def _limit(raw: Any, file: str | None, line: int | None) -> SizeLimit:
    try:
        return parse_size_limit(raw)
    except ValueError as exc:
        raise SegmentRuleError(f"bad min_size: {exc}", file=file, line=line) from None


def size_warnings(sizes: Mapping[str, int], audience: int, limits: MinSizes) -> list[SizeWarning]:
    """A warning per segment (in ``sizes`` order) smaller than its limit."""
    found = []
    for name, size in sizes.items():
        limit = limits.for_segment(name)
        minimum = limit.minimum(audience)
        if size < minimum:
            found.append(SizeWarning(name, int(size), minimum, limit, audience))
    return found


# --- overlaps ----------------------------------------------------------------------


def overlap_matrix(membership: pd.DataFrame) -> pd.DataFrame:
    """Members shared by every pair of segments (the diagonal holds each size)."""
    matrix = membership.to_numpy(dtype=np.int64)
    shared = matrix.T @ matrix
    return pd.DataFrame(shared, index=membership.columns, columns=membership.columns)


@dataclass(frozen=True)
class Overlap:
    """The segment that shares the most of ``segment``'s members."""

    segment: str
    other: str
    shared: int
    share: float


def largest_overlaps(
    overlaps: pd.DataFrame, related: Mapping[str, set[str]] | None = None
) -> dict[str, Overlap]:
    """Per segment, the other segment holding the largest share of its members.

    Pairs where one segment is defined in terms of the other (``related``, e.g.
    through ``{segment: vip}``) are skipped: their overlap is by design.
    """
    related = related or {}
    result = {}
    names = list(overlaps.index)
    for name in names:
        size = int(overlaps.at[name, name])
        best: Overlap | None = None
        for other in names:
            if other == name or other in related.get(name, ()) or name in related.get(other, ()):
                continue
            shared = int(overlaps.at[name, other])
            if size and shared and (best is None or shared > best.shared):
                best = Overlap(name, other, shared, shared / size)
        if best is not None:
            result[name] = best
    return result


def is_overlapping(overlap: Overlap | None) -> bool:
    """True when at least half of a segment's members are also in another segment."""
    return overlap is not None and overlap.share >= OVERLAP_FLAG_SHARE
