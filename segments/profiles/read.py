"""Reading profile files: CSV, JSONL and Parquet in chunks of raw values.

A chunk's frame is indexed by 1-based data row number, so every later rejection
names the row of the file. Some rows are rejected here: CSV lines that are not a
record of the file (``malformed_row``, :mod:`segments.profiles.csvread`), JSONL lines
that are not JSON objects, or hold a value nested too deep or a lone surrogate (see
:mod:`segments.profiles.guards`); everything else is typed and validated by
:mod:`segments.profiles.validate`.

Exports write "no value" in many ways. A CSV cell or a JSONL string whose trimmed
text is one of ``na_values`` (compared case-insensitively; default
:data:`DEFAULT_NA_VALUES`) is read as missing, like an empty cell or a JSON null.
"""

from __future__ import annotations

import codecs
import glob
import json
import math
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from segments.errors import ConfigError, ProfileDataError
from segments.profiles.csvread import read_csv_blocks
from segments.profiles.guards import MAX_DEPTH, has_surrogate, json_depth_exceeds, may_be_too_deep

DEFAULT_NA_VALUES: tuple[str, ...] = (
    "none",
    "null",
    "nan",
    "-nan",
    "n/a",
    "#n/a",
    "#n/a n/a",
    "#na",
    "<na>",
    "1.#ind",
    "-1.#ind",
    "1.#qnan",
    "-1.#qnan",
)
"""Spellings of "no value" read as missing: pandas' default ``na_values`` without "NA".

"NA" is a real value too often to be missing by default (Namibia's country code, the
Korean surname Na), and "-", "nil" are left out for the same reason (a placeholder that
some fields use as a value, a Catalan and Turkish given name). Empty and whitespace-only
text is missing whatever the list says.
"""

DEFAULT_MAX_MALFORMED = 0.01
"""Share of a CSV file's data lines that may be malformed before the file fails: more
is a sign of the wrong delimiter or quoting, not of a few broken lines."""


@dataclass(frozen=True)
class Rejection:
    """A row that will not be rendered, and why (never the offending value).

    Defined with the readers because the first rejections (JSONL lines that are not
    objects) are made while reading; :mod:`segments.profiles.validate` adds the rest.
    """

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


def leave_interrupts_to_python() -> None:
    """Stop pyarrow from setting its own temporary SIGINT handler around long operations.

    A build turns Ctrl-C (and SIGTERM) into KeyboardInterrupt, stops its workers and
    removes its staging folder. pyarrow's handler, set for the duration of one of its
    operations, turns the signal into a cancellation that is lost when the operation
    finishes first: a build Ctrl-C'd at that moment would run to the end. Without it,
    the KeyboardInterrupt comes as soon as the operation returns.
    """
    import pyarrow.lib

    pyarrow.lib.enable_signal_handlers(False)


@dataclass
class RawChunk:
    """Raw values of consecutive rows, and the rows the reader already rejected."""

    frame: pd.DataFrame  # index: 1-based data row numbers
    rejections: list[Rejection] = field(default_factory=list)


def read_chunks(
    path: str | Path,
    fmt: str,
    chunk_size: int,
    *,
    delimiter: str = ",",
    encoding: str = "utf-8",
    na_values: Iterable[str] = DEFAULT_NA_VALUES,
    max_malformed: float = DEFAULT_MAX_MALFORMED,
) -> Generator[RawChunk, None, None]:
    """Read a profile file in chunks; the frame index is the 1-based data row number.

    ``delimiter`` applies to CSV, ``encoding`` to CSV and JSONL (Parquet says its own),
    ``na_values`` to CSV cells and JSONL strings (Parquet has nulls of its own).
    ``max_malformed`` is the share of CSV data lines that may be malformed (each one
    a ``malformed_row`` rejection) before the file fails.
    """
    path = Path(path)
    fmt = dataset_format(path, fmt)
    na = frozenset(value.strip().lower() for value in na_values)
    if not path.is_file() and not (fmt == "parquet" and parquet_files(path)):
        raise ProfileDataError(
            "profile file not found",
            file=str(path),
            hint="check `profiles:` in the campaign file or --profiles (a Parquet dataset: "
            "a folder or a glob pattern of .parquet files)",
        )
    readers: dict[str, Callable[[], Iterator[RawChunk]]] = {
        "csv": lambda: _csv_chunks(path, chunk_size, delimiter, encoding, na, max_malformed),
        "jsonl": lambda: _jsonl_chunks(path, chunk_size, encoding, na),
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


def _csv_chunks(
    path: Path,
    chunk_size: int,
    delimiter: str,
    encoding: str,
    na: frozenset[str],
    max_malformed: float,
) -> Iterator[RawChunk]:
    """Chunks of :func:`~segments.profiles.csvread.read_csv_blocks`; a malformed line is a
    ``malformed_row`` rejection, until more than ``max_malformed`` of the data lines are
    (then the file fails, as soon as that is sure)."""
    seen = malformed = 0
    first: int | None = None
    lines: int | None = None  # data lines in the file, counted when first needed
    try:
        for block in read_csv_blocks(path, chunk_size, delimiter, encoding):
            seen += block.rows
            malformed += len(block.malformed)
            if block.malformed:
                first = first or block.malformed[0].line
                if malformed > max_malformed * seen:
                    lines = count_rows(path, "csv") if lines is None else lines
                    if malformed > max_malformed * (lines or 0):  # it fails at the end
                        raise _too_malformed(path, malformed, seen, first, max_malformed)
            rejections = [
                Rejection(m.row, None, None, "malformed_row", f"CSV line {m.line}: {m.detail}")
                for m in block.malformed
            ]
            yield RawChunk(_without_na(block.frame, na, ""), rejections)
    except UnicodeDecodeError as exc:
        line = _undecodable_line(path, encoding)
        raise _not_text(path, "CSV", encoding, exc, line=line) from None
    if malformed > max_malformed * seen:
        raise _too_malformed(path, malformed, seen, first, max_malformed)


def _too_malformed(
    path: Path, malformed: int, rows: int, first: int | None, share: float
) -> ProfileDataError:
    return ProfileDataError(
        f"cannot parse CSV: {malformed} of {rows} data lines are malformed, more than "
        f"{share:.2%} (profiles.max_malformed)",
        file=str(path),
        line=first,
        hint="if the file is not comma-separated, set profiles.delimiter in the campaign "
        "(--delimiter for an ad-hoc build); to reject the malformed lines and go on, raise "
        "profiles.max_malformed",
    )


def _without_na(frame: pd.DataFrame, na: frozenset[str], missing: Any) -> pd.DataFrame:
    """``frame`` with each text value spelled as in ``na`` replaced by ``missing`` (for CSV
    the empty string, as an empty cell reads; for JSONL None, as a JSON null)."""
    if not na:
        return frame
    for column in frame.columns:
        values = frame[column]
        if isinstance(values.dtype, pd.StringDtype):
            hit = values.str.strip().str.lower().isin(na).to_numpy(dtype=bool, na_value=False)
        elif values.dtype == object:
            hit = values.map(lambda v: isinstance(v, str) and v.strip().lower() in na)
            hit = hit.to_numpy(dtype=bool)
        else:
            continue
        if hit.any():
            frame[column] = values.where(~hit, missing)
    return frame


def _not_text(
    path: Path, where: str, encoding: str, exc: UnicodeDecodeError, line: int | None = None
) -> ProfileDataError:
    return ProfileDataError(
        f"cannot read {where}: not {encoding} text ({exc.reason})",
        file=str(path),
        line=line,
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


def _jsonl_chunks(
    path: Path, chunk_size: int, encoding: str, na: frozenset[str]
) -> Iterator[RawChunk]:
    number = 0
    try:
        with path.open(encoding=encoding) as handle:
            rows: list[dict[str, Any]] = []
            numbers: list[int] = []
            rejections: list[Rejection] = []
            for number, line in enumerate(handle, start=1):
                value = _jsonl_row(line, number, rejections)
                if value is not None:
                    rows.append(value)
                    numbers.append(number)
                if len(rows) + len(rejections) >= chunk_size:
                    yield _jsonl_chunk(rows, numbers, rejections, na)
                    rows, numbers, rejections = [], [], []
            if rows or rejections:
                yield _jsonl_chunk(rows, numbers, rejections, na)
    except UnicodeDecodeError as exc:
        bad = _undecodable_line(path, encoding) or number + 1
        raise _not_text(path, "JSONL", encoding, exc, line=bad) from None


def _json_constant(name: str) -> float:
    return math.nan if name == "NaN" else math.inf


# JSON's Infinity and -Infinity (which json.loads accepts) read as inf, like 1e400: a
# number that is not finite, invalid in every field type. NaN is missing, as everywhere.
_JSON = json.JSONDecoder(parse_constant=_json_constant)


def _jsonl_row(line: str, number: int, rejections: list[Rejection]) -> dict[str, Any] | None:
    """The object on one JSONL line, or None after adding its rejection to ``rejections``.

    Rejected here, besides lines that are not JSON objects: values nested past
    :data:`~segments.profiles.guards.MAX_DEPTH` (``invalid_value``; checked before parsing
    when the line has brackets enough, as the parser recurses) and text holding a lone
    surrogate (``invalid_text``: no column of text can hold it).
    """

    def reject(field: str | None, reason: str, detail: str) -> None:
        rejections.append(Rejection(number, None, field, reason, detail))

    if not line.strip():
        reject(None, "invalid_json", "empty line")
        return None
    if may_be_too_deep(line, MAX_DEPTH + 1):  # + 1: the line's own object
        deep, key = json_depth_exceeds(line, MAX_DEPTH + 1)
        if deep:
            reject(key, "invalid_value", f"a value nests deeper than {MAX_DEPTH} levels")
            return None
    try:
        value = _JSON.decode(line)
    except json.JSONDecodeError as exc:
        reject(None, "invalid_json", f"not JSON: {exc.msg}")
        return None
    if not isinstance(value, dict):
        reject(None, "invalid_json", "not a JSON object")
        return None
    if "\\u" in line:  # a lone surrogate can only come from an escape
        bad = [key for key, item in value.items() if has_surrogate(key) or has_surrogate(item)]
        if bad:
            field = None if has_surrogate(bad[0]) else bad[0]
            reject(field, "invalid_text", "text holds a lone surrogate")
            return None
    return value


def _undecodable_line(path: Path, encoding: str) -> int | None:
    """The 1-based line of the first byte that is not ``encoding`` text, or None.

    Decoded block by block, as a text file is, so the line is exact for any encoding
    (a line count of raw bytes would not be, in UTF-16).
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    lines = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            try:
                text = decoder.decode(block)
            except UnicodeDecodeError as exc:
                before = exc.object[: exc.start].decode(encoding, errors="replace")
                return lines + before.count("\n") + 1
            lines += text.count("\n")
    return None


def _jsonl_chunk(
    rows: list[dict[str, Any]], numbers: list[int], rejections: list[Rejection], na: frozenset[str]
) -> RawChunk:
    frame = pd.DataFrame.from_records(rows, index=numbers)
    return RawChunk(_without_na(frame, na, None), rejections)


def dataset_format(path: Path, fmt: str) -> str:
    """``fmt``, or ``parquet`` for a folder of no stated format (a Parquet dataset)."""
    return "parquet" if not fmt and path.is_dir() else fmt


def parquet_files(path: Path) -> list[Path]:
    """The files of a Parquet source, in the order they are read: ``path`` itself; the
    ``.parquet`` files under a folder (sub-folders too, as Hive partitions are written),
    or those a glob pattern (``parts/*.parquet``) names; sorted by path, so part names
    zero-padded to the same width (as Spark, Dask and pandas write them) read in order."""
    if path.is_file():
        return [path]
    if path.is_dir():
        found = path.rglob("*.parquet")
    elif any(mark in str(path) for mark in "*?["):
        found = (Path(name) for name in glob.glob(str(path), recursive=True))
    else:
        return []
    return sorted(p for p in found if p.is_file() and not p.name.startswith((".", "_")))


def _parquet_chunks(path: Path, chunk_size: int) -> Iterator[RawChunk]:
    """Chunks of ``chunk_size`` rows across the files of a dataset as if they were one
    file: rows are numbered on from one file to the next, so a rejection's row is its
    row in the dataset (files in :func:`parquet_files` order), and the chunks (so the
    shards of a bundle build) are those of a single file of the same rows."""
    import pyarrow as pa

    start = 1
    held: list[pa.Table] = []  # rows read, not yet in a chunk
    held_rows = 0
    file = path
    for file in parquet_files(path):
        for batch in _parquet_batches(file, chunk_size):
            held.append(pa.Table.from_batches([batch]))
            held_rows += batch.num_rows
            while held_rows >= chunk_size:
                table = _concat(held, file)
                held, held_rows = [table.slice(chunk_size)], held_rows - chunk_size
                yield _parquet_chunk(table.slice(0, chunk_size), start)
                start += chunk_size
    if held_rows:
        yield _parquet_chunk(_concat(held, file), start)


def _parquet_batches(file: Path, chunk_size: int) -> Iterator[Any]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(file)
    except Exception as exc:  # pyarrow raises several unrelated types
        raise ProfileDataError(f"cannot read Parquet: {exc}", file=str(file)) from None
    yield from parquet.iter_batches(batch_size=chunk_size)


def _concat(tables: list[Any], file: Path) -> Any:
    """One table of ``tables`` (the last from ``file``); a column's type may widen from one
    file to the next (int to float, null to text), as pandas would read it."""
    import pyarrow as pa

    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ProfileDataError(
            f"cannot read Parquet: the columns of this file do not match the earlier "
            f"files' ({exc})",
            file=str(file),
            hint="the files of a Parquet dataset must have the same columns and types",
        ) from None


def _parquet_chunk(table: Any, start: int) -> RawChunk:
    frame = table.to_pandas(types_mapper=None)
    frame.index = pd.RangeIndex(start, start + len(frame))
    return RawChunk(frame)


def count_rows(path: str | Path, fmt: str) -> int | None:
    """Rows in a profile file, cheaply, for progress bars (None when unknown).

    CSV counts lines, so a quoted value holding a newline makes it an estimate.
    """
    path = Path(path)
    try:
        if dataset_format(path, fmt) == "parquet":
            import pyarrow.parquet as pq

            files = parquet_files(path)
            return sum(int(pq.ParquetFile(f).metadata.num_rows) for f in files) if files else None
        with path.open("rb") as handle:
            lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
            size = handle.tell()
            handle.seek(max(0, size - 1))
            unterminated = size > 0 and handle.read(1) != b"\n"
    except OSError:
        return None
    lines += int(unterminated)
    return max(0, lines - 1) if fmt == "csv" else lines
