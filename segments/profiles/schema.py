"""The profile schema, and typing raw values by it.

Values are typed by the schema; NaN, None, empty and whitespace-only strings
become *missing*. :func:`infer_schema` makes a schema for an ad-hoc build from
the data; :func:`to_records` gives typed rows as plain Python for templates.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from segments.errors import ProfileDataError
from segments.profiles.guards import MAX_DEPTH, is_too_deep, json_depth_exceeds, may_be_too_deep
from segments.profiles.read import column_hint, read_chunks

TRUE = {"true", "t", "yes", "y", "1", "on"}
FALSE = {"false", "f", "no", "n", "0", "off"}


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: str = "string"
    required: bool = False
    default: Any = None


@dataclass(frozen=True)
class ProfileSchema:
    """Fields by name, plus which field is the recipient id and which the address."""

    fields: dict[str, FieldDef]
    id_field: str = "id"
    email_field: str = "email"

    def types(self) -> dict[str, str]:
        return {name: f.type for name, f in self.fields.items()}


def infer_schema(
    frame: pd.DataFrame, id_field: str = "id", email_field: str = "email"
) -> ProfileSchema:
    """A schema inferred from the data (a build's first chunk): id and email required.

    The id and the email are text. Any other column is typed only when every value
    present in ``frame`` is of that type (see :func:`infer_type`); else it is text.
    """
    for required in (id_field, email_field):
        if required not in frame.columns:
            raise ProfileDataError(
                f"the profiles need a {required!r} column",
                field=required,
                hint=column_hint(
                    frame.columns,
                    "rename the column, or use a campaign file with profiles.id_field",
                ),
            )
    fields = {}
    for column in frame.columns:
        name = str(column)
        key = name in (id_field, email_field)
        kind = "string" if key else infer_type(frame[column])
        fields[name] = FieldDef(name, kind, required=key)
    return ProfileSchema(fields, id_field, email_field)


def infer_file_schema(
    path: str | Path,
    fmt: str,
    chunk_size: int,
    *,
    id_field: str = "id",
    email_field: str = "email",
    **reader_options: Any,
) -> ProfileSchema:
    """The schema :func:`infer_schema` gives the file's first chunk, as a build infers it
    (``reader_options`` as :func:`~segments.profiles.read.read_chunks` takes them)."""
    with closing(read_chunks(path, fmt, chunk_size, **reader_options)) as chunks:
        first = next(chunks, None)
    frame = first.frame if first is not None else pd.DataFrame(columns=[id_field, email_field])
    return infer_schema(frame, id_field, email_field)


def infer_type(series: pd.Series) -> str:
    """The schema type of a raw column: what every present value is, else "string".

    Typed sources (JSONL numbers and booleans, Parquet columns) keep their types.
    Text (CSV, JSON strings) is typed conservatively: "true"/"false"/"yes"/"no" is
    bool; whole numbers without a leading zero or sign "+" and with at most 15 digits
    are int (so zip codes like 02134, phone numbers like +4420... and long account
    numbers stay text); such numbers with a decimal part are float (no exponents:
    1E10 reads as a product code); ISO 8601 dates are date, and with a time datetime.
    Every candidate is checked by the conversion a build applies, so a value the
    build would reject (2026-02-30) leaves the column text.
    """
    present = series[~missing_mask(series)]
    if present.empty:
        return "string"
    first = present.iloc[0]
    if isinstance(first, list | tuple | np.ndarray):
        return "list"
    if isinstance(first, dict):
        return "dict"
    for kind, check in (
        ("bool", pd.api.types.is_bool_dtype),
        ("int", pd.api.types.is_integer_dtype),
        ("float", pd.api.types.is_float_dtype),
        ("datetime", pd.api.types.is_datetime64_any_dtype),
    ):
        if check(present):
            return kind
    values = present.tolist()
    if all(isinstance(v, str) for v in values):
        return _infer_text_type(present.astype(object).str.strip())
    if all(isinstance(v, bool | np.bool_) for v in values):
        return "bool"
    if all(isinstance(v, date) for v in values):  # Parquet dates and timestamps
        return "datetime" if any(isinstance(v, datetime) for v in values) else "date"
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) == len(values):
        return "int" if all(isinstance(v, int) for v in numbers) else "float"
    return "string"


_TEXT_PATTERNS = (
    ("bool", r"(?i:true|false|yes|no)"),
    ("int", r"-?(?:0|[1-9][0-9]{0,14})"),
    ("float", r"-?(?:0|[1-9][0-9]{0,14})(?:\.[0-9]+)?"),
    ("date", r"[0-9]{4}-[0-9]{2}-[0-9]{2}"),
    (
        "datetime",
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
        r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?"
        r"(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?",
    ),
)


def _infer_text_type(text: pd.Series) -> str:
    """The first type of :data:`_TEXT_PATTERNS` every (stripped) value has, else "string"."""
    for kind, pattern in _TEXT_PATTERNS:
        if text.str.fullmatch(pattern).all() and not convert(text, kind)[1].any():
            return kind
    return "string"


def missing_mask(series: pd.Series) -> pd.Series:
    """True where a raw value is missing: NaN/None/NaT or empty/whitespace text."""
    mask = series.isna()
    if series.dtype == object:
        blank = series.map(lambda v: isinstance(v, str) and not v.strip())
        mask = mask | blank.astype(bool)
    elif pd.api.types.is_string_dtype(series.dtype):
        mask = mask | series.str.strip().eq("").fillna(False).astype(bool)
    return mask.astype(bool)


def convert(series: pd.Series, kind: str) -> tuple[pd.Series, pd.Series]:
    """Type a raw column; return (typed column, mask of present-but-invalid values).

    Invalid, besides what does not parse: an int outside 64 bits, a number that is
    not finite (``inf``, JSON ``Infinity``/``NaN``/``1e400``), ``now``/``today`` as a
    date (they would change at every build), a list or dict value nested deeper than
    :data:`~segments.profiles.guards.MAX_DEPTH`, and a list, dict or other container
    where text is expected (never stringified).
    """
    missing = missing_mask(series)
    raw = series.astype(object).where(~missing, None)
    if kind == "string":
        if _is_text_dtype(series):  # every present value is a str already
            return raw, pd.Series(False, index=series.index)
        typed = raw.map(_to_text).astype(object)
        invalid = typed.map(lambda v: v is _INVALID).astype(bool)
        return typed.where(~invalid, None), invalid
    if kind in ("int", "float"):
        return _to_number(raw, missing, kind)
    if kind == "bool":
        return _to_bool(raw, missing)
    if kind in ("date", "datetime"):
        if _is_text_dtype(series):  # stripped, vectorized
            return _to_datetime(series.str.strip().where(~missing), missing, kind)
        return _to_datetime(raw.map(lambda v: v if v is None else str(v).strip()), missing, kind)
    return _to_nested(raw, missing, list if kind == "list" else dict)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_EXACT_FLOAT = 2.0**53  # floats at or past this may have lost an integer's last digits


def _to_number(raw: pd.Series, missing: pd.Series, kind: str) -> tuple[pd.Series, pd.Series]:
    numbers = pd.to_numeric(raw, errors="coerce")
    present = ~missing.to_numpy(dtype=bool)
    if kind == "float" or numbers.dtype.kind not in "iuf":
        values = numbers.to_numpy(dtype="float64", na_value=np.nan)
        invalid = present & ~np.isfinite(values)
        typed = pd.Series(np.where(invalid, np.nan, values), index=raw.index, dtype="float64")
        if kind == "float":
            return typed, pd.Series(invalid, index=raw.index)
        numbers = typed
    ints, invalid = _to_int64(numbers, raw)
    invalid &= present
    typed = pd.Series(pd.arrays.IntegerArray(ints, invalid | ~present), index=raw.index)
    return typed, pd.Series(invalid | (present & numbers.isna().to_numpy()), index=raw.index)


def _to_int64(numbers: pd.Series, raw: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """int64 values and a mask of those that are not whole numbers within 64 bits.

    Vectorized; only values a float may have rounded (2**53 and past) are read again
    from the raw value, exactly, one at a time.
    """
    if numbers.dtype.kind == "u":
        values = numbers.to_numpy()
        invalid = values > np.uint64(_INT64_MAX)
        return np.where(invalid, 0, values).astype(np.int64), invalid
    if numbers.dtype.kind == "i":
        return numbers.to_numpy(dtype=np.int64), np.zeros(len(numbers), dtype=bool)
    values = numbers.to_numpy(dtype="float64", na_value=np.nan)
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(values) & (values == np.round(values))
        inexact = whole & (np.abs(values) >= _EXACT_FLOAT)
        invalid = np.isnan(values) | ~whole
        ints = np.where(whole & ~inexact, values, 0).astype(np.int64)
    for position in inexact.nonzero()[0]:
        exact = _exact_int(raw.iloc[position])
        if exact is None or not _INT64_MIN <= exact <= _INT64_MAX:
            invalid[position] = True
        else:
            ints[position] = exact
    return ints, invalid


def _exact_int(value: Any) -> int | None:
    """The integer a raw value spells exactly (text like "9007199254740993" or "1e18",
    a JSON number), or None."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return int(value) if math.isfinite(value) and float(value).is_integer() else None
    try:
        number = Decimal(str(value).strip())
    except ArithmeticError:
        return None
    if not number.is_finite() or number != number.to_integral_value():
        return None
    return int(number)


def parse_json(text: str) -> Any:
    """``json.loads``, the same values, about twice as fast on the common case.

    orjson parses strict RFC 8259 JSON; what it refuses (``NaN``, lone
    surrogates) goes to ``json.loads``, which decides as before. orjson reads an
    integer past 64 bits as a float, so text with a run of 19 digits goes to
    ``json.loads`` directly.
    """
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: orjson refuses it anyway
        return json.loads(text)
    if _LONG_DIGIT_RUN in data.translate(_DIGITS_AS_ZERO):  # (a regex search costs more)
        return json.loads(text)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(text)


_DIGITS_AS_ZERO = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))
_LONG_DIGIT_RUN = b"0" * 19


def _is_text_dtype(series: pd.Series) -> bool:
    """A pandas string dtype (not object): values are str or missing, nothing else."""
    return isinstance(series.dtype, pd.StringDtype)


def _to_text(value: Any) -> Any:
    """A raw value as text: numbers and booleans spelled out, containers and numbers
    that are not finite :data:`_INVALID` (never stringified)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list | tuple | dict | set | np.ndarray | bytes):
        return _INVALID
    if isinstance(value, float | np.floating):
        if not math.isfinite(value):
            return _INVALID
        if float(value).is_integer():
            return str(int(value))
    return str(value)


def _to_bool(raw: pd.Series, missing: pd.Series) -> tuple[pd.Series, pd.Series]:
    def parse(value: Any) -> Any:
        if value is None or isinstance(value, bool | np.bool_):
            return value
        text = str(value).strip().lower()
        return True if text in TRUE else False if text in FALSE else pd.NA

    typed = raw.map(parse).astype("boolean")
    return typed, typed.isna() & ~missing


# Words pandas reads as the wall-clock time: a rebuild would differ, so they are invalid.
_CLOCK_WORDS = ("now", "today")


def _to_datetime(text: pd.Series, missing: pd.Series, kind: str) -> tuple[pd.Series, pd.Series]:
    typed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    clock = text.isin(_CLOCK_WORDS).to_numpy(dtype=bool)
    # pandas reads "-1" as the year -1 and accepts years past 9999: neither is a Python
    # datetime (a template could not print it), so both are invalid values
    years = typed.dt.year
    clock = clock | ((years < 1) | (years > 9999)).to_numpy(dtype=bool)
    if clock.any():
        typed = typed.where(~clock)
    if kind == "date":
        typed = typed.dt.floor("D")
    return typed, typed.isna() & ~missing


def _to_nested(raw: pd.Series, missing: pd.Series, kind: type) -> tuple[pd.Series, pd.Series]:
    def parse(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if isinstance(value, str):
            if may_be_too_deep(value) and json_depth_exceeds(value, MAX_DEPTH)[0]:
                return _INVALID  # (before parsing: json.loads recurses)
            try:
                value = parse_json(value)  # JSON gives plain lists and dicts already
            except json.JSONDecodeError:
                return _INVALID
            return value if isinstance(value, kind) else _INVALID
        if not isinstance(value, kind) or is_too_deep(value):
            return _INVALID
        return _plain(value)

    parsed = raw.map(parse).astype(object)
    invalid = parsed.map(lambda v: v is _INVALID).astype(bool)
    return parsed.where(~invalid, None), invalid


_INVALID = object()


def _plain(value: Any) -> Any:
    """Arrow/numpy containers to plain lists and dicts, recursively."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def to_records(frame: pd.DataFrame, types: Mapping[str, str]) -> list[dict[str, Any]]:
    """Rows as plain-Python dicts holding only present values (missing fields absent)."""
    names = list(frame.columns)
    columns = [_python_values(frame[name], types.get(name, "string")) for name in names]
    records = []
    for values in zip(*columns, strict=True):
        if None in values:
            records.append({k: v for k, v in zip(names, values, strict=True) if v is not None})
        else:
            records.append(dict(zip(names, values, strict=True)))
    return records


def _python_values(series: pd.Series, kind: str) -> list[Any]:
    """A column as Python values (None where missing), typed by the schema ``kind``.

    Vectorized where numpy/pandas give the same Python objects as converting one
    value at a time: this runs for every column of every chunk a build renders.
    """
    if kind in ("date", "datetime"):
        return _python_datetimes(series, kind)
    if kind in ("list", "dict"):
        return list(series)
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":  # numpy ints/bools: never missing
        values: list[Any] = series.tolist()
        if kind == "float":
            return [float(v) for v in values]
        if kind == "int" and dtype.kind == "b":
            return [int(v) for v in values]
        if kind == "bool" and dtype.kind != "b":
            return [bool(v) for v in values]
        return values
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        values = series.tolist()
        if kind == "int":
            return [None if v != v else int(v) for v in values]
        if kind == "bool":
            return [None if v != v else bool(v) for v in values]
        return [None if v != v else v for v in values]
    values = series.astype(object).where(series.notna(), None).tolist()
    if kind == "int":
        return [int(v) if v is not None else None for v in values]
    if kind == "float":
        return [float(v) if v is not None else None for v in values]
    if kind == "bool":
        return [bool(v) if v is not None else None for v in values]
    return values


def _python_datetimes(series: pd.Series, kind: str) -> list[Any]:
    """UTC-aware ``datetime`` values (``date`` for kind "date"), None where missing."""
    present = series.notna().to_numpy()
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        stamps = pd.DatetimeIndex(series.dt.tz_convert(UTC)).to_pydatetime()
        converted = [
            ts.astimezone(UTC) if ok else None for ts, ok in zip(stamps, present, strict=True)
        ]
    else:
        converted = [
            ts.to_pydatetime().astimezone(UTC) if ok else None
            for ts, ok in zip(series, present, strict=True)
        ]
    if kind == "date":
        return [v.date() if v is not None else None for v in converted]
    return converted
