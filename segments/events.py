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

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ConfigError, ProfileDataError

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
    """
    path = Path(path)
    raw = _read_table(path)
    missing = [column for column in REQUIRED_COLUMNS if column not in raw.columns]
    if missing:
        raise ProfileDataError(
            "events file lacks a required column",
            file=str(path),
            field=missing[0],
            hint="events need profile_id, type and timestamp columns",
        )
    return clean_events(raw, known_ids=known_ids, as_of=as_of)


def clean_events(raw: pd.DataFrame, *, known_ids: pd.Index | None, as_of: datetime) -> EventsResult:
    """Validate and type an in-memory events table; see :func:`load_events`."""
    raw = raw.reset_index(drop=True)
    rows = pd.RangeIndex(1, len(raw) + 1, name="row")
    ids = as_text(_column(raw, "profile_id"))
    types = as_text(_column(raw, "type")).str.lower()
    raw_ts = _column(raw, "timestamp")
    timestamps = to_utc_series(raw_ts)
    known_pos = _known_positions(ids, known_ids)
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
    columns = {
        "profile_id": _accepted_ids(ids, known_ids, known_pos, keep),
        "type": types[keep],
        "timestamp": timestamps[keep],
    }
    for column in TEXT_COLUMNS:
        columns[column] = as_text(_column(raw, column))[keep]
    for column in NUMBER_COLUMNS:
        values = pd.to_numeric(_column(raw, column), errors="coerce")
        columns[column] = values.astype("float64")[keep]
    events = pd.DataFrame({k: v.reset_index(drop=True) for k, v in columns.items()})
    events.index = rows[keep]
    return EventsResult(events=events, rejected=rejected)


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


def _read_table(path: Path) -> pd.DataFrame:
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(
            "unsupported events file type",
            file=str(path),
            hint="use a .csv, .jsonl or .parquet file",
        )
    if not path.is_file():
        raise ProfileDataError("events file not found", file=str(path))
    try:
        if kind == "csv":
            # Everything as text, so ids keep leading zeros and "" is the only missing.
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        if kind == "jsonl":
            return pd.read_json(path, lines=True, dtype=False)
        return pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        # The parser's own message may quote file content, which is personal data.
        raise ProfileDataError(
            f"cannot read events file as {kind} ({type(exc).__name__})", file=str(path)
        ) from None


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


def _known_positions(ids: pd.Series, known_ids: pd.Index | None) -> np.ndarray:
    """Position of each event's id in ``known_ids`` (matched as text), -1 if absent."""
    if known_ids is None:
        return np.zeros(len(ids), dtype=np.int64)
    keys = as_text(pd.Series(known_ids, copy=False))
    keys = keys[keys.notna() & ~keys.duplicated()]
    positions = pd.Index(keys.to_numpy()).get_indexer(ids.to_numpy())
    valid = positions >= 0
    result = np.full(len(ids), -1, dtype=np.int64)
    result[valid] = keys.index.to_numpy()[positions[valid]]
    return result


def _accepted_ids(
    ids: pd.Series, known_ids: pd.Index | None, known_pos: np.ndarray, keep: np.ndarray
) -> pd.Series:
    if known_ids is None:
        return ids[keep]
    return pd.Series(known_ids.take(known_pos[keep]))


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
