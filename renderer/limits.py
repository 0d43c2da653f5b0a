"""Render limits: each recipient's render gets a budget of time and size.

A template is the designer's code, run for every recipient: nested loops over
``range(100000)`` would run for ever, a string doubled in a ``namespace`` would
exhaust memory. A :class:`RenderGuard` holds one render's budget. The compiled
templates tick it on every loop iteration (:mod:`renderer.codegen`) and every
call a template makes (:class:`renderer.env.MailsmithEnvironment`), and check the
size of what can grow a string: ``~``, the arithmetic operators, and the filters
that join, pad or repeat. Running over raises :class:`RenderLimitError`, which
rejects the recipient (``render_limit``) at the template line where it was.

The clock is read once every :data:`CHECK_EVERY` ticks, so a normal render pays a
counter decrement per loop iteration and call. The guard is per environment, not
per thread: a runtime renders one recipient at a time (a build's worker process
has its own runtime).

The guard also collects the render's warnings (an unsafe URL replaced, see
:mod:`renderer.urls`), which the runtime adds to the recipient's manifest line.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from typing import Any, Literal

DEFAULT_MAX_SECONDS = 2.0
DEFAULT_MAX_BYTES = 5_000_000
CHECK_EVERY = 256  # ticks between two readings of the clock

UnsafeUrlPolicy = Literal["warn", "reject"]
_SEQUENCES = (str, list, tuple)


class RenderLimitError(Exception):
    """One recipient's render ran over its budget (``what``: ``time`` or ``size``)."""

    def __init__(self, what: str, limit: str) -> None:
        super().__init__(f"render limit exceeded: {what} over {limit}")
        self.what = what
        self.limit = limit

    def __reduce__(self) -> Any:
        return (type(self), (self.what, self.limit))


class RenderGuard:
    """The budget and the warnings of the render under way (see the module docstring).

    :meth:`start` before a recipient's renders, :meth:`stop` after; a guard never
    started has no time limit (compile-time folding, a test rendering a template).
    """

    __slots__ = ("countdown", "deadline", "max_bytes", "max_seconds", "unsafe_urls", "warnings")

    def __init__(
        self,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        unsafe_urls: UnsafeUrlPolicy = "warn",
    ) -> None:
        self.max_seconds = max_seconds
        self.max_bytes = max_bytes
        self.unsafe_urls: UnsafeUrlPolicy = unsafe_urls
        self.deadline = math.inf
        self.countdown = CHECK_EVERY
        self.warnings: list[str] = []

    def start(self) -> None:
        """A recipient's render begins: a fresh budget, no warnings."""
        self.deadline = time.perf_counter() + self.max_seconds
        self.countdown = CHECK_EVERY
        if self.warnings:
            self.warnings = []

    def stop(self) -> None:
        """The render is over: no time limit until the next :meth:`start`."""
        self.deadline = math.inf

    def tick(self) -> None:
        """One step of template code (a call, an operator); the clock now and then."""
        self.countdown -= 1
        if self.countdown <= 0:
            self.check_clock()

    def check_clock(self) -> None:
        """RenderLimitError when the render is past its deadline (the countdown ran out)."""
        self.countdown = CHECK_EVERY
        if time.perf_counter() > self.deadline:
            raise RenderLimitError("time", f"{self.max_seconds:g} s")

    def loop(self, iterable: Iterable[Any]) -> Iterable[Any]:
        """``iterable`` as a ``{% for %}`` loop runs it, one tick per iteration.

        A sized iterable (a list, a dict, a range) is charged its length at once and
        runs as it is: no cost per iteration. Its loop ends; what its body does
        (an inner loop, a call) ticks on its own.
        """
        try:
            size = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            return self._ticking(iterable)
        self.countdown -= size
        if self.countdown <= 0:
            self.check_clock()
        return iterable

    def _ticking(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.countdown -= 1
            if self.countdown <= 0:
                self.check_clock()
            yield item

    def sized(self, value: Any) -> Any:
        """``value`` (a string a template built) if within the size budget."""
        if len(value) > self.max_bytes:
            raise self.too_big()
        return value

    def too_big(self) -> RenderLimitError:
        return RenderLimitError("size", f"{self.max_bytes:,} characters")

    def binop(self, operator: str, left: Any, right: Any) -> Any:
        """``left <operator> right`` for the operators that can build a large value.

        Repetition (``'x' * n``) and powers are refused before they allocate; sums
        and ``%`` formatting are checked after (at most twice the budget).
        """
        self.countdown -= 1
        if self.countdown <= 0:
            self.check_clock()
        if operator == "*":
            if isinstance(left, _SEQUENCES) or isinstance(right, _SEQUENCES):
                self._check_repeat(left, right)
                self._check_repeat(right, left)
            result = left * right
        elif operator == "**":
            if type(left) is int and type(right) is int and right > 0 and abs(left) > 1:
                if right * abs(left).bit_length() > 8 * self.max_bytes:
                    raise self.too_big()
            result = left**right
        elif operator == "+":
            result = left + right
        else:
            result = left % right
        if type(result) is int:
            if result.bit_length() > 8 * self.max_bytes:  # squared again and again
                raise self.too_big()
        elif isinstance(result, _SEQUENCES) and len(result) > self.max_bytes:
            raise self.too_big()
        return result

    def _check_repeat(self, sequence: Any, count: Any) -> None:
        if isinstance(sequence, _SEQUENCES) and isinstance(count, int):
            if len(sequence) * count > self.max_bytes:
                raise self.too_big()

    def check_widths(self, args: Iterable[Any]) -> None:
        """Refuse a width or count over the size budget before a string method or a
        padding filter allocates it (``'x'.ljust(10 ** 10)``, ``center``, ``indent``)."""
        for arg in args:
            if type(arg) is int and arg > self.max_bytes:
                raise self.too_big()

    def checked_call(self, result: Any) -> Any:
        """What a call from a template returned, if a string or list within the budget."""
        if isinstance(result, _SEQUENCES) and len(result) > self.max_bytes:
            raise self.too_big()
        return result


__all__ = ["RenderGuard", "RenderLimitError", "UnsafeUrlPolicy"]
