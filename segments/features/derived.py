"""Derived fields: per-profile values computed by the audience stage, joined by id.

Features from events and cluster labels are computed once per build, for the
whole audience (see :mod:`segments.audience.document`); the render pass joins them to
each chunk of profiles, vectorized, and a preview looks one profile up. Kept
compact because they stay in memory for the whole build: ids through a
:class:`segments.profiles.textindex.TextIndex`, text columns as categoricals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from segments.profiles.schema import to_records
from segments.profiles.textindex import TextIndex


@dataclass(frozen=True)
class DerivedFields:
    """Per-profile derived values, indexed by profile id as text, and their field types.

    Ids are looked up through a :class:`segments.profiles.textindex.TextIndex` of the frame's
    index (built on first use), not through the index itself: pandas' own lookup
    table would hold every id as a Python string for as long as the build runs.
    The columns in ``text`` (made by :meth:`compact`) are kept as categoricals, a
    small code per profile; :meth:`join` and :meth:`fill_records` give them back in
    the dtype they had (``text`` maps each to it). A profile's own value wins over a
    derived one, except in the columns of ``overrides`` (computed recommendations).
    """

    frame: pd.DataFrame
    types: Mapping[str, str]
    text: Mapping[str, Any] = field(default_factory=dict)
    overrides: frozenset[str] = frozenset()

    @classmethod
    def compact(cls, frame: pd.DataFrame, types: Mapping[str, str]) -> DerivedFields:
        """Derived fields whose text-valued columns are stored as categoricals."""
        frame = frame.copy(deep=False)
        text = {}
        for column in frame.columns:
            if is_text(frame[column]):
                text[column] = frame[column].dtype
                # an array, not a Series: aligning a Series on the ids would make pandas
                # keep every id as a Python string
                frame[column] = frame[column].astype("category").array
        return cls(frame, types, text)

    @property
    def columns(self) -> list[str]:
        """The derived field names."""
        return [str(c) for c in self.frame.columns]

    @cached_property
    def _ids(self) -> TextIndex:
        return TextIndex(self.frame.index)

    def positions(self, ids: Sequence[Any] | pd.Series) -> np.ndarray:
        """Each id's row in :attr:`frame` (matched as text), -1 for an unknown id."""
        if isinstance(ids, pd.Series):
            return self._ids.get_indexer(ids.astype(str))
        return self._ids.get_indexer(np.array([str(i) for i in ids], dtype=object))

    def join(self, df: pd.DataFrame, id_field: str) -> pd.DataFrame:
        """``df`` with every derived field, matched by id; the profile's own values win."""
        if id_field not in df.columns or not len(self.frame.columns):
            return df
        by_row = self.frame.set_axis(pd.RangeIndex(len(self.frame)))
        aligned = by_row.reindex(self.positions(df[id_field])).set_axis(df.index)
        out = df.copy(deep=False)
        for column in self.frame.columns:
            values = aligned[column]
            if column in self.text:
                values = values.astype(self.text[column])
            if column in self.overrides and column in df.columns:
                out[column] = values.where(values.notna(), df[column])  # derived wins
                continue
            out[column] = own_or_derived(df, column, values)  # an unknown id: missing
        return out

    def fill_records(
        self, records: Sequence[dict[str, Any]], id_field: str
    ) -> list[dict[str, Any]]:
        """Records with derived values added where the record has none of its own."""
        positions = self.positions([record.get(id_field) for record in records])
        found = positions >= 0
        derived = iter(to_records(self.frame.iloc[positions[found]], self.types))
        return [
            self._filled(next(derived), record) if hit else record
            for record, hit in zip(records, found, strict=True)
        ]

    def _filled(self, derived: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        won = {name: derived[name] for name in self.overrides if name in derived}
        return {**derived, **record, **won}


def is_text(series: pd.Series) -> bool:
    """True for a column of text (pandas' text dtype, or objects that are all str or missing)."""
    dtype = series.dtype
    if isinstance(dtype, pd.StringDtype):
        return True
    if dtype != np.dtype(object):
        return False
    # the array, not the Series: probing a Series' attributes can make pandas hash its index
    return bool(pd.api.types.infer_dtype(np.asarray(series.array)) == "string")


def own_or_derived(own: pd.DataFrame, column: str, values: pd.Series) -> pd.Series:
    """``own[column]`` where it has a value, else ``values``: a profile's own field wins.

    ``values`` alone when ``own`` has no such column; missing object values are
    None, as the profile loader has them.
    """
    if values.dtype == object:
        values = values.where(values.notna(), None)
    if column in own.columns:
        return own[column].where(own[column].notna(), values)
    return values
