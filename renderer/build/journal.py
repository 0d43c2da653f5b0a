"""A build's journal: the chunks it has committed, so that a killed build can resume.

A build killed outright (SIGKILL, the out-of-memory killer, a power cut) runs no
cleanup: it leaves its staging folder ``.<out>.partial-<host>-<pid>`` beside the
output folder, and the lock file, whose lock the kernel released with the process.
The next build into the same folder removes that staging folder
(:func:`renderer.build.folder.remove_stale`) and starts again; ``build --resume``
instead takes it over (:func:`resume_staging`) and renders only what was not committed.

The journal (:data:`JOURNAL`, in the staging folder) is a file of lines
``<crc32 hex> <json>``. The first holds the build's fingerprint
(:mod:`renderer.build.fingerprint`); each further one is a :class:`Checkpoint`,
appended once a chunk's manifest lines, rejections and emails are on disk (files
flushed, the file system synced), then fsynced itself. A kill leaves at most a torn
last line: it fails its checksum and is ignored, and so is the chunk it would have
committed. Resuming cuts the manifest and errors files back to the last checkpoint's
sizes and removes the shards numbered after it; the emails of a ``files`` build that
a later chunk wrote are written again, with the same bytes, when that chunk is rendered
again. The journal goes before the build is swapped into place.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import sys
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from renderer.build.fingerprint import fingerprint_changes
from segments.errors import ConfigError

JOURNAL = ".mailsmith-journal"
"""The journal's file name in a staging folder (never part of a finished build)."""


@dataclass(frozen=True)
class Checkpoint:
    """Where a build stood after its last committed chunk."""

    chunks: int = 0  # chunks of the input committed, from the first
    manifest: int = 0  # bytes of manifest.jsonl they wrote
    errors: int = 0  # bytes of errors.jsonl
    parts: int = 0  # parts of the input numbered (a bundle's shards numbered below this)
    state: dict[str, Any] = field(default_factory=dict)  # the build's counts (BuildState)


@dataclass
class JournalContents:
    """A journal as read back: the fingerprint and the last intact checkpoint."""

    fingerprint: dict[str, Any] | None
    checkpoint: Checkpoint
    intact: int  # bytes of intact lines; what follows is a torn or broken tail


class BuildJournal:
    """Appends checkpoints to a staging folder's journal, each durable when it returns."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / JOURNAL
        self._handle: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    @classmethod
    def create(cls, folder: Path, fingerprint: Mapping[str, Any]) -> BuildJournal:
        """A new journal that starts with ``fingerprint``."""
        journal = cls(folder)
        journal._append(dict(fingerprint))
        _fsync_folder(folder)  # the journal's name, too, survives a power cut
        return journal

    def commit(self, checkpoint: Checkpoint) -> None:
        """Record a chunk as committed. The caller has made its files durable
        (:func:`sync_folder`): a checkpoint on disk never names data that is not."""
        self._append({name: getattr(checkpoint, name) for name in checkpoint.__dataclass_fields__})

    def _append(self, record: dict[str, Any]) -> None:
        assert self._handle is not None
        data = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
        line = f"{zlib.crc32(data.encode('utf-8')):08x} {data}\n".encode()
        written = os.write(self._handle, line)  # one write: a kill tears the last line at most
        while written < len(line):
            written += os.write(self._handle, line[written:])
        os.fsync(self._handle)

    def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            os.close(handle)

    def remove(self) -> None:
        """Close and delete the journal: the build is complete."""
        self.close()
        self.path.unlink(missing_ok=True)


def read_journal(folder: Path) -> JournalContents:
    """The fingerprint and last checkpoint of the journal in ``folder``; lines from the
    first torn or broken one on are left out (none of them was acknowledged)."""
    records: list[dict[str, Any]] = []
    intact = 0
    try:
        data = (folder / JOURNAL).read_bytes()
    except FileNotFoundError:
        return JournalContents(None, Checkpoint(), 0)
    for line in data.splitlines(keepends=True):
        record = _parse(line)
        if record is None:
            break
        records.append(record)
        intact += len(line)
    fingerprint = records[0] if records else None
    checkpoint = Checkpoint(**records[-1]) if len(records) > 1 else Checkpoint()
    return JournalContents(fingerprint, checkpoint, intact)


def _parse(line: bytes) -> dict[str, Any] | None:
    if not line.endswith(b"\n"):
        return None
    crc, _, data = line[:-1].partition(b" ")
    try:
        if int(crc, 16) != zlib.crc32(data):
            return None
        record = json.loads(data)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


@dataclass
class Resumed:
    """A killed build taken over by ``build --resume``."""

    checkpoint: Checkpoint
    fingerprint: dict[str, Any]
    journal: BuildJournal
    source: str  # the staging folder's name before it was taken over


def resume_staging(
    candidates: list[Path], staging: Path, fingerprint: Mapping[str, Any]
) -> Resumed | None:
    """Take over the newest of ``candidates`` (staging folders of killed builds) that has
    a journal: renamed to ``staging``, cut back to its last checkpoint.

    None when there is none. A build of other inputs or options
    (:func:`~renderer.build.fingerprint.fingerprint_changes`) is refused with
    :class:`ConfigError` and left where it is.
    """
    journaled = [c for c in candidates if (c / JOURNAL).is_file()]
    if not journaled:
        return None
    source = max(journaled, key=lambda c: (c / JOURNAL).stat().st_mtime_ns)
    contents = read_journal(source)
    if contents.fingerprint is None:  # killed while writing its first line
        return None
    differences = fingerprint_changes(contents.fingerprint, fingerprint)
    if differences:
        raise ConfigError(
            "cannot resume the killed build: " + "; ".join(differences),
            file=str(source),
            hint="a resumed build must read the same inputs with the same options; build "
            "without --resume to start again (the killed build's partial output is removed)",
        )
    shutil.rmtree(staging, ignore_errors=True)
    os.replace(source, staging)
    checkpoint = contents.checkpoint
    os.truncate(staging / JOURNAL, contents.intact)
    for name, size in (
        ("manifest.jsonl", checkpoint.manifest),
        ("errors.jsonl", checkpoint.errors),
    ):
        with open(staging / name, "ab") as handle:  # created when the kill came before it
            handle.truncate(size)
    return Resumed(checkpoint, contents.fingerprint, BuildJournal(staging), source.name)


class Checkpointer:
    """Commits checkpoints in a thread of its own, so the build renders on meanwhile.

    Making a chunk durable means waiting for the disk to take its emails (a second or
    more for a chunk of 5,000 on a fast disk): in this thread that wait overlaps the next
    chunks' rendering, as the kernel's own write-back would. The files of a checkpoint
    are written (flushed to the kernel) before it is handed over, and the whole file
    system is synced before it is recorded, so it never names data that is not on disk.
    A checkpoint handed over while the one before is being synced replaces any that is
    waiting: a resume then redoes a chunk or two more, never one too few.
    """

    def __init__(self, journal: BuildJournal, folder: Path) -> None:
        self.journal = journal
        self.folder = folder
        self._changed = threading.Condition()
        self._waiting: Checkpoint | None = None
        self._stopping = False
        self._error: OSError | None = None
        self._thread: threading.Thread | None = None

    def submit(self, checkpoint: Checkpoint) -> None:
        """Commit ``checkpoint`` soon; raises the error that stopped an earlier one."""
        with self._changed:
            if self._error is not None:
                raise self._error
            self._waiting = checkpoint
            self._changed.notify()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="checkpoints", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._changed:
                while self._waiting is None and not self._stopping:
                    self._changed.wait()
                checkpoint, self._waiting = self._waiting, None
            if self._stopping or checkpoint is None:
                return
            try:
                sync_folder(self.folder)
                self.journal.commit(checkpoint)
            except OSError as exc:
                with self._changed:
                    self._error = exc
                return

    def stop(self) -> None:
        """Commit nothing more (the build is complete, or given up): once this returns,
        the journal is not written again. Waits for a sync under way."""
        with self._changed:
            self._stopping = True
            self._changed.notify()
        if self._thread is not None:
            self._thread.join()
        self.journal.close()


_NUMBERED = re.compile(r".*-(\d+)\..*")


def remove_parts_from(folder: Path, first: int) -> None:
    """Remove the files in ``folder`` named ``<name>-<number>.<ext>`` with a number from
    ``first`` on: a bundle's shards written after the last checkpoint."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return
    for name in names:
        match = _NUMBERED.fullmatch(name)
        if match is not None and int(match[1]) >= first:
            os.unlink(folder / name)


def sync_folder(folder: Path) -> None:
    """Write what was written under ``folder`` to the disk, and wait for it.

    A chunk's emails are written by worker processes, a file or two per recipient: one
    ``syncfs`` of the folder's file system makes them all durable at once, where an
    fsync per file would cost a disk flush each. Elsewhere than Linux, ``sync``.
    """
    handle = os.open(folder, os.O_RDONLY)
    try:
        if _SYNCFS is None:
            os.sync()
        elif _SYNCFS(handle) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error), str(folder))
    finally:
        os.close(handle)


def _fsync_folder(folder: Path) -> None:
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    return function


_SYNCFS = _syncfs()
