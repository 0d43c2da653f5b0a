"""Where the audience stage's per-chunk work runs: here, or in a build's worker processes.

The pre-pass over the profiles (validation) and over the events (cleaning) does the
same work on every chunk, independent of the others, then folds the results in
input order. A :class:`ChunkMapper` runs that per-chunk work: :class:`SerialMapper`
in this process, as the results are consumed; a build with ``--workers N`` passes a
pool of processes (``renderer.build.pool.WorkerPool``). Either way the results come
back in input order, so what the parent folds, and the output, is the same.

``function(context, item)`` must be a module-level function (it is pickled by name);
``context`` is what every item needs (a validator factory, the known ids): sent to
each worker once per :meth:`ChunkMapper.map`, not with every item.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class ChunkMapper(Protocol):
    """Runs ``function(context, item)`` for each item; yields the results in item order."""

    def map(
        self, function: Callable[[Any, Item], Result], context: Any, items: Iterable[Item]
    ) -> Iterator[Result]: ...


class SerialMapper:
    """The work in this process, one item at a time, as the results are consumed."""

    def map(
        self, function: Callable[[Any, Item], Result], context: Any, items: Iterable[Item]
    ) -> Iterator[Result]:
        """``function(context, item)`` for each item, lazily."""
        return (function(context, item) for item in items)


SERIAL = SerialMapper()
