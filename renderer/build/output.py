"""Writing a build: rendered files, manifest, errors and summary, atomically.

A build writes into a staging folder beside the output folder and swaps it in
when everything is written, so a crash never leaves a half-written build where
the last good one was. The output folder is only ever replaced when it is empty
or holds an earlier mailsmith build.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from renderer.runtime import Rendered
from segments.errors import ConfigError, OutputError
from segments.profiles.read import Rejection

MARKER = ".mailsmith-build"


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


class EmailFiles:
    """Writes rendered emails' files under a build's staging folder.

    Picklable and independent of the manifest: worker processes write their
    recipients' files themselves and hand back only the manifest lines, which the
    build appends in input order. Paths come from the recipient key (a hash), so
    no two recipients share a file, whichever process writes it.
    """

    def __init__(self, root: Path, *, text: bool = True) -> None:
        self.root = str(root)
        self.text = text
        self._dirs: dict[str, str] = {}  # shard folder -> its path under the root

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "text": self.text, "_dirs": {}}

    def write(self, item: Rendered) -> bytes:
        """Write one recipient's HTML (and text) file; its manifest line."""
        key = item.key
        shard = key[:2]
        html_path = f"html/{shard}/{key}.html"
        html_bytes, html_sha256 = self._file(html_path, item.html)
        entry: dict[str, Any] = {
            "id": item.id,
            "row": item.row,
            "email": item.email,
            "key": key,
            "segments": list(item.segments),
            "variants": dict(item.variants),
            "holdout": False,
            "subject": item.subject,
            "preheader": item.preheader,
            "layout": item.layout,
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
        data = content.encode("utf-8")
        folder, _, name = relative.rpartition("/")
        directory = self._dirs.get(folder)
        if directory is None:
            directory = f"{self.root}/{folder}"
            os.makedirs(directory, exist_ok=True)  # safe when processes race for it
            self._dirs[folder] = directory
        path = f"{directory}/{name}"
        try:  # plain os calls: this runs twice per recipient
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
    """Streams one build's files into a staging folder; ``commit`` swaps it in."""

    def __init__(self, out: Path, *, text: bool = True) -> None:
        self.out = out.resolve()
        _check_replaceable(self.out)
        self._lock = _FolderLock(self.out)  # one build at a time per output folder
        self.staging = self.out.with_name(f".{self.out.name}.partial-{_OWNER}")
        self._previous = self.out.with_name(f".{self.out.name}.old-{_OWNER}")
        try:
            _remove_stale(self.out)
            if self.staging.exists():
                shutil.rmtree(self.staging)
            self.staging.mkdir()
            (self.staging / MARKER).write_text("mailsmith build output\n", encoding="utf-8")
            self.files = EmailFiles(self.staging, text=text)
            self._manifest: IO[bytes] = (self.staging / "manifest.jsonl").open("wb")
            self._errors: IO[str] = (self.staging / "errors.jsonl").open(
                "w", encoding="utf-8", newline="\n"
            )
        except BaseException:  # an error, or a signal while the folder was being set up
            shutil.rmtree(self.staging, ignore_errors=True)
            self._lock.release()
            raise

    def write(self, rendered: Iterable[Rendered], rejected: Iterable[Rejection]) -> None:
        """Write a batch's emails and manifest lines, then its rejections."""
        for item in rendered:
            self._manifest.write(self.files.write(item))
        for rejection in rejected:
            self._errors.write(dumps(rejection.to_dict()) + "\n")

    def write_line(self, line: bytes) -> None:
        """A manifest line from :meth:`EmailFiles.write` (its files already written)."""
        self._manifest.write(line)

    def write_holdout(
        self,
        row: int,
        recipient_id: str,
        email: str,
        segments: Iterable[str],
        variants: dict[str, str | None],
    ) -> None:
        entry = {
            "id": recipient_id,
            "row": row,
            "email": email,
            "segments": list(segments),
            "variants": variants,
            "holdout": True,
        }
        self._manifest.write(dumps_line(entry))

    def commit(self, summary: dict[str, Any]) -> Path:
        """Write the summary and swap the staging folder into place."""
        self._manifest.close()
        self._errors.close()
        (self.staging / "summary.json").write_text(
            json.dumps(summary, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8"
        )
        if self.out.exists():
            os.replace(self.out, self._previous)
        os.replace(self.staging, self.out)
        if self._previous.exists():
            shutil.rmtree(self._previous)
        self._lock.release()
        return self.out

    def abort(self) -> None:
        """Drop the staging folder; the previous build (if any) stays untouched."""
        for handle in (self._manifest, self._errors):
            if not handle.closed:
                handle.close()
        shutil.rmtree(self.staging, ignore_errors=True)
        if self._previous.exists() and not self.out.exists():  # failed between the renames
            os.replace(self._previous, self.out)
        self._lock.release()


class _FolderLock:
    """An exclusive lock on an output folder for one build: ``.<name>.lock`` beside it.

    A second build into the same folder (two CI jobs, a script run twice) fails at
    once instead of racing the first one to the final rename. The lock file goes
    with the lock; a build that takes it checks it still holds the file at that path
    (the previous holder may have removed it in between).
    """

    def __init__(self, out: Path) -> None:
        self.path = out.with_name(f".{out.name}.lock")
        out.parent.mkdir(parents=True, exist_ok=True)
        while True:
            handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(handle)
                raise OutputError(
                    "another mailsmith build is writing this output folder",
                    file=str(out),
                    hint="wait for it to finish, or choose another --out",
                ) from None
            try:
                if os.stat(self.path).st_ino == os.fstat(handle).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(handle)  # removed by the build before us: lock the new file
        self._handle: int | None = handle

    def release(self) -> None:
        if self._handle is not None:
            os.unlink(self.path)
            os.close(self._handle)
            self._handle = None


_OWNER = f"{re.sub(r'[^A-Za-z0-9.-]', '_', socket.gethostname())}-{os.getpid()}"
"""Names this process's staging folders: host and process id (an output folder may
sit on a file system that several machines share)."""


def _remove_stale(out: Path) -> None:
    """Staging folders of builds on this host whose process is gone (killed outright:
    SIGKILL, out of memory, power loss). A previous build set aside by such a build
    (``.old-``) goes only when ``out`` holds a build again."""
    host = _OWNER.rsplit("-", 1)[0]
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(partial|old)-{re.escape(host)}-(\d+)")
    for folder in out.parent.glob(f".{out.name}.*-{host}-*"):
        match = pattern.fullmatch(folder.name)
        if match is None or _alive(int(match[2])) or not (folder / MARKER).exists():
            continue
        if match[1] == "old" and not (out / MARKER).exists():
            continue  # the only copy of the previous build: leave it to the user
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _check_replaceable(out: Path) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputError("output path exists and is not a folder", file=str(out))
    if any(out.iterdir()) and not (out / MARKER).exists():
        raise OutputError(
            "output folder is not empty and does not hold a mailsmith build",
            file=str(out),
            hint="choose another --out or empty the folder; mailsmith never overwrites other files",
        )
