"""Validating profile chunks in worker processes, with the duplicate checks in the parent.

Everything :class:`~segments.profiles.validate.ProfileValidator` checks looks at one row
at a time, except ``duplicate_id`` and ``duplicate_email``: a row whose id (address) was
in an earlier row not rejected before that check, perhaps in an earlier chunk. So each
worker validates its chunk with a fresh validator (duplicates within the chunk are
found there) and sends back, with the typed rows, what the chunk added to the
validator's memory: :class:`~segments.profiles.validate.FirstSeen` (the rows whose ids
it had not seen, with the 128-bit fingerprints of those ids) and the addresses it
claimed (fingerprints and rows). The parent keeps one validator's memory of every chunk
so far, in input order (:class:`CrossChunks`). A chunk none of whose ids or addresses
that memory holds is judged by a fresh validator exactly as by one that read every
chunk: its result stands, and its ids and addresses join the memory. A chunk with a
repeat of an earlier chunk's id or address (rare) is validated again here, by that
validator: the same rows and rejections as one validator reading every chunk.
"""

from __future__ import annotations

import pickle
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import pandas as pd

from segments.chunkmap import SERIAL, ChunkMapper
from segments.profiles.emails import FirstRows
from segments.profiles.read import RawChunk, Rejection
from segments.profiles.spool import ValidatedChunk
from segments.profiles.validate import FirstSeen, ProfileValidator

ValidatorFactory = Callable[[], ProfileValidator]


@dataclass(frozen=True)
class ValidationTask:
    """One raw chunk to validate; ``check_columns`` for the first chunk with columns."""

    chunk: RawChunk
    check_columns: bool


@dataclass(frozen=True)
class ValidatedPart:
    """A chunk validated on its own: duplicates across chunks not yet flagged."""

    valid: pd.DataFrame
    rejected: list[Rejection]
    first_seen: FirstSeen
    addresses: FirstRows


def validate_task(factory: ValidatorFactory, task: ValidationTask) -> ValidatedPart:
    """Validate one chunk with a fresh validator (in a worker process)."""
    validator = factory()
    if not task.check_columns:
        validator.skip_column_check()
    valid, rejected = validator.validate(task.chunk)
    return ValidatedPart(valid, rejected, validator.first_seen, validator.addresses)


class CrossChunks:
    """One validator's memory of the chunks so far: judges each worker's chunk, in order."""

    def __init__(self, factory: ValidatorFactory) -> None:
        self.validator = factory()
        self.validator.skip_column_check()  # a worker checked them, on the first chunk

    def stands(self, seen: FirstSeen, addresses: FirstRows) -> bool:
        """Whether a worker's result, which added ``seen`` and ``addresses`` to its fresh
        validator, is the one validator's (then they are remembered)."""
        if self.validator.knows_any(seen, addresses):
            return False
        self.validator.remember(seen, addresses)
        return True

    def again(self, chunk: RawChunk) -> ValidatedChunk:
        """The chunk validated here, with the memory of every chunk before it."""
        return ValidatedChunk(*self.validator.validate(chunk))


def validate_chunks(
    chunks: Iterable[RawChunk],
    factory: ValidatorFactory,
    mapper: ChunkMapper = SERIAL,
) -> Iterator[ValidatedChunk]:
    """Validate ``chunks`` through ``mapper`` (each on its own), then judge the repeats
    across chunks here: the same chunks, rows and rejections as one validator gives."""
    memory = CrossChunks(factory)
    raw: deque[RawChunk] = deque()  # the chunks in the workers, in order
    for part in mapper.map(validate_task, factory, _tasks(chunks, raw)):
        chunk = raw.popleft()
        if memory.stands(part.first_seen, part.addresses):
            yield ValidatedChunk(part.valid, part.rejected)
        else:
            yield memory.again(chunk)


def _tasks(chunks: Iterable[RawChunk], raw: deque[RawChunk]) -> Iterator[ValidationTask]:
    """One task per chunk, each chunk kept in ``raw`` until its result is judged; the
    first chunk with columns checks them."""
    checked = False
    for chunk in chunks:
        raw.append(chunk)
        check = not checked and bool(len(chunk.frame.columns))
        checked = checked or check
        yield ValidationTask(chunk, check)


@dataclass(frozen=True)
class PackedChunk:
    """A validated chunk as the spool stores it (``packed``: its pickle), with the valid
    rows' ``columns`` that the parent keeps (``audience``) and the rejections."""

    packed: bytes
    audience: pd.DataFrame
    rejected: list[Rejection]


@dataclass(frozen=True)
class _PackedPart:
    packed: bytes
    audience: pd.DataFrame
    rejected: list[Rejection]
    first_seen: FirstSeen
    addresses: FirstRows


def pack(chunk: ValidatedChunk) -> bytes:
    """A validated chunk as :class:`~segments.profiles.spool.ChunkSpool` stores it."""
    return pickle.dumps((chunk.valid, chunk.rejected), protocol=pickle.HIGHEST_PROTOCOL)


def validate_and_pack(
    context: tuple[ValidatorFactory, list[str]], task: ValidationTask
) -> _PackedPart:
    """:func:`validate_task`, packed where it ran: the parent then handles the bytes for
    the spool and the few audience columns, never the whole typed chunk."""
    factory, columns = context
    part = validate_task(factory, task)
    packed = pack(ValidatedChunk(part.valid, part.rejected))
    return _PackedPart(packed, part.valid[columns], part.rejected, part.first_seen, part.addresses)


def validate_packed(
    chunks: Iterable[RawChunk],
    factory: ValidatorFactory,
    columns: list[str],
    mapper: ChunkMapper = SERIAL,
) -> Iterator[PackedChunk]:
    """:func:`validate_chunks` for a pre-pass that spools the chunks and keeps ``columns``.

    A chunk with a repeat of an earlier chunk's id or address (rare) is validated again
    here and packed; the others pass through as their workers packed them.
    """
    memory = CrossChunks(factory)
    raw: deque[RawChunk] = deque()
    for part in mapper.map(validate_and_pack, (factory, columns), _tasks(chunks, raw)):
        chunk = raw.popleft()
        if memory.stands(part.first_seen, part.addresses):
            yield PackedChunk(part.packed, part.audience, part.rejected)
            continue
        again = memory.again(chunk)
        yield PackedChunk(pack(again), again.valid[columns], again.rejected)


__all__ = [
    "CrossChunks",
    "PackedChunk",
    "ValidatedPart",
    "ValidationTask",
    "validate_and_pack",
    "validate_chunks",
    "validate_packed",
    "validate_task",
]
