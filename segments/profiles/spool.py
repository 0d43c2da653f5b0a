"""Validated profile chunks kept on disk between the audience pre-pass and the render pass.

A campaign with events, percentiles or clusters reads its profiles twice: the
pre-pass needs the whole audience before the first email renders. Parsing and
validating a chunk (reading CSV, typing every column, parsing JSON values,
checking emails and duplicates) costs several times more than reading back the
typed result, so the pre-pass writes each validated chunk here and the render
pass reads them back instead of validating again. Both passes would compute the
same chunks anyway: the render pass's validator is configured exactly like the
pre-pass's.

The file is anonymous (``tempfile.TemporaryFile``: unlinked on creation), so it
never outlives the process and no other process can open it; it holds one
chunk at a time in memory. It sits next to the output folder, on the same disk.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pandas as pd

from segments.profiles.read import Rejection


@dataclass
class ValidatedChunk:
    """Typed valid rows (indexed by row number) and the rejected rows of one chunk."""

    valid: pd.DataFrame
    rejected: list[Rejection]

    @property
    def rows(self) -> int:
        """Input rows the chunk covers."""
        return len(self.valid) + len(self.rejected)

    def up_to(self, last_row: int) -> ValidatedChunk:
        """The part of the chunk at or before input row ``last_row``."""
        return ValidatedChunk(
            self.valid[self.valid.index <= last_row],
            [r for r in self.rejected if r.row <= last_row],
        )

    def split(self, size: int) -> list[ValidatedChunk]:
        """Consecutive parts of at most ``size`` valid rows; each rejection goes with the
        part whose rows it falls between (the last part takes those after every valid row)."""
        if len(self.valid) <= size:
            return [self]
        parts = []
        rejected = sorted(self.rejected, key=lambda r: r.row)
        taken = 0
        for start in range(0, len(self.valid), size):
            valid = self.valid.iloc[start : start + size]
            last = start + size >= len(self.valid)
            bound = int(valid.index[-1])
            end = len(rejected) if last else taken
            while not last and end < len(rejected) and rejected[end].row <= bound:
                end += 1
            parts.append(ValidatedChunk(valid, rejected[taken:end]))
            taken = end
        return parts

    def row_numbers(self) -> list[int]:
        """Every input row number in the chunk, sorted."""
        return sorted([*(int(i) for i in self.valid.index), *(r.row for r in self.rejected)])


class ChunkSpool:
    """Write validated chunks once, read them back once, in order."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._file: IO[bytes] | None = None  # created by the first chunk
        self.chunks = 0
        self.complete = False  # set when a pre-pass has written every chunk

    def add(self, chunk: ValidatedChunk) -> None:
        self.add_packed(
            pickle.dumps((chunk.valid, chunk.rejected), protocol=pickle.HIGHEST_PROTOCOL)
        )

    def add_packed(self, packed: bytes) -> None:
        """Add a chunk already pickled as :meth:`add` would (by a worker process)."""
        if self._file is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._file = tempfile.TemporaryFile(dir=self.folder, prefix=".mailsmith-spool-")
        self._file.write(packed)
        self.chunks += 1

    def finish(self) -> None:
        """Every chunk of the profile source is in: the render pass may read them."""
        self.complete = True

    def __iter__(self) -> Iterator[ValidatedChunk]:
        if self._file is None:
            return
        self._file.flush()
        self._file.seek(0)
        for _ in range(self.chunks):
            valid, rejected = pickle.load(self._file)  # our own anonymous file
            yield ValidatedChunk(valid, rejected)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
