"""A build's worker processes, shared by its stages (``--workers N``).

The audience pre-pass validates profile chunks and cleans event chunks in these
processes (:mod:`segments.chunkmap`); the render pass runs its unit of work here
too (:class:`renderer.build.executors.ProcessPoolExecutor` given the pool). Each
stage's *context*, what every item of it needs (a validator factory, the known ids,
the compiled campaign), is pickled once into a file (see :meth:`WorkerPool.context`) and
loaded once by each worker, the first time it runs an item of that stage: items
carry only the file's key and name. The processes start with the first item.
"""

from __future__ import annotations

import itertools
import os
import pickle
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from renderer.build.executors import stay_with_parent, stop_processes

Item = TypeVar("Item")
Result = TypeVar("Result")

_KEYS = itertools.count()


@dataclass(frozen=True)
class ContextRef:
    """A stage's context as workers find it: a key, and the file it was pickled to."""

    key: str
    path: str


_CONTEXT: tuple[str, Any] | None = None  # in a worker: the stage's context it last loaded


def _call(function: Callable[[Any, Any], Any], ref: ContextRef, item: Any) -> Any:
    """In a worker: ``function(context, item)``, the context loaded once per stage."""
    global _CONTEXT
    if _CONTEXT is None or _CONTEXT[0] != ref.key:
        _CONTEXT = None  # the last stage's context goes first (memory)
        with open(ref.path, "rb") as handle:
            _CONTEXT = (ref.key, pickle.load(handle))  # our own file, written by the parent
    return function(_CONTEXT[1], item)


class WorkerPool:
    """``workers`` processes for every stage of one build (a ``ChunkMapper``).

    ``folder`` holds the context files (on the output's disk, removed when their stage
    ends). :meth:`map` keeps ``2 * workers`` items in flight, so a stage reads its input
    a few chunks ahead of the results, never the whole of it.
    """

    def __init__(self, workers: int, folder: Path) -> None:
        self.workers = workers
        self.folder = folder
        self._pool: futures.ProcessPoolExecutor | None = None
        self._files: dict[str, tuple[IO[bytes], Path | None]] = {}

    def context(self, value: Any) -> ContextRef:
        """Write a stage's context for the workers; removed by :meth:`release` or :meth:`close`.

        On Linux the file is anonymous, as the chunk spool is (unlinked at once: a build
        killed outright leaves nothing behind), and workers open it through
        ``/proc/<parent>/fd``; elsewhere it is a hidden file, removed at the stage's end.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        anonymous = Path(f"/proc/{os.getpid()}/fd").is_dir()
        file = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed by release or close)
            dir=self.folder, prefix=".mailsmith-context-", delete=False
        )
        pickle.dump(value, file, protocol=pickle.HIGHEST_PROTOCOL)
        file.flush()
        path = file.name
        if anonymous:
            os.unlink(file.name)
            path = f"/proc/{os.getpid()}/fd/{file.fileno()}"
        self._files[path] = (file, None if anonymous else Path(file.name))
        return ContextRef(f"{os.getpid()}-{next(_KEYS)}", path)

    def release(self, ref: ContextRef) -> None:
        """The stage is over: its context file goes."""
        entry = self._files.pop(ref.path, None)
        if entry is not None:
            _remove(*entry)

    def submit(
        self, function: Callable[[Any, Item], Result], ref: ContextRef, item: Item
    ) -> futures.Future[Result]:
        """Run ``function(context, item)`` in a worker."""
        if self._pool is None:
            self._pool = futures.ProcessPoolExecutor(
                max_workers=self.workers, initializer=stay_with_parent
            )
        return self._pool.submit(_call, function, ref, item)

    def map(
        self, function: Callable[[Any, Item], Result], context: Any, items: Iterable[Item]
    ) -> Iterator[Result]:
        """``function(context, item)`` for each item in the workers; results in item order."""
        ref = self.context(context)
        pending: deque[futures.Future[Result]] = deque()
        try:
            for item in items:
                pending.append(self.submit(function, ref, item))
                if len(pending) > 2 * self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # the stage stopped early (an error) when items are pending: they are
            # cancelled, not waited for (after an abort they would never finish); one
            # already under way finds its context gone and fails, and nobody asks
            for future in pending:
                future.cancel()
            self.release(ref)

    def close(self) -> None:
        """Wait for the workers to finish and end them; remove the context files."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._remove_files()

    def abort(self) -> None:
        """Stop the workers now (a signal, an error), without waiting for their items."""
        if self._pool is not None:
            stop_processes(self._pool)
            self._pool = None
        self._remove_files()

    def _remove_files(self) -> None:
        for entry in self._files.values():
            _remove(*entry)
        self._files.clear()


def _remove(file: IO[bytes], named: Path | None) -> None:
    """Close a context file, and delete it when it has a name (not anonymous)."""
    file.close()
    if named is not None:
        named.unlink(missing_ok=True)
