"""Validating profile chunks in worker processes, with the duplicate-id check in the parent.

Everything :class:`~segments.profiles.validate.ProfileValidator` checks looks at one row
at a time, except ``duplicate_id``: a row whose id was in an earlier row not rejected
before that check, perhaps in an earlier chunk. So each worker validates its chunk
with a fresh validator (duplicates within the chunk are found there) and sends back,
with the typed rows, the :class:`~segments.profiles.validate.FirstSeen` of the chunk:
the rows whose ids it had not seen, and the 128-bit fingerprints of those ids (16
bytes each, the very fingerprints a single validator keeps). The parent takes the
chunks in input order and, in :class:`CrossChunkIds`, turns the rows whose
fingerprint an earlier chunk added into ``duplicate_id`` rejections, exactly as one
validator reading every chunk would: a ``duplicate_id`` comes before ``no_consent``
and ``suppressed``, so it replaces those, and the row is no longer valid.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from segments.chunkmap import SERIAL, ChunkMapper
from segments.profiles.read import RawChunk, Rejection
from segments.profiles.spool import ValidatedChunk
from segments.profiles.textindex import SeenTexts
from segments.profiles.validate import FirstSeen, ProfileValidator, rejection_detail

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


def validate_task(factory: ValidatorFactory, task: ValidationTask) -> ValidatedPart:
    """Validate one chunk with a fresh validator (in a worker process)."""
    validator = factory()
    if not task.check_columns:
        validator.skip_column_check()
    valid, rejected = validator.validate(task.chunk)
    return ValidatedPart(valid, rejected, validator.first_seen)


class CrossChunkIds:
    """The ids of the chunks so far (as fingerprints): flags the duplicates of later ones."""

    def __init__(self, id_field: str, detail: str) -> None:
        self.id_field = id_field
        self.detail = detail
        self._seen = SeenTexts()

    def seen_before(self, seen: FirstSeen) -> np.ndarray:
        """Which of a chunk's first sightings an earlier chunk had."""
        return self._seen.contains_fingerprints(seen.first, seen.second)

    def add(self, seen: FirstSeen) -> None:
        """Remember a chunk's ids (none of them :meth:`seen_before`)."""
        self._seen.add_fingerprints(seen.first, seen.second)

    def resolve(self, part: ValidatedPart) -> ValidatedChunk:
        """The chunk as one validator reading every chunk in order would have given it."""
        seen = part.first_seen
        repeated = self.seen_before(seen)
        new = ~repeated
        self._seen.add_fingerprints(seen.first[new], seen.second[new])
        if not repeated.any():
            return ValidatedChunk(part.valid, part.rejected)
        rows = {int(row) for row in seen.rows[repeated]}
        valid = part.valid
        ids = valid[self.id_field]
        kept: list[Rejection] = []
        for rejection in part.rejected:  # a later reason (consent, suppression) gives way
            if rejection.row in rows:
                rows.discard(rejection.row)
                kept.append(self._duplicate(rejection.row, rejection.id))
            else:
                kept.append(rejection)
        dropped = valid.index.isin(list(rows))
        kept.extend(self._duplicate(int(row), _text(ids[row])) for row in valid.index[dropped])
        kept.sort(key=lambda r: r.row)
        return ValidatedChunk(valid[~dropped], kept)

    def _duplicate(self, row: int, id_text: str | None) -> Rejection:
        return Rejection(row, id_text, self.id_field, "duplicate_id", self.detail)


def _text(value: object) -> str | None:
    return None if value is None or value != value else str(value)


def validate_chunks(
    chunks: Iterable[RawChunk],
    factory: ValidatorFactory,
    mapper: ChunkMapper = SERIAL,
) -> Iterator[ValidatedChunk]:
    """Validate ``chunks`` through ``mapper`` (each on its own), then flag the duplicates
    across chunks here: the same chunks, rows and rejections as one validator gives."""
    ids = _cross_chunk_ids(factory)
    for part in mapper.map(validate_task, factory, _tasks(chunks)):
        yield ids.resolve(part)


def _cross_chunk_ids(factory: ValidatorFactory) -> CrossChunkIds:
    schema = factory().schema
    detail = rejection_detail("duplicate_id", schema.id_field, schema)
    return CrossChunkIds(schema.id_field, detail)


def _tasks(chunks: Iterable[RawChunk]) -> Iterator[ValidationTask]:
    """One task per chunk; the first chunk with columns checks them."""
    checked = False
    for chunk in chunks:
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
    return _PackedPart(packed, part.valid[columns], part.rejected, part.first_seen)


def validate_packed(
    chunks: Iterable[RawChunk],
    factory: ValidatorFactory,
    columns: list[str],
    mapper: ChunkMapper = SERIAL,
) -> Iterator[PackedChunk]:
    """:func:`validate_chunks` for a pre-pass that spools the chunks and keeps ``columns``.

    A chunk with a duplicate of an earlier chunk's id (rare) is unpacked here, resolved
    and packed again; the others pass through as their workers packed them.
    """
    ids = _cross_chunk_ids(factory)
    for part in mapper.map(validate_and_pack, (factory, columns), _tasks(chunks)):
        seen = part.first_seen
        if not ids.seen_before(seen).any():
            ids.add(seen)
            yield PackedChunk(part.packed, part.audience, part.rejected)
            continue
        valid, rejected = pickle.loads(part.packed)  # our own bytes, from our own worker
        chunk = ids.resolve(ValidatedPart(valid, rejected, seen))
        yield PackedChunk(pack(chunk), chunk.valid[columns], chunk.rejected)


__all__ = [
    "CrossChunkIds",
    "PackedChunk",
    "ValidatedPart",
    "ValidationTask",
    "validate_and_pack",
    "validate_chunks",
    "validate_packed",
    "validate_task",
]
