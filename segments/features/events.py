"""Behavioural events (opens, clicks, views, carts, purchases) for feature derivation.

An events file is CSV (``.csv``), JSON Lines (``.jsonl``, ``.ndjson``) or Parquet
(``.parquet``, ``.pq``), chosen by extension. Columns:

    profile_id   required  the profile the event belongs to
    type         required  event type; stripped and lower-cased. The feature code knows
                           ``open``, ``click``, ``view``, ``add_to_cart`` and
                           ``purchase``; other types are kept (they count as activity)
    timestamp    required  ISO 8601; a timestamp without offset is UTC
    product_id   optional  text
    category     optional  text
    name         optional  text (product name)
    image_url    optional  text (product image, carried into cart items)
    url          optional  text (product page, carried into cart items)
    value        optional  number (order value for a purchase, price for a cart line);
                           a cell that is not a number is read as missing
    quantity     optional  number; a cell that is not a number is read as missing

Other columns are dropped. A bad row is not fatal: it goes to ``rejected`` with one
entry per problem (``row``, ``profile_id``, ``field``, ``reason``), where ``row`` is
the 1-based data row (the first record after a CSV header is row 1). A row is
rejected when its profile id is missing or not among ``known_ids``, its type is
missing, or its timestamp is missing, not ISO 8601, or later than ``as_of`` (an
event from the future of the build would leak into features computed "as of").
Accepted events keep their row number as the index, named ``row``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from pyarrow.lib import ArrowException

from segments.errors import ConfigError, ProfileDataError
from segments.profiles.read import column_hint
from segments.profiles.textindex import TextIndex

REQUIRED_COLUMNS = ("profile_id", "type", "timestamp")
TEXT_COLUMNS = ("product_id", "category", "name", "image_url", "url")
NUMBER_COLUMNS = ("value", "quantity")
EVENT_COLUMNS = REQUIRED_COLUMNS + TEXT_COLUMNS + NUMBER_COLUMNS
REJECTED_COLUMNS = ("row", "profile_id", "field", "reason")

_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
_SUFFIXES[".pq"] = "parquet"


@dataclass(frozen=True)
class EventsResult:
    """Accepted events (columns :data:`EVENT_COLUMNS`) and the rejected rows."""

    events: pd.DataFrame
    rejected: pd.DataFrame


def load_events(path: str | Path, *, known_ids: pd.Index | None, as_of: datetime) -> EventsResult:
    """Read an events file and split it into accepted events and rejected rows.

    ``known_ids`` (the profile source's ids) turns unknown profile ids into
    rejections and gives accepted ``profile_id`` values the dtype of ``known_ids``
    (ids are matched as text, so ``7`` in the events matches ``"7"`` or ``7``).
    The whole file is read at once; :func:`read_event_chunks` reads it in chunks.
    """
    path = Path(path)
    raw = next(_read_frames(path, None))
    check_columns(raw.columns, path)
    return clean_events(raw, known_ids=known_ids, as_of=as_of)


def read_event_chunks(
    path: str | Path, chunk_size: int, *, delimiter: str = ",", encoding: str = "utf-8"
) -> Iterator[pd.DataFrame]:
    """The raw rows of an events file, ``chunk_size`` at a time, in file order.

    Raises like :func:`load_events`: for a missing or unsupported file at once,
    for an unreadable one when the reader meets the problem (the message never
    quotes file content). Columns are not checked: a JSON Lines chunk has only
    the keys its own records use, so check the union with :func:`check_columns`.
    ``delimiter`` applies to CSV, ``encoding`` to CSV and JSON Lines.
    """
    return _read_frames(Path(path), chunk_size, delimiter, encoding)


def has_fixed_columns(path: str | Path) -> bool:
    """True when every chunk of the file has all of its columns (CSV and Parquet do;
    a JSON Lines chunk has only the keys of its own records)."""
    return _SUFFIXES.get(Path(path).suffix.lower()) != "jsonl"


def check_columns(columns: Iterable[object], path: str | Path) -> None:
    """Raise :class:`ProfileDataError` naming ``path`` when a required column is absent."""
    present = set(columns)
    missing = [column for column in REQUIRED_COLUMNS if column not in present]
    if missing:
        raise ProfileDataError(
            "events file lacks a required column",
            file=str(path),
            field=missing[0],
            hint=column_hint(
                sorted(map(str, present)),
                "events need profile_id, type and timestamp columns",
                "events.delimiter",
            ),
        )


class KnownIds:
    """Known profile ids, matched as text (:func:`as_text`): built once, asked per chunk.

    :meth:`position` gives an event id's position in ``known_ids`` (-1 when
    absent); where two known ids read the same as text, the first one wins.
    The ids are held as Arrow text with hashes, not as Python strings
    (:class:`segments.profiles.textindex.TextIndex`).
    """

    def __init__(self, known_ids: pd.Index | pd.Series) -> None:
        self.index = TextIndex(as_text(pd.Series(known_ids, copy=False)))

    def position(self, ids: pd.Series) -> np.ndarray:
        """Position in ``known_ids`` of each id (text, as :func:`as_text` gives), else -1."""
        return self.index.get_indexer(ids)


def clean_events(raw: pd.DataFrame, *, known_ids: pd.Index | None, as_of: datetime) -> EventsResult:
    """Validate and type an in-memory events table; see :func:`load_events`."""
    chunk = clean_chunk(
        raw, known=KnownIds(known_ids) if known_ids is not None else None, as_of=as_of
    )
    ids = chunk.ids if known_ids is None else pd.Series(known_ids.take(chunk.known))
    columns = {"profile_id": ids, **chunk.columns}
    events = pd.DataFrame({k: v.reset_index(drop=True) for k, v in columns.items()})
    events.index = chunk.rows
    return EventsResult(events=events, rejected=chunk.rejected)


@dataclass(frozen=True)
class CleanChunk:
    """One cleaned chunk: the accepted rows, typed, and the rejected ones.

    ``rows`` are the accepted rows' 1-based data row numbers, ``ids`` their
    profile ids as text, ``known`` the positions of those ids in the known ids
    (0 without known ids) and ``columns`` the other :data:`EVENT_COLUMNS`.
    """

    rows: pd.Index
    ids: pd.Series
    known: np.ndarray
    columns: dict[str, pd.Series]
    rejected: pd.DataFrame


def clean_chunk(
    raw: pd.DataFrame, *, known: KnownIds | None, as_of: datetime, first_row: int = 1
) -> CleanChunk:
    """:func:`clean_events` for one chunk of a file, whose first row is data row ``first_row``.

    Every check looks at one row only, so a file cleaned chunk by chunk rejects
    the same rows, under the same row numbers, as the file cleaned at once.
    """
    raw = raw.reset_index(drop=True)
    rows = pd.RangeIndex(first_row, first_row + len(raw), name="row")
    ids = as_text(_column(raw, "profile_id"))
    types = as_text(_column(raw, "type")).str.lower()
    raw_ts = _column(raw, "timestamp")
    timestamps = to_utc_series(raw_ts)
    known_pos = known.position(ids) if known else np.zeros(len(ids), dtype=np.int64)
    checks = [
        ("profile_id", "missing", ids.isna().to_numpy()),
        ("profile_id", "not in the profile source", ids.notna().to_numpy() & (known_pos < 0)),
        ("type", "missing", types.isna().to_numpy()),
        ("timestamp", "missing", _is_blank(raw_ts)),
        (
            "timestamp",
            "not an ISO 8601 timestamp",
            timestamps.isna().to_numpy() & ~_is_blank(raw_ts),
        ),
        ("timestamp", "after as_of", (timestamps > to_utc(as_of)).to_numpy()),
    ]
    rejected = _rejections(rows, ids, checks)
    keep = ~np.logical_or.reduce([mask for _, _, mask in checks])
    columns = {"type": types[keep], "timestamp": timestamps[keep]}
    for column in TEXT_COLUMNS:
        columns[column] = as_text(_column(raw, column))[keep]
    for column in NUMBER_COLUMNS:
        values = pd.to_numeric(_column(raw, column), errors="coerce")
        columns[column] = values.astype("float64")[keep]
    return CleanChunk(rows[keep], ids[keep], known_pos[keep], columns, rejected)


def to_utc(moment: datetime | str) -> pd.Timestamp:
    """``moment`` as a UTC timestamp; a naive moment is taken to be UTC already."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def to_utc_series(values: pd.Series) -> pd.Series:
    """Timestamps as ``datetime64[..., UTC]``; text is parsed as ISO 8601 (naive = UTC).

    Anything that does not parse becomes ``NaT``.
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values.dt.tz_localize("UTC")
    text = as_text(values)
    return pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")


def _read_frames(
    path: Path, chunk_size: int | None, delimiter: str = ",", encoding: str = "utf-8"
) -> Iterator[pd.DataFrame]:
    """The file as one frame (``chunk_size`` None) or in chunks; see :func:`read_event_chunks`."""
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(
            "unsupported events file type",
            file=str(path),
            hint="use a .csv, .jsonl or .parquet file",
        )
    if not path.is_file():
        raise ProfileDataError("events file not found", file=str(path))
    return _guarded(path, kind, chunk_size, {"sep": delimiter, "encoding": encoding})


def _guarded(
    path: Path, kind: str, chunk_size: int | None, text: dict[str, str]
) -> Iterator[pd.DataFrame]:
    try:
        if chunk_size is None:
            yield _read_whole(path, kind, text)
        else:
            yield from _read_chunked(path, kind, chunk_size, text)
    except UnicodeDecodeError:
        raise ProfileDataError(
            f"cannot read events file: not {text['encoding']} text",
            file=str(path),
            hint="set events.encoding in the campaign (e.g. cp1252 or latin-1), "
            "or save the file as UTF-8",
        ) from None
    except (ValueError, OSError, pd.errors.ParserError, ArrowException) as exc:
        # The parser's own message may quote file content, which is personal data.
        raise ProfileDataError(
            f"cannot read events file as {kind} ({type(exc).__name__})",
            file=str(path),
            hint="if it is not comma-separated, set events.delimiter in the campaign"
            if kind == "csv" and isinstance(exc, pd.errors.ParserError)
            else None,
        ) from None


def _read_whole(path: Path, kind: str, text: dict[str, str]) -> pd.DataFrame:
    if kind == "csv":
        # Everything as text, so ids keep leading zeros and "" is the only missing.
        return pd.read_csv(path, dtype=str, keep_default_na=False, **text)
    if kind == "jsonl":
        return pd.read_json(path, lines=True, dtype=False, encoding=text["encoding"])
    return pd.read_parquet(path)


def _read_chunked(
    path: Path, kind: str, chunk_size: int, text: dict[str, str]
) -> Iterator[pd.DataFrame]:
    if kind == "csv":
        with pd.read_csv(
            path, dtype=str, keep_default_na=False, chunksize=chunk_size, **text
        ) as reader:
            yield from reader
    elif kind == "jsonl":
        with pd.read_json(
            path, lines=True, dtype=False, chunksize=chunk_size, encoding=text["encoding"]
        ) as reader:
            yield from reader
    else:
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        if not parquet.metadata.num_rows:  # no batches at all, but the columns still count
            yield parquet.schema_arrow.empty_table().to_pandas()
        for batch in parquet.iter_batches(batch_size=chunk_size):
            yield batch.to_pandas()


def _column(raw: pd.DataFrame, name: str) -> pd.Series:
    if name in raw.columns:
        return raw[name]
    return pd.Series(np.nan, index=raw.index, dtype="float64")


def as_text(values: pd.Series) -> pd.Series:
    """Stripped text with missing as NaN; a float column of whole numbers reads 1.0 as "1".

    This is how profile ids are compared when their dtypes differ.
    """
    if pd.api.types.is_float_dtype(values.dtype):
        finite = values.dropna()
        if np.array_equal(finite, np.floor(finite)):
            values = values.astype("Int64")
    text = values.astype("str").str.strip()
    return text.mask(text == "")


def _is_blank(values: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):  # formatting dates as text is slow
        return np.asarray(values.isna().to_numpy(), dtype=bool)
    return np.asarray(as_text(values).isna().to_numpy(), dtype=bool)


def _rejections(
    rows: pd.RangeIndex, ids: pd.Series, checks: list[tuple[str, str, np.ndarray]]
) -> pd.DataFrame:
    parts = [
        pd.DataFrame(
            {
                "row": rows[mask].to_numpy(),
                "profile_id": ids[mask].to_numpy(),
                "field": field,
                "reason": reason,
            }
        )
        for field, reason, mask in checks
    ]
    rejected = pd.concat(parts, ignore_index=True)
    rejected = rejected.sort_values("row", kind="stable", ignore_index=True)
    return rejected.astype({"row": "int64", "profile_id": "str", "field": "str", "reason": "str"})
