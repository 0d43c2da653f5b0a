"""The files a build reads, watched for changes while it reads them.

A build reads its profile file in chunks, and when there is a pre-pass it reads it
twice (and the events file once). A file rewritten meanwhile (an export still
running, a sync client, a colleague's script) would give a build that mixes rows
of two versions without a word. So each file's size, modification time and inode
are taken before the build reads it and compared after the last read: a change
fails the build, which leaves the previous one as it was. A Parquet dataset (a
folder, a glob pattern) is stamped file by file, so a file added is a change too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from segments.errors import ProfileDataError
from segments.profiles.read import parquet_files

Stamp = tuple[int, int, int] | None  # size, mtime (ns), inode; None: no such file


class InputFiles:
    """Stamps of a build's input files (``label`` -> path), taken on creation."""

    def __init__(self, files: Mapping[str, Path]) -> None:
        self._stamps = {label: (path, _stamp(path)) for label, path in files.items()}

    def check(self, *labels: str) -> None:
        """Raise :class:`ProfileDataError` if one of the files (``labels``, or all) changed."""
        for label in labels or tuple(self._stamps):
            path, stamp = self._stamps[label]
            if _stamp(path) != stamp:
                raise ProfileDataError(
                    f"the {label} changed while the build read it; run the build again",
                    file=str(path),
                    hint="rows from before and after the change would mix: build again once "
                    "the file is complete (write a new file, then rename it into place)",
                )


def _stamp(path: Path) -> Stamp | tuple[tuple[str, Stamp], ...]:
    """The file's stamp; a Parquet dataset's (a folder, a glob pattern): each file's."""
    if not path.is_file() and (files := parquet_files(path)):
        return tuple((str(file), _file_stamp(file)) for file in files)
    return _file_stamp(path)


def _file_stamp(path: Path) -> Stamp:
    try:
        status = os.stat(path)
    except OSError:  # missing or unreadable: the reader reports it
        return None
    return status.st_size, status.st_mtime_ns, status.st_ino
