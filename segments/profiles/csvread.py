"""CSV profile files read in blocks of lines, so that one malformed line costs one row.

pandas' C parser reads each block (the header line, then about ``chunk_size`` records)
as fast as it reads a whole file. A block it refuses (a line with more fields than the
header, a quote left open) is read again one record at a time with the ``csv`` module,
and only the lines that still do not parse are set aside as malformed, with their
line numbers. Lines are cut into blocks where the count of quote characters is even,
so a quoted value that holds line breaks stays in one block.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

MAX_RECORD_LINES = 10_000
"""Lines one quoted value may span; a quote left open is given up on after this many."""


@dataclass
class Malformed:
    """A data line that is not a CSV record of the file: its row number (it counts as an
    input row), its 1-based line in the file and why (never its text)."""

    row: int
    line: int
    detail: str


@dataclass
class CsvBlock:
    """Raw values of consecutive records (index: 1-based row numbers) and the malformed
    lines among them."""

    frame: pd.DataFrame
    malformed: list[Malformed] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.frame) + len(self.malformed)


def read_csv_blocks(
    path: Path, chunk_size: int, delimiter: str, encoding: str
) -> Iterator[CsvBlock]:
    """Blocks of about ``chunk_size`` records from a CSV file.

    An empty file gives no block. Blank lines are skipped, as pandas skips them. Text
    that is not ``encoding`` raises :class:`UnicodeDecodeError`.
    """
    with _byte_lines(path, encoding) as (lines_of_file, encoding):
        header, line = _header(lines_of_file)
        if header is None:
            return
        reader = _BlockReader(header, delimiter, encoding)
        row = 1
        carry: list[bytes] = []
        while True:
            lines, data, end = _record_lines(lines_of_file, chunk_size, carry)
            if not lines:
                return
            block, carry = reader.parse(lines, data, row, line, end)
            yield block
            row += block.rows
            line += len(lines) - len(carry)


@contextmanager
def _byte_lines(path: Path, encoding: str) -> Iterator[tuple[Iterator[bytes], str]]:
    """The file's lines as bytes, and the encoding they are in.

    Read as bytes (pandas decodes a block faster than Python decodes its lines) when
    the encoding spells quotes and line feeds as ASCII does and the file ends lines
    with line feeds; else decoded, split at any line end and given as UTF-8.
    """
    with path.open("rb") as handle:
        start = handle.readline()
        handle.seek(0)
        ascii_like = '"\n'.encode(encoding, errors="replace") == b'"\n'
        if ascii_like and b"\r" not in start.rstrip(b"\r\n"):
            yield iter(handle), encoding
            return
    with path.open(encoding=encoding, newline="") as text:
        yield (line.encode("utf-8") for line in text), "utf-8"


def _header(lines: Iterator[bytes]) -> tuple[bytes | None, int]:
    """The header record (blank lines before it skipped) and the line after it."""
    number = 1
    for text in lines:
        if text.strip(b"\r\n"):
            more, _ = _until_quotes_close(lines, text.count(b'"') % 2)
            return b"".join([text, *more]), number + 1 + len(more)
        number += 1
    return None, number


def _record_lines(
    lines_of_file: Iterator[bytes], chunk_size: int, carry: list[bytes]
) -> tuple[list[bytes], bytes, bool]:
    """``carry`` and the next ``chunk_size`` lines, and more until the quotes they open
    are closed; the same lines joined; and whether that is the end of the file."""
    lines = carry + list(itertools.islice(lines_of_file, chunk_size))
    end = len(lines) < len(carry) + chunk_size
    data = b"".join(lines)
    if data.count(b'"') % 2:
        more, eof = _until_quotes_close(lines_of_file, 1)
        lines += more
        data += b"".join(more)
        end = end or eof
    return lines, data, end


def _until_quotes_close(lines: Iterator[bytes], odd: int) -> tuple[list[bytes], bool]:
    """Lines up to the one that closes an open quote (at most :data:`MAX_RECORD_LINES`),
    and whether the file ended first."""
    more: list[bytes] = []
    while odd and len(more) < MAX_RECORD_LINES:
        text = next(lines, None)
        if text is None:
            return more, True
        more.append(text)
        odd ^= text.count(b'"') % 2
    return more, False


class _BlockReader:
    """Parses blocks of lines of one file, with its header."""

    def __init__(self, header: bytes, delimiter: str, encoding: str) -> None:
        self.header = header
        self.delimiter = delimiter
        self.encoding = encoding
        self.columns = self._read(header, nrows=0).columns

    def _read(self, data: bytes, **options: Any) -> pd.DataFrame:
        return pd.read_csv(
            io.BytesIO(data),
            dtype=str,
            keep_default_na=False,
            sep=self.delimiter,
            encoding=self.encoding,
            **options,
        )

    def parse(
        self, lines: list[bytes], data: bytes, row: int, line: int, end: bool
    ) -> tuple[CsvBlock, list[bytes]]:
        """One block, and the lines to carry to the next.

        pandas reads it when it can and finds one record per line that is not blank;
        a block it refuses, or one with values across lines (which pandas reads
        leniently: a quote left open swallows the lines up to the next quote), is read
        record by record (:meth:`records`).
        """
        try:
            frame = self._read(self.header + data)
        except pd.errors.ParserError:
            return self.records(lines, row, line, end)
        except pd.errors.EmptyDataError:
            frame = pd.DataFrame(columns=self.columns, dtype=str)
        blank = lines.count(b"\n") + lines.count(b"\r\n")
        if len(frame) != len(lines) - blank or not isinstance(frame.index, pd.RangeIndex):
            # (pandas makes the first column an index when every line has one field more)
            return self.records(lines, row, line, end)
        frame.index = pd.RangeIndex(row, row + len(frame))
        return CsvBlock(frame), []

    def records(
        self, lines: list[bytes], row: int, line: int, end: bool
    ) -> tuple[CsvBlock, list[bytes]]:
        """A block, one record at a time, and the lines to carry to the next block.

        A record runs from a line to where its quotes balance; one that runs past the
        block goes to the next block (unless the file ends, or it is too long). A record
        that does not parse (strictly) is one malformed row when it is too wide, else
        its first line alone is malformed and the next line starts over (so a quote
        left open costs its own line only).
        """
        values: list[list[str | None]] = []
        rows: list[int] = []
        malformed: list[Malformed] = []
        width = len(self.columns)
        at = 0
        while at < len(lines):
            if not lines[at].strip(b"\r\n"):
                at += 1
                continue
            stop = at + 1
            odd = lines[at].count(b'"') % 2
            while odd and stop < len(lines):
                odd ^= lines[stop].count(b'"') % 2
                stop += 1
            if odd and not end and len(lines) - at < MAX_RECORD_LINES:
                return self._block(values, rows, malformed), lines[at:]
            fields = None if odd else self._fields(b"".join(lines[at:stop]))
            if fields is None or len(fields) > width:
                if fields is None:  # its first line alone is malformed; the next starts over
                    stop = at + 1
                detail = f"not one record of at most {width} fields (the header's)"
                malformed.append(Malformed(row, line + at, detail))
            else:
                values.append([*fields, *[None] * (width - len(fields))])
                rows.append(row)
            row += 1
            at = stop
        return self._block(values, rows, malformed), []

    def _block(
        self, values: list[list[str | None]], rows: list[int], malformed: list[Malformed]
    ) -> CsvBlock:
        frame = pd.DataFrame(values, columns=self.columns, index=rows, dtype="str")
        return CsvBlock(frame, malformed)

    def _fields(self, data: bytes) -> list[str] | None:
        """The fields of one record, or None when it is not exactly one record (a quote
        left open or text after a closing quote: the ``csv`` module's strict mode)."""
        text = data.decode(self.encoding)
        try:
            reader = csv.reader(
                io.StringIO(text, newline=""), delimiter=self.delimiter, strict=True
            )
            records = list(reader)
        except csv.Error:
            return None
        return records[0] if len(records) == 1 else None
