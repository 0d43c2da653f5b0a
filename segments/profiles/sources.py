"""Profile loading: CSV, JSONL and Parquet read in chunks, typed by a schema, validated.

Every input row ends up either in a valid chunk or as a :class:`Rejection` with
its row number, field and reason; nothing is dropped silently. Values are typed
by the schema; NaN, None, empty and whitespace-only strings become *missing*.

Rejection reasons, in the order they are checked (a row gets the first):
``invalid_json``, ``missing_required``, ``invalid_value``, ``invalid_email``,
``duplicate_id``, ``no_consent``, ``suppressed``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
from email_validator import EmailNotValidError, validate_email

from segments.errors import ConfigError, ProfileDataError
from segments.profiles.textindex import SeenTexts

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


@dataclass(frozen=True)
class Rejection:
    """A row that will not be rendered, and why (never the offending value)."""

    row: int
    id: str | None
    field: str | None
    reason: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "id": self.id,
            "field": self.field,
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass
class RawChunk:
    frame: pd.DataFrame  # index: 1-based data row numbers
    rejections: list[Rejection] = field(default_factory=list)


def read_chunks(
    path: str | Path,
    fmt: str,
    chunk_size: int,
    *,
    delimiter: str = ",",
    encoding: str = "utf-8",
) -> Iterator[RawChunk]:
    """Read a profile file in chunks; the frame index is the 1-based data row number.

    ``delimiter`` applies to CSV, ``encoding`` to CSV and JSONL (Parquet says its own).
    """
    path = Path(path)
    if not path.is_file():
        raise ProfileDataError(
            "profile file not found",
            file=str(path),
            hint="check `profiles:` in the campaign file or --profiles",
        )
    readers: dict[str, Callable[[], Iterator[RawChunk]]] = {
        "csv": lambda: _csv_chunks(path, chunk_size, delimiter, encoding),
        "jsonl": lambda: _jsonl_chunks(path, chunk_size, encoding),
        "parquet": lambda: _parquet_chunks(path, chunk_size),
    }
    reader = readers.get(fmt)
    if reader is None:
        raise ConfigError(
            f"unknown profile format {fmt!r}",
            file=str(path),
            hint="use a .csv, .jsonl or .parquet file, or set profiles.format",
        )
    try:
        yield from reader()
    except OSError as exc:  # permissions, I/O: the readers report their own parse errors
        raise ProfileDataError(
            f"cannot read the profile file: {exc.strerror}", file=str(path)
        ) from None


def _csv_chunks(path: Path, chunk_size: int, delimiter: str, encoding: str) -> Iterator[RawChunk]:
    start = 1
    try:
        with pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            chunksize=chunk_size,
            sep=delimiter,
            encoding=encoding,
        ) as reader:
            for frame in reader:
                frame.index = pd.RangeIndex(start, start + len(frame))
                start += len(frame)
                yield RawChunk(frame)
    except UnicodeDecodeError as exc:
        raise _not_text(path, f"CSV near data row {start}", encoding, exc) from None
    except pd.errors.ParserError as exc:
        raise ProfileDataError(
            f"cannot parse CSV near data row {start}: {exc}",
            file=str(path),
            hint="if the file is not comma-separated, set profiles.delimiter in the campaign "
            "(--delimiter for an ad-hoc build)",
        ) from None
    except pd.errors.EmptyDataError:
        return


def _not_text(path: Path, where: str, encoding: str, exc: UnicodeDecodeError) -> ProfileDataError:
    return ProfileDataError(
        f"cannot read {where}: not {encoding} text ({exc.reason})",
        file=str(path),
        hint="set profiles.encoding in the campaign (spreadsheet exports are often cp1252 "
        "or latin-1; --encoding for an ad-hoc build), or save the file as UTF-8",
    )


def column_hint(columns: Any, default: str, key: str = "profiles.delimiter") -> str:
    """``default``, unless the header is one column that looks split by another delimiter
    (then: set ``key`` in the campaign)."""
    names = [str(c) for c in columns]
    if len(names) == 1:
        for mark, label in ((";", "';'"), ("\t", "'\\t' (tab)"), ("|", "'|'")):
            if mark in names[0]:
                adhoc = " (--delimiter for an ad-hoc build)" if key.startswith("profiles") else ""
                return f"the header looks {label}-separated: set {key} in the campaign{adhoc}"
    return default


def _jsonl_chunks(path: Path, chunk_size: int, encoding: str) -> Iterator[RawChunk]:
    number = 0
    try:
        with path.open(encoding=encoding) as handle:
            rows: list[dict[str, Any]] = []
            numbers: list[int] = []
            rejections: list[Rejection] = []
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    rejections.append(Rejection(number, None, None, "invalid_json", "empty line"))
                else:
                    try:
                        value = json.loads(line)
                    except json.JSONDecodeError as exc:
                        rejections.append(
                            Rejection(number, None, None, "invalid_json", f"not JSON: {exc.msg}")
                        )
                        value = None
                    else:
                        if isinstance(value, dict):
                            rows.append(value)
                            numbers.append(number)
                        else:
                            rejections.append(
                                Rejection(number, None, None, "invalid_json", "not a JSON object")
                            )
                if len(rows) + len(rejections) >= chunk_size:
                    yield RawChunk(pd.DataFrame.from_records(rows, index=numbers), rejections)
                    rows, numbers, rejections = [], [], []
            if rows or rejections:
                yield RawChunk(pd.DataFrame.from_records(rows, index=numbers), rejections)
    except UnicodeDecodeError as exc:
        raise _not_text(path, f"JSONL after line {number}", encoding, exc) from None


def _parquet_chunks(path: Path, chunk_size: int) -> Iterator[RawChunk]:
    import pyarrow.parquet as pq

    start = 1
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several unrelated types
        raise ProfileDataError(f"cannot read Parquet: {exc}", file=str(path)) from None
    for batch in parquet.iter_batches(batch_size=chunk_size):
        frame = batch.to_pandas(types_mapper=None)
        frame.index = pd.RangeIndex(start, start + len(frame))
        start += len(frame)
        yield RawChunk(frame)


def infer_schema(
    frame: pd.DataFrame, id_field: str = "id", email_field: str = "email"
) -> ProfileSchema:
    """A schema for an ad-hoc build: id and email required, nested values kept."""
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
        fields[str(column)] = FieldDef(
            str(column), _infer_type(frame[column]), required=column in (id_field, email_field)
        )
    return ProfileSchema(fields, id_field, email_field)


def _infer_type(series: pd.Series) -> str:
    sample = series.dropna()
    sample = sample[sample.map(lambda v: not isinstance(v, str) or bool(v.strip()))]
    if sample.empty:
        return "string"
    first = sample.iloc[0]
    if isinstance(first, list | tuple | np.ndarray):
        return "list"
    if isinstance(first, dict):
        return "dict"
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
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
    """Type a raw column; return (typed column, mask of present-but-invalid values)."""
    missing = missing_mask(series)
    raw = series.astype(object).where(~missing, None)
    if kind == "string":
        if _is_text_dtype(series):  # every present value is a str already
            return raw, pd.Series(False, index=series.index)
        typed = raw.map(lambda v: v if v is None or isinstance(v, str) else _to_text(v)).astype(
            object
        )
        return typed, pd.Series(False, index=series.index)
    if kind in ("int", "float"):
        numbers = pd.to_numeric(raw, errors="coerce")
        invalid = numbers.isna() & ~missing
        if kind == "int":
            fractional = numbers.notna() & (numbers != numbers.round())
            invalid |= fractional
            numbers = numbers.where(~invalid).round().astype("Int64")
        return numbers.astype("Int64" if kind == "int" else "float64"), invalid
    if kind == "bool":
        return _to_bool(raw, missing)
    if kind in ("date", "datetime"):
        if _is_text_dtype(series):  # stripped, vectorized
            return _to_datetime(series.str.strip().where(~missing), missing, kind)
        return _to_datetime(raw.map(lambda v: v if v is None else str(v).strip()), missing, kind)
    return _to_nested(raw, missing, list if kind == "list" else dict)


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


def _to_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
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


def _to_datetime(text: pd.Series, missing: pd.Series, kind: str) -> tuple[pd.Series, pd.Series]:
    typed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
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
            try:
                value = parse_json(value)  # JSON gives plain lists and dicts already
            except json.JSONDecodeError:
                return _INVALID
            return value if isinstance(value, kind) else _INVALID
        return _plain(value) if isinstance(value, kind) else _INVALID

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


class ProfileValidator:
    """Types and validates raw chunks; remembers ids across chunks to catch duplicates.

    Duplicate detection keeps every accepted id (as text, with its hash: about 30
    bytes per recipient, :class:`segments.profiles.textindex.SeenTexts`); everything else
    is per chunk.
    """

    def __init__(
        self,
        schema: ProfileSchema,
        *,
        file: str,
        consent_field: str | None = None,
        suppressed_emails: frozenset[str] = frozenset(),
        suppressed_ids: frozenset[str] = frozenset(),
    ) -> None:
        self.schema = schema
        self.file = file
        self.consent_field = consent_field
        self.suppressed_emails = suppressed_emails
        self.suppressed_ids = suppressed_ids
        self._seen = SeenTexts()
        self._checked_columns = False

    def validate(self, chunk: RawChunk) -> tuple[pd.DataFrame, list[Rejection]]:
        """Return the typed valid rows and the rejections of this chunk."""
        frame = chunk.frame
        rejections = list(chunk.rejections)
        if not self._checked_columns and len(frame.columns):
            self._check_columns(frame)
        reason = pd.Series("", index=frame.index, dtype=object)
        where = pd.Series(None, index=frame.index, dtype=object)
        typed = pd.DataFrame(index=frame.index)
        for name, spec in self.schema.fields.items():
            column = (
                frame[name]
                if name in frame.columns
                else pd.Series(None, index=frame.index, dtype=object)
            )
            values, invalid = convert(column, spec.type)
            absent = (
                values.isna()
                if spec.type not in ("list", "dict")
                else values.map(lambda v: v is None).astype(bool)
            )
            if spec.required:
                _flag(reason, where, absent, "missing_required", name)
            elif spec.default is not None:
                values = _fill_default(values, absent, spec)
            _flag(reason, where, invalid, "invalid_value", name)
            typed[name] = values
        self._check_rows(typed, reason, where)
        ids = typed[self.schema.id_field]
        for row in reason.index[reason != ""]:
            rejections.append(
                Rejection(
                    int(row),
                    _safe_id(ids.get(row)),
                    where[row],
                    reason[row],
                    _detail(reason[row], where[row], self.schema),
                )
            )
        rejections.sort(key=lambda r: r.row)
        return typed[reason == ""], rejections

    def _check_columns(self, frame: pd.DataFrame) -> None:
        self._checked_columns = True
        for name, spec in self.schema.fields.items():
            if spec.required and name not in frame.columns:
                raise ProfileDataError(
                    f"required column {name!r} is not in the file",
                    file=self.file,
                    field=name,
                    hint=column_hint(
                        frame.columns, "add the column or make the field optional in the schema"
                    ),
                )

    def _check_rows(self, typed: pd.DataFrame, reason: pd.Series, where: pd.Series) -> None:
        email_field, id_field = self.schema.email_field, self.schema.id_field
        emails = typed[email_field]
        bad_email = pd.Series([not _valid_email(e) for e in emails], index=typed.index)
        _flag(reason, where, bad_email & emails.notna(), "invalid_email", email_field)
        self._flag_duplicates(typed[id_field], reason, where)
        if self.consent_field:
            consent = (
                typed[self.consent_field]
                if self.consent_field in typed
                else pd.Series(pd.NA, index=typed.index)
            )
            _flag(
                reason, where, ~consent.fillna(False).astype(bool), "no_consent", self.consent_field
            )
        if self.suppressed_emails:
            lowered = emails.map(lambda e: e.strip().lower() if isinstance(e, str) else None)
            _flag(reason, where, lowered.isin(self.suppressed_emails), "suppressed", email_field)
        if self.suppressed_ids:
            _flag(reason, where, typed[id_field].isin(self.suppressed_ids), "suppressed", id_field)

    def _flag_duplicates(self, ids: pd.Series, reason: pd.Series, where: pd.Series) -> None:
        """A row whose id (as text) was in an earlier row that was not rejected before it."""
        pending = np.flatnonzero((reason == "").to_numpy() & ids.notna().to_numpy())
        texts = pd.Series([str(value) for value in ids.to_numpy()[pending]], dtype=object)
        repeated = texts.duplicated(keep="first").to_numpy() | self._seen.contains(texts)
        self._seen.add(texts[~repeated])
        duplicate = np.zeros(len(ids), dtype=bool)
        duplicate[pending[repeated]] = True
        _flag(
            reason,
            where,
            pd.Series(duplicate, index=ids.index),
            "duplicate_id",
            self.schema.id_field,
        )


def _flag(reason: pd.Series, where: pd.Series, mask: pd.Series, code: str, name: str) -> None:
    hit = mask.astype(bool) & (reason == "")
    reason[hit] = code
    where[hit] = name


def _fill_default(values: pd.Series, absent: pd.Series, spec: FieldDef) -> pd.Series:
    filled, _ = convert(pd.Series([spec.default], dtype=object), spec.type)
    return values.where(~absent, filled.iloc[0])


_PLAIN_EMAIL_RE = re.compile(
    r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"(?!(?:arpa|invalid|local|localhost|onion|test)$)[A-Za-z]{2,63}"
)


def _valid_email(value: Any) -> bool:
    """email-validator's syntax check, with a fast path for plain ASCII addresses.

    Addresses matching the strict plain pattern (and its length limits) are
    ones email-validator accepts; everything else goes to email-validator.
    """
    if not isinstance(value, str):
        return False
    if _PLAIN_EMAIL_RE.fullmatch(value) and len(value) <= 254 and value.index("@") <= 64:
        return True
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def _safe_id(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


_DETAILS = {
    "missing_required": "required field '{field}' has no value",
    "invalid_value": "field '{field}' is not a valid {type}",
    "invalid_email": "field '{field}' is not a valid email address",
    "duplicate_id": "id already seen in an earlier row",
    "no_consent": "no marketing consent in field '{field}'",
    "suppressed": "on the suppression list",
}


def _detail(reason: str, name: str | None, schema: ProfileSchema) -> str:
    spec = schema.fields.get(name or "")
    return _DETAILS[reason].format(field=name, type=spec.type if spec else "value")


def load_suppression(
    path: str | Path, column: str, *, delimiter: str = ",", encoding: str = "utf-8"
) -> frozenset[str]:
    """Emails (lower-cased) or ids from a suppression CSV with that column."""
    path = Path(path)
    try:
        frame = pd.read_csv(
            path, dtype=str, keep_default_na=False, sep=delimiter, encoding=encoding
        )
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"cannot read suppression list: not {encoding} text ({exc.reason})",
            file=str(path),
            hint="set suppression.encoding in the campaign (e.g. cp1252), or save it as UTF-8",
        ) from None
    except (OSError, pd.errors.ParserError) as exc:
        raise ConfigError(f"cannot read suppression list: {exc}", file=str(path)) from None
    if column not in frame.columns:
        raise ConfigError(
            f"suppression list has no {column!r} column",
            file=str(path),
            field=column,
            hint=column_hint(
                frame.columns, "set suppression.column: email or id", "suppression.delimiter"
            ),
        )
    values = frame[column].str.strip()
    values = values[values != ""]
    return frozenset(values.str.lower() if column == "email" else values)


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


def count_rows(path: str | Path, fmt: str) -> int | None:
    """Rows in a profile file, cheaply, for progress bars (None when unknown).

    CSV counts lines, so a quoted value holding a newline makes it an estimate.
    """
    path = Path(path)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        with path.open("rb") as handle:
            lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
            size = handle.tell()
            handle.seek(max(0, size - 1))
            unterminated = size > 0 and handle.read(1) != b"\n"
    except OSError:
        return None
    lines += int(unterminated)
    return max(0, lines - 1) if fmt == "csv" else lines
