"""The output folder a build replaces: whose it is, what is in it, who is writing it.

A build swaps its staging folder in for the output folder at the end, and the old
folder goes with everything in it. So a build replaces only a folder that is absent,
empty, or holds an earlier mailsmith build (:data:`MARKER`) and nothing else: the
build's own files (:data:`BUILD_FILES`) and the emails its manifest lists. Anything
else (notes, a report, an edited email) was put there by someone, and the build
refuses unless forced (``--force``: those files are deleted with the old build). A
folder that holds no build is never replaced, forced or not. The folder is checked
when the build starts, so a refusal costs nothing, and again just before the swap, in
case someone added a file meanwhile (:class:`ReplaceableFolder`).

One build at a time writes a given folder (:class:`FolderLock`), and a build clears
what builds killed outright left beside the folder (:func:`remove_stale`), unless it
resumes one of them (:func:`stale_staging`, :mod:`renderer.build.journal`).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import socket
from collections.abc import Iterable
from pathlib import Path

import orjson

from segments.audience.prepass import DISTRIBUTIONS_FILE, EVENTS_ERRORS_FILE
from segments.errors import OutputError

MARKER = ".mailsmith-build"
"""The file that says a folder holds a mailsmith build."""

BUILD_FILES = frozenset(
    {
        MARKER,
        "manifest.jsonl",
        "errors.jsonl",
        "summary.json",
        EVENTS_ERRORS_FILE,
        DISTRIBUTIONS_FILE,
    }
)
"""A build's own files, besides the emails its manifest lists."""

SHOWN = 5  # foreign files named in a refusal; the rest are counted

OWNER = f"{re.sub(r'[^A-Za-z0-9.-]', '_', socket.gethostname())}-{os.getpid()}"
"""Names this process's staging folders: host and process id (an output folder may
sit on a file system that several machines share)."""


class ReplaceableFolder:
    """An output folder a build may replace: checked now, and again before the swap.

    :meth:`check_again` is cheap: it compares the modification times of the folders
    the first check listed (adding or removing a file changes its folder's), and only
    when one differs lists the folder again.
    """

    def __init__(self, out: Path, *, force: bool = False) -> None:
        self.out = out
        self.force = force
        self._seen: dict[str, int | None] = {}  # folder under out -> its mtime when listed
        self.check()

    def check(self) -> None:
        """Raise :class:`OutputError` unless the folder is absent, empty, or an earlier
        build with nothing added to it (anything added is allowed when forced)."""
        self._seen = {"": _mtime(self.out)}
        if self._seen[""] is None:
            return
        if not self.out.is_dir():
            raise OutputError("output path exists and is not a folder", file=str(self.out))
        if not (self.out / MARKER).exists():
            if any(self.out.iterdir()):
                raise OutputError(
                    "output folder is not empty and does not hold a mailsmith build",
                    file=str(self.out),
                    hint="choose another --out or empty the folder; mailsmith never "
                    "overwrites other files",
                )
            return
        if not self.force:
            foreign = self._foreign()
            if foreign:
                raise _foreign_error(self.out, foreign)

    def check_again(self) -> None:
        """:meth:`check` once more if anything was added to or removed from the folder."""
        root = str(self.out)
        for folder, seen in self._seen.items():
            if _mtime(f"{root}/{folder}") != seen:
                self.check()
                return

    def _foreign(self) -> list[str]:
        """Files and folders under ``out`` the previous build did not write, sorted."""
        known = _build_files(self.out)  # folder ("" for out) -> names of files in it
        folders = set(known) | {parent for name in known for parent in _parents(name)}
        root = str(self.out)
        foreign = []
        pending = [""]
        while pending:
            relative = pending.pop()
            prefix = f"{relative}/" if relative else ""
            path = f"{root}/{relative}"
            self._seen[relative] = _mtime(path)  # before listing: what comes after shows
            try:
                names = set(os.listdir(path))
            except NotADirectoryError:  # a file where the build had a folder
                foreign.append(relative)
                continue
            except OSError as exc:
                raise OutputError(
                    f"cannot read the output folder: {exc.strerror}",
                    file=path,
                    hint="mailsmith replaces a folder only when it can see all of it",
                ) from None
            for name in names - known.get(relative, set()):  # most names are known
                if prefix + name in folders:
                    pending.append(prefix + name)
                else:
                    is_folder = os.path.isdir(f"{path}/{name}")
                    foreign.append(prefix + name + ("/" if is_folder else ""))
        return sorted(foreign)


def _build_files(out: Path) -> dict[str, set[str]]:
    """The files the build in ``out`` wrote, by folder ("" for ``out`` itself): its own,
    and the emails its manifest lists. Lines that are not JSON objects are skipped:
    their emails count as foreign."""
    files: dict[str, set[str]] = {"": set(BUILD_FILES)}
    manifest = out / "manifest.jsonl"
    try:
        with manifest.open("rb") as lines:
            for line in lines:
                for path in _listed(line):
                    folder, _, name = path.rpartition("/")
                    files.setdefault(folder, set()).add(name)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise OutputError(
            f"cannot read the previous build's manifest: {exc.strerror}", file=str(manifest)
        ) from None
    return files


def _listed(line: bytes) -> list[str]:
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(entry, dict):
        return []
    keys = ("html", "text", "shard", "eml")
    return [path for key in keys if isinstance(path := entry.get(key), str)]


def _parents(name: str) -> Iterable[str]:
    while "/" in name:
        name = name.rpartition("/")[0]
        yield name


def _mtime(path: str | Path) -> int | None:
    try:
        return os.stat(path, follow_symlinks=False).st_mtime_ns
    except FileNotFoundError:
        return None


def _foreign_error(out: Path, foreign: list[str]) -> OutputError:
    count = len(foreign)
    shown = ", ".join(foreign[:SHOWN])
    more = f" and {count - SHOWN} more" if count > SHOWN else ""
    some = "1 file that is" if count == 1 else f"{count} files that are"
    return OutputError(
        f"the output folder holds {some} not part of the previous build: {shown}{more}",
        file=str(out),
        hint="move them elsewhere, or build with --force to replace the folder anyway "
        "(they are then deleted with the previous build)",
    )


class FolderLock:
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
        """Remove the lock file and let go of the lock (closing it releases it)."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            try:
                os.unlink(self.path)
            finally:
                os.close(handle)


def remove_stale(out: Path) -> list[Path]:
    """Staging folders of builds on this host whose process is gone (killed outright:
    SIGKILL, out of memory, power loss): the staging folders removed. A previous build
    set aside by such a build (``.old-``), or by a build that could not delete it, goes
    only when ``out`` holds a build again."""
    removed = []
    for folder, kind in _dead_builds(out):
        if kind == "old" and not (out / MARKER).exists():
            continue  # the only copy of the previous build: leave it to the user
        shutil.rmtree(folder, ignore_errors=True)
        if kind == "partial":
            removed.append(folder)
    return removed


def stale_staging(out: Path) -> list[Path]:
    """Staging folders of builds into ``out`` on this host whose process is gone."""
    return [folder for folder, kind in _dead_builds(out) if kind == "partial"]


def _dead_builds(out: Path) -> list[tuple[Path, str]]:
    """The folders (and their kind, partial or old) that builds into ``out`` on this
    host left beside it, of processes that are gone."""
    host = OWNER.rsplit("-", 1)[0]
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(partial|old)-{re.escape(host)}-(\d+)")
    found = []
    for folder in sorted(out.parent.glob(f".{out.name}.*-{host}-*")):
        match = pattern.fullmatch(folder.name)
        if match is None or _alive(int(match[2])) or not (folder / MARKER).exists():
            continue
        found.append((folder, match[1]))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
