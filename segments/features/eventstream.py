"""Behavioural features from events read chunk by chunk, in little memory per profile.

An events file can hold tens of events per profile, and a frame of them as Python
strings costs kilobytes per profile. :class:`EventAggregator` instead folds each
chunk into per-profile numpy arrays as it arrives (latest purchase, latest event,
engagement sum, latest viewed category and product, two flags) and keeps only
the events that need the whole history, in compact form (integer positions,
int64 timestamps, float64 numbers, text as codes into one shared vocabulary):

    purchases within ``frequency_window_days``   for frequency and monetary (pandas
                                                  sums them exactly as before)
    add_to_cart lines that may still be open      for cart_abandoned and cart_items;
                                                  lines closed by a later purchase,
                                                  and lines of a profile with a cart
                                                  too young to be abandoned, go early
    views of a product within the view windows    for repeated views and browsing

:meth:`EventAggregator.summary` hands those to :func:`segments.features.scores.feature_frame`,
which derives the documented features from them: the same values, bit for bit,
as folding all events at once, for any chunking. Two cases need a second look,
and :func:`stream_events` gives it by reading the file again:

- ``engagement_score`` is a float sum in time order, so each chunk's events are
  added to the running sums in (timestamp, row) order. A profile with an event
  older than one already added (the file is not in time order for it) has its
  sum redone from its own events in a second pass.
- timestamps parse to microseconds unless some text has nanoseconds; ages then
  come out in nanoseconds for the whole file. A chunk finer than the events
  already folded restarts the pass at the finer unit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from segments.chunkmap import SERIAL, ChunkMapper
from segments.errors import ProfileDataError
from segments.features.events import (
    REJECTED_COLUMNS,
    CleanChunk,
    KnownIds,
    check_columns,
    clean_chunk,
    has_fixed_columns,
    read_event_chunks,
    to_utc,
    to_utc_series,
)
from segments.profiles.sqlread import SqlSource, read_sql_event_chunks

if TYPE_CHECKING:
    from segments.features.scores import FeatureConfig

CHUNK_SIZE = 25_000
"""Event rows read at a time by :func:`stream_events`."""

_DAY = 86400.0
_NAT = np.iinfo(np.int64).min  # NaT as int64, below every real timestamp
_UNITS = ("s", "ms", "us", "ns")
_TEXT = ("product_id", "category", "name", "image_url", "url")
_CART_TEXT = ("product_id", "name", "image_url", "url")


class _FinerUnit(Exception):
    """A chunk's timestamps are finer than those of events already folded."""

    def __init__(self, unit: str) -> None:
        super().__init__(unit)
        self.unit = unit


class Vocabulary:
    """Text values as int32 codes shared across chunks; -1 is missing."""

    def __init__(self) -> None:
        self._codes: dict[Any, int] = {}
        self._values: list[Any] = []

    def encode(self, values: pd.Series) -> np.ndarray:
        """One code per value (missing: -1); new values get the next codes."""
        codes, uniques = pd.factorize(values)
        known = np.fromiter(
            (self._code(value) for value in uniques), dtype=np.int32, count=len(uniques)
        )
        return np.asarray(np.append(known, np.int32(-1))[codes], dtype=np.int32)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """The values of ``codes`` as an object array, NaN where missing (-1)."""
        table = np.empty(len(self._values) + 1, dtype=object)
        table[:-1] = self._values
        table[-1] = np.nan
        return np.asarray(table[codes])

    def _code(self, value: Any) -> int:
        code = self._codes.get(value)
        if code is None:
            code = self._codes[value] = len(self._values)
            self._values.append(value)
        return code


class _Kept:
    """Rows kept for later: one growable array per column, doubled when full.

    A few large arrays rather than one small array per chunk: small long-lived
    arrays scattered between each chunk's temporaries keep the C heap from
    giving memory back, which costs more than the rows themselves.
    """

    def __init__(self) -> None:
        self._columns: dict[str, np.ndarray] = {}
        self.rows = 0

    def add(self, **columns: np.ndarray) -> None:
        """Append rows (every call passes the same columns)."""
        size = len(next(iter(columns.values())))
        if not size:
            return
        end = self.rows + size
        for name, values in columns.items():
            buffer = self._columns.get(name)
            if buffer is None or len(buffer) < end:
                grown = np.empty(max(2 * end, 4096), dtype=values.dtype)
                if buffer is not None:
                    grown[: self.rows] = buffer[: self.rows]
                self._columns[name] = buffer = grown
            buffer[self.rows : end] = values
        self.rows = end

    def joined(self) -> dict[str, np.ndarray]:
        """All rows, in the order added (views of the buffers)."""
        return {name: buffer[: self.rows] for name, buffer in self._columns.items()}

    def keep(self, mask: np.ndarray) -> None:
        """Drop the rows where ``mask`` (over :meth:`joined`) is False, in place."""
        kept = int(mask.sum())
        for buffer in self._columns.values():
            buffer[:kept] = buffer[: self.rows][mask]
        self.rows = kept

    def sorted_by_profile_and_time(self) -> dict[str, np.ndarray]:
        """All rows sorted by ``pos``, then ``ts``, then the order they were added
        (a stable sort, done in place one column at a time: no second copy of the rows)."""
        rows = self.joined()
        if rows:
            order = np.lexsort((rows["ts"], rows["pos"]))
            for values in rows.values():
                values[:] = values[order]
        return rows


@dataclass
class EventSummary:
    """What :class:`EventAggregator` keeps of the events; see the module docs.

    Per profile (arrays of length ``n``): ``last_ts`` (int64 in ``unit``, NaT as
    its int64), ``engagement``, ``purchase_age`` (seconds, NaN without purchase),
    ``carted_recent`` (an add_to_cart within ``browse_hours``), ``category`` and
    ``product`` (codes of the latest viewed ones). Kept rows, each sorted by
    profile then time: ``purchases`` (pos, ts, value), ``carts`` (pos, ts, value,
    quantity and text codes), ``views`` (pos, product code, age).
    """

    n: int
    as_of: pd.Timestamp
    unit: str
    vocabulary: Vocabulary
    last_ts: np.ndarray
    engagement: np.ndarray
    purchase_age: np.ndarray
    carted_recent: np.ndarray
    category: np.ndarray
    product: np.ndarray
    purchases: dict[str, np.ndarray]
    carts: dict[str, np.ndarray]
    views: dict[str, np.ndarray]
    used: bool = False  # set by feature_frame, which releases the parts as it goes

    def release(self, *names: str) -> None:
        """Drop parts that are no longer needed (empty arrays or rows in their place)."""
        for name in names:
            value = getattr(self, name)
            setattr(self, name, {} if isinstance(value, dict) else np.empty(0, value.dtype))

    def timestamps(self, values: np.ndarray) -> pd.Series:
        """int64 timestamps in ``unit`` as a UTC datetime Series."""
        return pd.Series(values.view(f"M8[{self.unit}]")).dt.tz_localize("UTC")

    def ages(self, values: np.ndarray) -> np.ndarray:
        """Seconds from each int64 timestamp to ``as_of``, computed as for a whole file."""
        return np.asarray((self.as_of - self.timestamps(values)).dt.total_seconds().to_numpy())


class EventAggregator:
    """Folds event chunks into per-profile state for :func:`segments.features.scores.feature_frame`.

    ``n`` profiles; :meth:`add` takes each chunk's profile positions and events
    (columns of :data:`segments.features.events.EVENT_COLUMNS` but ``profile_id``; missing
    optional ones count as missing values). ``unit`` fixes the timestamp unit.
    """

    def __init__(
        self, n: int, as_of: datetime, config: FeatureConfig, *, unit: str | None = None
    ) -> None:
        self.n = n
        self.as_of = to_utc(as_of)
        self.config = config
        self.unit = unit
        self.folded = False
        self.vocabulary = Vocabulary()
        self.last_ts = np.full(n, _NAT, dtype=np.int64)
        self.engagement = np.zeros(n, dtype=np.float64)
        self.purchase_age = np.full(n, np.inf, dtype=np.float64)
        self.disordered = np.zeros(n, dtype=bool)
        self.young_cart = np.zeros(n, dtype=bool)
        self.carted_recent = np.zeros(n, dtype=bool)
        self.category = np.full(n, -1, dtype=np.int32)
        self.category_ts = np.full(n, _NAT, dtype=np.int64)
        self.product = np.full(n, -1, dtype=np.int32)
        self.product_ts = np.full(n, _NAT, dtype=np.int64)
        self.purchases = _Kept()
        self.carts = _Kept()
        self.views = _Kept()
        self._carts_checked = 0

    def add(self, pos: np.ndarray, events: Mapping[str, pd.Series]) -> None:
        """Fold one chunk; events of position -1, or after ``as_of``, are ignored."""
        chunk = self._sorted_chunk(np.asarray(pos, dtype=np.int64), events)
        if chunk is None:
            return
        self.folded = True
        p, ts, age, types = chunk["pos"], chunk["ts"], chunk["age"], chunk["type"]
        config = self.config
        late = ts < self.last_ts[p]
        self.disordered[p[late]] = True
        last = _group_last(p)
        self.last_ts[p[last]] = np.maximum(self.last_ts[p[last]], ts[last])
        np.add.at(self.engagement, p, engagement_weights(types, age, config))
        self._purchases(chunk, (types == config.purchase_event).to_numpy(dtype=bool))
        self._carts(chunk, (types == config.cart_event).to_numpy(dtype=bool))
        self._views(chunk, (types == config.view_event).to_numpy(dtype=bool))

    def summary(self) -> EventSummary:
        """The folded state, with kept rows pruned and sorted by profile then time."""
        self._prune_carts()
        return EventSummary(
            n=self.n,
            as_of=self.as_of,
            unit=self.unit or "s",
            vocabulary=self.vocabulary,
            last_ts=self.last_ts,
            engagement=self.engagement,
            purchase_age=np.where(np.isinf(self.purchase_age), np.nan, self.purchase_age),
            carted_recent=self.carted_recent,
            category=self.category,
            product=self.product,
            purchases=self.purchases.sorted_by_profile_and_time(),
            carts=self.carts.sorted_by_profile_and_time(),
            views=self.views.sorted_by_profile_and_time(),
        )

    # --- per chunk ------------------------------------------------------------------

    def _sorted_chunk(
        self, pos: np.ndarray, events: Mapping[str, pd.Series]
    ) -> dict[str, Any] | None:
        """The chunk's usable events, sorted by profile, then time, then row (stable)."""
        timestamps = self.in_unit(to_utc_series(_values(events, "timestamp", len(pos))))
        age = (self.as_of - timestamps).dt.total_seconds().to_numpy()
        chosen = np.flatnonzero((pos >= 0) & (age >= 0))  # NaN age (no timestamp) drops
        if not len(chosen):
            return None
        ts = np.asarray(timestamps.array.asi8)[chosen]
        sort = np.lexsort((ts, pos[chosen]))
        order = chosen[sort]
        chunk: dict[str, Any] = {"pos": pos[order], "ts": ts[sort], "age": age[order]}
        for column in ("type", *_TEXT, "value", "quantity"):
            chunk[column] = _values(events, column, len(pos)).iloc[order].reset_index(drop=True)
        return chunk

    def in_unit(self, timestamps: pd.Series) -> pd.Series:
        """Timestamps in the unit of the whole file (see module docs)."""
        unit = str(timestamps.dt.unit)
        if self.unit is None:
            self.unit = unit
        elif _UNITS.index(unit) > _UNITS.index(self.unit):
            if self.folded:
                raise _FinerUnit(unit)
            self.unit = unit
        return timestamps if unit == self.unit else timestamps.dt.as_unit(self.unit)

    def _purchases(self, chunk: dict[str, Any], is_purchase: np.ndarray) -> None:
        if not is_purchase.any():
            return
        p, age = chunk["pos"][is_purchase], chunk["age"][is_purchase]
        last = _group_last(p)  # sorted by time: a profile's last purchase is its youngest
        self.purchase_age[p[last]] = np.fmin(self.purchase_age[p[last]], age[last])
        window = age < self.config.frequency_window_days * _DAY
        chosen = np.flatnonzero(is_purchase)[window]
        self.purchases.add(
            pos=chunk["pos"][chosen],
            ts=chunk["ts"][chosen],
            value=chunk["value"].to_numpy(dtype=np.float64)[chosen],
        )

    def _carts(self, chunk: dict[str, Any], is_cart: np.ndarray) -> None:
        if not is_cart.any():
            return
        config = self.config
        p, age = chunk["pos"], chunk["age"]
        self.carted_recent[p[is_cart & (age < config.browse_hours * 3600)]] = True
        self.young_cart[p[is_cart & (age < config.cart_min_minutes * 60)]] = True
        chosen = np.flatnonzero(is_cart & self._may_be_open(p, age))
        if not len(chosen):
            return
        lines = {"pos": p[chosen], "ts": chunk["ts"][chosen], "age": age[chosen]}
        for column in ("value", "quantity"):
            lines[column] = chunk[column].to_numpy(dtype=np.float64)[chosen]
        for column in _CART_TEXT:
            lines[column] = self.vocabulary.encode(chunk[column].iloc[chosen])
        self.carts.add(**lines)
        if self.carts.rows > 2 * self._carts_checked + 10_000:
            self._prune_carts()

    def _may_be_open(self, pos: np.ndarray, age: np.ndarray) -> np.ndarray:
        """False for cart lines that can no longer count (see :meth:`_prune_carts`)."""
        return np.asarray(~(age >= self.purchase_age[pos]) & ~self.young_cart[pos], dtype=bool)

    def _prune_carts(self) -> None:
        """Drop cart lines closed by a purchase at or after them, and lines of a profile
        with a line younger than ``cart_min_minutes``: its newest open line is younger
        still (or a purchase closed it and all older ones), so it is never abandoned."""
        lines = self.carts.joined()
        if lines:
            self.carts.keep(self._may_be_open(lines["pos"], lines["age"]))
        self._carts_checked = self.carts.rows

    def _views(self, chunk: dict[str, Any], is_view: np.ndarray) -> None:
        if not is_view.any():
            return
        config = self.config
        p, ts, age = chunk["pos"], chunk["ts"], chunk["age"]
        for column, codes, stamps in (
            ("category", self.category, self.category_ts),
            ("product_id", self.product, self.product_ts),
        ):
            chosen = np.flatnonzero(is_view & chunk[column].notna().to_numpy(dtype=bool))
            chosen = chosen[_group_last(p[chosen])]  # the chunk's latest per profile
            later = ts[chosen] >= stamps[p[chosen]]  # equal time: the later row wins
            chosen = chosen[later]
            codes[p[chosen]] = self.vocabulary.encode(chunk[column].iloc[chosen])
            stamps[p[chosen]] = ts[chosen]
        hours = max(config.repeated_view_hours, config.browse_hours)
        recent = is_view & (age < hours * 3600) & chunk["product_id"].notna().to_numpy(dtype=bool)
        chosen = np.flatnonzero(recent)
        if len(chosen):
            product = self.vocabulary.encode(chunk["product_id"].iloc[chosen])
            self.views.add(pos=p[chosen], ts=ts[chosen], age=age[chosen], product_id=product)


def engagement_weights(types: pd.Series, age: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Each event's engagement points, decayed by its age when a half-life is set."""
    codes, kinds = pd.factorize(types)
    per_kind = pd.Series(kinds).map(config.engagement_weights).fillna(0.0).to_numpy(float)
    weights = np.append(per_kind, 0.0)[codes]  # code -1 (missing type) picks the 0.0
    if config.half_life_days is not None:
        age_days = age / _DAY
        weights = weights * 0.5 ** (age_days / config.half_life_days)
    return np.asarray(weights, dtype=np.float64)


def _values(events: Mapping[str, pd.Series], column: str, size: int) -> pd.Series:
    values = events.get(column)
    if values is None:
        return pd.Series(np.nan, index=pd.RangeIndex(size), dtype="float64")
    return values.reset_index(drop=True)


def _group_last(pos: np.ndarray) -> np.ndarray:
    """Positions of the last element of each run of equal ``pos`` (sorted input)."""
    if not len(pos):
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.append(pos[1:] != pos[:-1], True))


# --- a whole file ------------------------------------------------------------------------


@dataclass
class StreamedEvents:
    """An events file read by :func:`stream_events`: the summary and the row counts."""

    summary: EventSummary
    rows: int
    accepted: int
    rejected: pd.DataFrame


def stream_events(
    path: str | Path,
    *,
    ids: pd.Series,
    other_ids: Iterable[str],
    as_of: datetime,
    config: FeatureConfig,
    chunk_size: int = CHUNK_SIZE,
    delimiter: str = ",",
    encoding: str = "utf-8",
    sql: SqlSource | None = None,
    mapper: ChunkMapper = SERIAL,
) -> StreamedEvents:
    """Read, clean and fold an events file chunk by chunk for the profiles ``ids``.

    ``other_ids`` are ids that are in the profile source but not in ``ids``
    (rejected profiles): their events are accepted but fold into nothing, as
    :func:`segments.features.events.load_events` with every id as ``known_ids`` would.
    Rejected rows carry their row numbers in the whole file. ``delimiter`` and
    ``encoding``: as :func:`segments.features.events.read_event_chunks` takes them.
    With ``sql``, the events come from that database source instead (``path``, then,
    is how messages name it).
    ``mapper`` cleans the chunks (here or in worker processes, :mod:`segments.chunkmap`);
    they are folded here, in file order.
    """

    def read() -> Iterator[pd.DataFrame]:
        if sql is not None:
            return read_sql_event_chunks(sql, chunk_size)
        return read_event_chunks(path, chunk_size, delimiter=delimiter, encoding=encoding)

    n = len(ids)
    others = pd.Series(list(other_ids), dtype=object).astype(str)
    known = KnownIds(pd.concat([ids.astype(str), others], ignore_index=True))
    if known.index.repeats(n):
        raise ProfileDataError("profile ids collide when compared as text", field="id")
    unit: str | None = None
    while True:
        aggregator = EventAggregator(n, as_of, config, unit=unit)
        try:
            rows, accepted, rejected = _fold_file(path, read, known, aggregator, mapper)
        except _FinerUnit as finer:
            unit = finer.unit
            continue
        break
    if aggregator.disordered.any():
        _redo_engagement(read, known, aggregator, mapper)
    return StreamedEvents(aggregator.summary(), rows, accepted, rejected)


def _fold_file(
    path: str | Path,
    read: Callable[[], Iterator[pd.DataFrame]],
    known: KnownIds,
    aggregator: EventAggregator,
    mapper: ChunkMapper,
) -> tuple[int, int, pd.DataFrame]:
    """One pass: (rows, accepted rows, rejected rows); raises for a missing column."""
    seen: set[object] = set()
    rejected: list[pd.DataFrame] = []
    accepted = 0

    def tasks() -> Iterator[tuple[pd.DataFrame | None, int]]:
        first = 1
        doomed = False
        for raw in read():
            seen.update(raw.columns)
            if first == 1 and has_fixed_columns(path):
                doomed = any(c not in seen for c in ("profile_id", "type", "timestamp"))
            # read on regardless: an unreadable file says so first, as before
            yield (None if doomed else raw), first
            first += len(raw)

    n = aggregator.n
    for chunk in mapper.map(clean_task, (known, aggregator.as_of), tasks()):
        if chunk is None:
            continue
        if len(chunk.rejected) or not rejected:
            rejected.append(chunk.rejected)
        accepted += len(chunk.rows)
        aggregator.add(np.where(chunk.known < n, chunk.known, -1), chunk.columns)
    check_columns(seen, path)
    frame = _joined(rejected)
    return accepted + int(frame["row"].nunique()), accepted, frame


def clean_task(
    context: tuple[KnownIds, pd.Timestamp], task: tuple[pd.DataFrame | None, int]
) -> CleanChunk | None:
    """Clean one raw chunk (``task``: the chunk, or None to skip it, and its first row
    number) against the known ids as of ``as_of`` (``context``); the ids themselves are
    left out of the result: the fold needs their positions only."""
    known, as_of = context
    raw, first = task
    if raw is None:
        return None
    chunk = clean_chunk(raw, known=known, as_of=as_of, first_row=first)
    return replace(chunk, ids=chunk.ids.iloc[:0])


def _joined(rejected: list[pd.DataFrame]) -> pd.DataFrame:
    """The chunks' rejected rows as one frame (the first chunk's, maybe empty, for none)."""
    found = [frame for frame in rejected if len(frame)]
    if len(found) > 1:
        return pd.concat(found, ignore_index=True)
    if found or rejected:
        return (found or rejected)[0]
    columns = {c: pd.Series(dtype="int64" if c == "row" else "str") for c in REJECTED_COLUMNS}
    return pd.DataFrame(columns)


def _redo_engagement(
    read: Callable[[], Iterator[pd.DataFrame]],
    known: KnownIds,
    aggregator: EventAggregator,
    mapper: ChunkMapper,
) -> None:
    """Second pass: the engagement sums of profiles whose events came out of time order,
    from their own events only, added in (timestamp, row) order as a one-chunk fold does."""
    n = aggregator.n
    flagged = aggregator.disordered
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def tasks() -> Iterator[tuple[pd.DataFrame | None, int]]:
        first = 1
        for raw in read():
            yield raw, first
            first += len(raw)

    for chunk in mapper.map(clean_task, (known, aggregator.as_of), tasks()):
        assert chunk is not None  # (every task has its chunk)
        pos = np.where(chunk.known < n, chunk.known, -1)
        timestamps = aggregator.in_unit(to_utc_series(chunk.columns["timestamp"]))
        age = (aggregator.as_of - timestamps).dt.total_seconds().to_numpy()
        chosen = np.flatnonzero((pos >= 0) & (age >= 0))
        chosen = chosen[flagged[pos[chosen]]]
        types = chunk.columns["type"].reset_index(drop=True).iloc[chosen]
        weights = engagement_weights(types, age[chosen], aggregator.config)
        parts.append((pos[chosen], np.asarray(timestamps.array.asi8)[chosen], weights))
    pos, ts, weights = (np.concatenate(column) for column in zip(*parts, strict=True))
    order = np.lexsort((ts, pos))
    sums = np.bincount(pos[order], weights=weights[order], minlength=n)
    aggregator.engagement[flagged] = sums[flagged]
