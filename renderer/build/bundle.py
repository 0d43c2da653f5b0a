"""Bundle outputs: a build's emails in a few large shards instead of two files each.

``output.format: jsonl`` writes ``emails/emails-00000.jsonl``, ``...-00001.jsonl``...,
one JSON object per rendered recipient; ``parquet`` writes ``emails/emails-00000.parquet``
and so on with the same columns, one row group per shard (:data:`COLUMNS`). A shard is one
part of the input of at most ``output.shard_size`` valid rows, numbered in input order by
the build (not by the worker that renders it), so the bytes are the same whatever the
number of workers. A part with no email (all held out, rejected or excluded) has no shard.

``output.compression: zstd`` compresses JSONL shards (``emails-00000.jsonl.zst``, one
zstd frame each, readable by ``zstd -d``, pandas and DuckDB): level :data:`ZSTD_LEVEL`,
single-threaded, no content size and no checksum in the frame header, so the same rows
give the same bytes (with the same zstd library). Parquet shards compress their pages
with zstd anyway; ``files`` ignores the setting.

The manifest keeps a line per recipient, with ``shard`` (the shard's path in the build)
and ``shard_row`` (the recipient's row in it, from 0) where a ``files`` build has the
paths of its HTML and text files. Parquet shards are written without timestamps, so a
build run again gives the same bytes.

A JSONL shard is written as it goes, a line per email (memory does not grow with the
shard); a Parquet shard is one row group, so its rows are held until it is closed
(``bench/bench_memory_scale.py`` measures the peak).
"""

from __future__ import annotations

import hashlib
import os
from array import array
from typing import IO, Any, Literal

from renderer.build.output import dumps_line, manifest_head, write_failed
from renderer.runtime import Rendered

BundleFormat = Literal["jsonl", "parquet"]
Compression = Literal["none", "zstd"]
FOLDER = "emails"
ZSTD_LEVEL = 3  # fixed: another level gives other bytes (3 is zstd's default: fast, ~8x here)

COLUMNS = ("id", "email", "subject", "preheader", "html", "text", "segments", "variants", "sha256")
"""A shard's columns (the keys of a JSONL shard's objects), in order: ``text`` is null
when the campaign has ``output.text: false``."""


def shard_path(format: BundleFormat, shard: int, compression: Compression = "none") -> str:
    """A shard's path in the build folder."""
    suffix = ".zst" if format == "jsonl" and compression == "zstd" else ""
    return f"{FOLDER}/emails-{shard:05d}.{format}{suffix}"


class BundleFiles:
    """Opens the shards of a build's staging folder: one :class:`ShardWriter` per part.

    Picklable, like :class:`~renderer.build.output.EmailFiles`: worker processes write
    their parts' shards themselves and hand back only the manifest lines.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        format: BundleFormat,
        shard_size: int,
        *,
        text: bool,
        compression: Compression = "none",
    ) -> None:
        self.root = str(root)
        self.format: BundleFormat = format
        self.shard_size = shard_size
        self.text = text
        self.compression: Compression = compression

    def open(self, shard: int) -> ShardWriter:
        """The writer of shard number ``shard``; nothing is written before its first email."""
        if self.format == "jsonl":
            return JsonlShardWriter(self, shard)
        return ShardWriter(self, shard)


class ShardWriter:
    """Collects one shard's emails and writes the shard when closed (Parquet: one row
    group); :class:`JsonlShardWriter` writes each email's line at once instead."""

    def __init__(self, files: BundleFiles, shard: int) -> None:
        self.files = files
        self.path = shard_path(files.format, shard, files.compression)
        self.rows: list[dict[str, Any]] = []
        self.count = 0  # emails in the shard

    def write(self, item: Rendered) -> bytes:
        """Add one recipient's email to the shard; its manifest line."""
        html = item.html.encode("utf-8")
        html_sha256 = hashlib.sha256(html).hexdigest()
        text = item.text if self.files.text else None
        self.add(
            {
                "id": item.id,
                "email": item.email,
                "subject": item.subject,
                "preheader": item.preheader,
                "html": item.html,
                "text": text,
                "segments": list(item.segments),
                "variants": dict(item.variants),
                "sha256": html_sha256,
            }
        )
        entry = manifest_head(item)
        entry |= {
            "shard": self.path,
            "shard_row": self.count - 1,
            "html_bytes": len(html),
            "html_sha256": html_sha256,
        }
        if text is not None:
            data = text.encode("utf-8")
            entry["text_bytes"], entry["text_sha256"] = len(data), hashlib.sha256(data).hexdigest()
        entry["warnings"] = list(item.warnings)
        return dumps_line(entry)

    def add(self, row: dict[str, Any]) -> None:
        """Keep one email's row until the shard is closed."""
        self.rows.append(row)
        self.count += 1

    def close(self) -> None:
        """Write the shard (when it holds an email)."""
        if not self.rows:
            return
        path = f"{self.files.root}/{self.path}"
        try:
            _make_folder(self.files.root)
            _write_parquet(path, self.rows)
        except OSError as exc:
            raise write_failed(exc, path) from None
        self.rows = []


class JsonlShardWriter(ShardWriter):
    """Writes a JSONL shard a line at a time (through zstd when compressed): only the
    current email is in memory. The file is created with the shard's first email."""

    def __init__(self, files: BundleFiles, shard: int) -> None:
        super().__init__(files, shard)
        self._file: IO[bytes] | None = None
        self._stream: IO[bytes] | None = None  # the compressor over the file, or the file

    def add(self, row: dict[str, Any]) -> None:
        """Write one email's line to the shard."""
        try:
            if self._stream is None:
                self._open()
            assert self._stream is not None
            self._stream.write(dumps_line(row))
        except OSError as exc:
            raise write_failed(exc, f"{self.files.root}/{self.path}") from None
        self.count += 1

    def _open(self) -> None:
        _make_folder(self.files.root)
        self._file = self._stream = open(f"{self.files.root}/{self.path}", "wb")  # noqa: SIM115
        if self.files.compression == "zstd":
            import zstandard  # here: a build without compression does not load it

            compressor = zstandard.ZstdCompressor(
                level=ZSTD_LEVEL, write_content_size=False, write_checksum=False, threads=0
            )
            self._stream = compressor.stream_writer(self._file, closefd=False)

    def close(self) -> None:
        """Finish the shard's file (and its zstd frame)."""
        try:
            if self._stream is not None and self._stream is not self._file:
                self._stream.close()  # ends the frame; the file stays open (closefd=False)
            if self._file is not None:
                self._file.close()
        except OSError as exc:
            raise write_failed(exc, f"{self.files.root}/{self.path}") from None
        self._file = self._stream = None


def _make_folder(root: str) -> None:
    os.makedirs(f"{root}/{FOLDER}", exist_ok=True)  # processes may race


def _write_parquet(path: str, rows: list[dict[str, Any]]) -> None:
    """One row group; the file's metadata holds the schema and the writer's version, no
    time, so the same rows give the same bytes."""
    import pyarrow as pa  # here: a build in the other formats does not load it
    import pyarrow.parquet as pq

    string, large = pa.string(), pa.large_string()  # large: a shard may pass 2 GB of HTML
    types = {"html": large, "text": large, "segments": pa.list_(string)}
    types["variants"] = pa.map_(string, string)
    schema = pa.schema([pa.field(n, types.get(n, string), nullable=n == "text") for n in COLUMNS])
    columns: dict[str, Any] = {name: [row[name] for row in rows] for name in COLUMNS}
    columns["variants"] = [list(row["variants"].items()) for row in rows]
    for name in ("html", "text"):
        columns[name] = _large_strings(pa, columns[name])
    table = pa.Table.from_pydict(columns, schema=schema)
    # a dictionary only where values repeat: building one for each email's HTML costs memory
    short = ["subject", "preheader"]
    pq.write_table(table, path, row_group_size=len(rows), compression="zstd", use_dictionary=short)


def _large_strings(pa: Any, values: list[str | None]) -> Any:
    """A large_string array built in one growing buffer: pyarrow's own conversion of long
    non-ASCII str values took a quarter more peak memory (a UTF-8 copy cached in each)."""
    if any(value is None for value in values):  # no text part: the column is null
        return pa.nulls(len(values), pa.large_string())
    data = bytearray()
    offsets = array("q", [0])
    for value in values:
        data += value.encode("utf-8")  # type: ignore[union-attr]
        offsets.append(len(data))
    return pa.LargeStringArray.from_buffers(len(values), pa.py_buffer(offsets), pa.py_buffer(data))
