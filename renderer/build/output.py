"""Writing a build: rendered files, manifest, errors and summary, atomically.

A build writes into a staging folder beside the output folder and swaps it in
when everything is written, so a crash never leaves a half-written build where
the last good one was. The output folder is only ever replaced when it is empty
or holds an earlier mailsmith build and nothing else (see :mod:`renderer.build.folder`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from contextlib import suppress
from pathlib import Path
from typing import IO, Any

import orjson

from renderer.build.folder import MARKER as MARKER  # where scripts and tests found it first
from renderer.build.folder import (
    OWNER,
    FolderLock,
    ReplaceableFolder,
    remove_stale,
    stale_staging,
)
from renderer.build.journal import (
    BuildJournal,
    Checkpoint,
    Checkpointer,
    Resumed,
    resume_staging,
)
from renderer.runtime import Rendered
from segments.errors import ConfigError, OutputError
from segments.profiles.read import Rejection


def write_failed(exc: OSError, path: str | os.PathLike[str] | None) -> OutputError:
    """An OS error met while writing a build, as an error that says what to do.

    Whatever the cause, the build's staging folder is removed and the previous
    build (if any) is left as it was.
    """
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        hint = (
            "the disk (or quota) is full: free some space or choose another --out (until "
            "the new build is complete, the previous one stays beside it)"
        )
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "mailsmith may not write there: choose another --out"
    else:
        hint = "fix the cause and run the build again"
    return OutputError(
        f"cannot write the build: {reason}; nothing was written, the previous build "
        "(if any) is unchanged",
        file=str(path or exc.filename or "") or None,
        hint=hint,
    )


def dumps(value: Any) -> str:
    """Deterministic compact JSON (insertion order, UTF-8, no trailing spaces)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


_PASSTHROUGH = (
    orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def dumps_line(value: dict[str, Any]) -> bytes:
    """:func:`dumps` plus a newline, as UTF-8 bytes: ten times faster, for manifest lines.

    For str, int, bool, None, lists and str-keyed dicts (what a manifest line
    holds) orjson writes the same bytes as ``json.dumps(ensure_ascii=False,
    separators=(",", ":"))``; datetimes, subclasses and other objects go through
    ``default=str`` as in :func:`dumps`. Anything orjson refuses (a non-str key,
    an int past 64 bits) is written by :func:`dumps`.
    """
    try:
        return orjson.dumps(value, default=str, option=_PASSTHROUGH | orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        return (dumps(value) + "\n").encode("utf-8")


def iter_manifest(path: Path) -> Iterator[dict[str, Any]]:
    """The entries of a build's manifest.jsonl; a broken line names file and line."""
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    entry = json.loads(line)
                    str(entry["id"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise ConfigError(
                        "not a mailsmith manifest line", file=str(path), line=number
                    ) from None
                yield entry
    except OSError as exc:
        raise ConfigError(f"cannot read manifest: {exc.strerror}", file=str(path)) from None


def holdout_line(
    row: int,
    recipient_id: str,
    email: str,
    segments: Iterable[str],
    variants: Mapping[str, str | None],
) -> bytes:
    """The manifest line of a held-out recipient (no email, no files)."""
    entry = {
        "id": recipient_id,
        "row": row,
        "email": email,
        "segments": list(segments),
        "variants": dict(variants),
        "holdout": True,
    }
    return dumps_line(entry)


def manifest_head(item: Rendered) -> dict[str, Any]:
    """The keys every format's manifest line starts with, in their order (the manifests
    of the formats differ only in the keys that say where the email went)."""
    return {
        "id": item.id,
        "row": item.row,
        "email": item.email,
        "key": item.key,
        "segments": list(item.segments),
        "variants": dict(item.variants),
        "holdout": False,
        "subject": item.subject,
        "preheader": item.preheader,
        "layout": item.layout,
    }


class EmailFiles:
    """Writes rendered emails' files under a build's staging folder.

    Picklable and independent of the manifest: worker processes write their
    recipients' files themselves and hand back only the manifest lines, which the
    build appends in input order. Paths come from the recipient key (a hash), so
    no two recipients share a file, whichever process writes it.
    """

    def __init__(self, root: str | os.PathLike[str], *, text: bool = True) -> None:
        self.root = str(root)
        self.text = text
        self._dirs: set[str] = set()  # shard folders made (by this process)

    shard_size: int | None = None  # a chunk is one unit: its emails go to many files

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "text": self.text, "_dirs": set()}

    def open(self, shard: int) -> EmailFiles:
        """The writer of one part of the input: these same files (parts share no file)."""
        return self

    def close(self) -> None:
        """Nothing to finish: each email's files are written by :meth:`write`."""

    def write(self, item: Rendered) -> bytes:
        """Write one recipient's HTML (and text) file; its manifest line."""
        key = item.key
        shard = key[:2]
        html_path = f"html/{shard}/{key}.html"
        html_bytes, html_sha256 = self._file(html_path, item.html)
        entry = manifest_head(item)
        entry |= {
            "html": html_path,
            "html_bytes": html_bytes,
            "html_sha256": html_sha256,
        }
        if self.text:
            text_path = f"text/{shard}/{key}.txt"
            entry["text"] = text_path
            entry["text_bytes"], entry["text_sha256"] = self._file(text_path, item.text)
        entry["warnings"] = list(item.warnings)
        return dumps_line(entry)

    def _file(self, relative: str, content: str) -> tuple[int, str]:
        """Write one file under the root: (bytes, sha256 hex)."""
        return self._bytes(relative, content.encode("utf-8"))

    def _bytes(self, relative: str, data: bytes) -> tuple[int, str]:
        """:meth:`_file` for content already encoded."""
        folder = relative.rpartition("/")[0]
        path = f"{self.root}/{relative}"
        try:  # plain os calls: this runs twice per recipient
            if folder not in self._dirs:
                os.makedirs(f"{self.root}/{folder}", exist_ok=True)  # safe when processes race
                self._dirs.add(folder)
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                written = os.write(handle, data)
                while written < len(data):  # a short write (a signal, a pipe-like file system)
                    written += os.write(handle, memoryview(data)[written:])
            finally:
                os.close(handle)
        except OSError as exc:
            raise write_failed(exc, path) from None
        return len(data), hashlib.sha256(data).hexdigest()


class OutputWriter:
    """Streams one build's files into a staging folder; ``commit`` swaps it in.

    The output folder is checked first (:class:`ReplaceableFolder`: it must be absent,
    empty, or an earlier build with nothing added to it unless ``force``) and locked
    for this build. Whatever stops the build, :meth:`abort` removes the staging folder
    and releases the lock.

    With a ``fingerprint`` the build keeps a journal (:mod:`renderer.build.journal`):
    :meth:`commit_chunk` records each chunk. With ``resume`` too, the staging folder of a
    killed build of the same fingerprint is taken over (:attr:`resumed`) instead of
    starting an empty one. Staging folders of killed builds not taken over are removed
    (:attr:`discarded`).
    """

    def __init__(
        self,
        out: Path,
        *,
        text: bool = True,
        force: bool = False,
        fingerprint: Mapping[str, Any] | None = None,
        resume: bool = False,
    ) -> None:
        self.out = out.resolve()
        self._lock = FolderLock(self.out)  # one build at a time per output folder
        self.staging = self.out.with_name(f".{self.out.name}.partial-{OWNER}")
        self._previous = self.out.with_name(f".{self.out.name}.old-{OWNER}")
        self._manifest: IO[bytes] | None = None
        self._errors: IO[str] | None = None
        self._journal: Checkpointer | None = None
        self.resumed: Resumed | None = None
        self.discarded: list[Path] = []
        try:
            self._folder = ReplaceableFolder(self.out, force=force)
            if resume and fingerprint is not None:
                self.resumed = resume_staging(stale_staging(self.out), self.staging, fingerprint)
            self.discarded = remove_stale(self.out)
            if (self.out / MARKER).exists():  # else it may be the only copy of a build
                shutil.rmtree(self._previous, ignore_errors=True)
            if self.resumed is not None:
                self._journal = Checkpointer(self.resumed.journal, self.staging)
            else:
                self._start_staging(fingerprint)
            self.files = EmailFiles(self.staging, text=text)
            # appended to: a resumed build's are cut back to its last checkpoint
            self._manifest = (self.staging / "manifest.jsonl").open("ab")
            self._errors = (self.staging / "errors.jsonl").open("a", encoding="utf-8", newline="\n")
        except OSError as exc:
            self.abort()
            raise write_failed(exc, exc.filename or self.staging) from None
        except BaseException:  # an error, or a signal while the folder was being set up
            self.abort()
            raise

    def _start_staging(self, fingerprint: Mapping[str, Any] | None) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)  # this process's, from before
        self.staging.mkdir()
        (self.staging / MARKER).write_text("mailsmith build output\n", encoding="utf-8")
        for name in ("manifest.jsonl", "errors.jsonl"):
            (self.staging / name).touch()
        if fingerprint is not None:
            journal = BuildJournal.create(self.staging, fingerprint)
            self._journal = Checkpointer(journal, self.staging)

    def write_lines(self, lines: Iterable[bytes], rejected: Iterable[Rejection]) -> None:
        """Manifest lines (their files already written by :class:`EmailFiles`), then
        rejections."""
        assert self._manifest is not None and self._errors is not None
        try:
            for line in lines:
                self._manifest.write(line)
        except OSError as exc:
            raise write_failed(exc, self.staging / "manifest.jsonl") from None
        try:
            for rejection in rejected:
                self._errors.write(dumps(rejection.to_dict()) + "\n")
        except OSError as exc:
            raise write_failed(exc, self.staging / "errors.jsonl") from None

    def commit_chunk(self, chunks: int, parts: int, state: dict[str, Any]) -> None:
        """Record that the first ``chunks`` chunks (``parts`` parts) are written, with the
        build's counts: once their lines and emails are on disk (:class:`Checkpointer`).
        Nothing to do without a journal."""
        if self._journal is None:
            return
        assert self._manifest is not None and self._errors is not None
        try:
            self._manifest.flush()
            self._errors.flush()
            manifest, errors = (
                os.fstat(h.fileno()).st_size for h in (self._manifest, self._errors)
            )
            self._journal.submit(Checkpoint(chunks, manifest, errors, parts, state))
        except OSError as exc:
            raise write_failed(exc, self._journal.journal.path) from None

    def commit(self, summary: dict[str, Any]) -> Path:
        """Write the summary and swap the staging folder into place.

        The output folder is checked again first: a file added to it while this build
        ran would go with the previous build.
        """
        for handle, name in ((self._manifest, "manifest.jsonl"), (self._errors, "errors.jsonl")):
            try:
                if handle is not None:
                    handle.close()  # flushes: on a full disk, this is where it fails
            except OSError as exc:
                raise write_failed(exc, self.staging / name) from None
        text = json.dumps(summary, ensure_ascii=False, indent=2, default=str) + "\n"
        try:
            (self.staging / "summary.json").write_text(text, encoding="utf-8")
        except OSError as exc:
            raise write_failed(exc, self.staging / "summary.json") from None
        self._folder.check_again()
        if self._journal is not None:  # not part of the build
            self._journal.stop()
            self._journal.journal.remove()
        if self.out.exists():
            os.replace(self.out, self._previous)
        os.replace(self.staging, self.out)
        # the new build is in place; what cannot be deleted now goes at the next build
        shutil.rmtree(self._previous, ignore_errors=True)
        with suppress(OSError):
            self._lock.release()
        return self.out

    def abort(self) -> None:
        """Drop the staging folder; the previous build (if any) stays untouched.

        Each step runs whatever the one before it met (on a full disk, closing the
        manifest fails too: its buffered lines cannot be written), and none raises an
        OS error, which would hide the error that stopped the build. A staging folder
        that cannot be removed now is removed by the next build into the same folder.
        """
        for handle in (self._manifest, self._errors):
            with suppress(OSError):
                if handle is not None:
                    handle.close()
        with suppress(OSError):
            if self._journal is not None:
                self._journal.stop()
        shutil.rmtree(self.staging, ignore_errors=True)
        with suppress(OSError):
            if self._previous.exists() and not self.out.exists():  # failed between renames
                os.replace(self._previous, self.out)
        with suppress(OSError):
            self._lock.release()
