"""Each profile's segment, for the "popular in your segment" fallback of a build.

``recommendations: {segment_fallback: ...}`` chooses the segment (docs/delivery.md,
"Recommendations"):

- ``true`` (the default): the label of the segments document's first exclusive group
  (the one segment of the hierarchy the profile lands in, or the group's ``otherwise``
  label); without an exclusive group, the first rule segment, in the document's order,
  the profile belongs to. A profile in none has no segment: bestsellers only.
- the name of an exclusive group, or of a cluster (its label is the segment);
- ``false``: no segment fallback (bestsellers only, as before).

The segments are those of the document (rules, percentile thresholds resolved on this
audience, derived fields joined), evaluated for every valid profile, not only for a
build's recipients: before ``--sample``, ``--exclude``, ``--limit`` and experiments'
holdouts. A profile's segment, and so its list, depends on the inputs alone, never on
the chunks, the workers or the options of one build; a preview shows the build's lists.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from segments.audience.document import AudienceSegments, SegmentDocument
from segments.audience.hierarchy import ExclusiveGroup
from segments.errors import ConfigError
from segments.features.derived import DerivedFields
from segments.profiles.spool import ValidatedChunk


@dataclass(frozen=True)
class GroupChoice:
    """Where a profile's segment comes from: an exclusive ``group``, a ``cluster``
    (a derived field), or, with neither, the first matching rule segment."""

    group: ExclusiveGroup | None = None
    cluster: str | None = None

    @property
    def needs_rules(self) -> bool:
        """True when the segments must be evaluated (not a cluster label)."""
        return self.cluster is None


def choose_groups(
    setting: bool | str, document: SegmentDocument, *, file: str | None = None
) -> GroupChoice | None:
    """The segment each profile's fallback reads (module docstring); None for none."""
    if setting is False or (setting is True and not document.segment_names):
        return None  # off, or nothing to evaluate: every profile would be in none
    if setting is True:
        return GroupChoice(group=document.exclusive[0] if document.exclusive else None)
    for group in document.exclusive:
        if group.name == setting:
            return GroupChoice(group=group)
    if any(cluster.name == setting for cluster in document.clusters):
        return GroupChoice(cluster=setting)
    names = [g.name for g in document.exclusive] + [c.name for c in document.clusters]
    raise ConfigError(
        f"recommendations: segment_fallback names no exclusive group or cluster: {setting!r}",
        file=file,
        field="recommendations.segment_fallback",
        hint="name one of " + ", ".join(names) if names else "write true or false",
    )


def profile_groups(
    choice: GroupChoice,
    segments: AudienceSegments,
    chunks: Iterable[ValidatedChunk],
    as_of: datetime,
) -> list[object]:
    """Each profile's segment label (None for none), in the order of the rows of the
    derived fields (``segments.derived``): the profiles of ``chunks``' valid rows."""
    derived = segments.derived
    assert derived is not None  # a pre-pass made the derived fields
    if choice.cluster is not None:
        return list(_labels(derived.frame[choice.cluster]))
    labels = np.full(len(derived.frame), None, dtype=object)
    for chunk in chunks:
        valid = chunk.valid
        membership = segments.evaluate_frame(valid, as_of)
        found = _chosen(choice, membership, segments.segment_names)
        labels[_positions(derived, valid[segments.id_field])] = found
    return list(labels)


def _chosen(choice: GroupChoice, membership: pd.DataFrame, names: list[str]) -> np.ndarray:
    """The label of each row: its exclusive group's, else its first rule segment."""
    if choice.group is not None:
        return _labels(choice.group.assign(membership))
    labels = np.full(len(membership), None, dtype=object)
    for name in reversed(names):  # the first segment written last: it wins
        labels[membership[name].to_numpy(dtype=bool)] = name
    return labels


def _labels(values: pd.Series) -> np.ndarray:
    """Labels as text, None where missing."""
    series = values.astype(object)
    return np.asarray(series.where(series.notna(), None).to_numpy(), dtype=object)


def _positions(derived: DerivedFields, ids: pd.Series) -> np.ndarray:
    positions = derived.positions(ids)
    if (positions < 0).any():  # every valid profile has derived fields: the same pre-pass
        raise ValueError("a validated profile is missing from the derived fields")
    return positions
