"""Where a build's unit of work runs: in this process, or in a pool of processes.

The unit is :func:`run_chunk`: segment one validated chunk
(:func:`segments.batch.segment_chunk`), render it (:func:`renderer.runtime.render_batch`),
and hand the emails to the writer's per-email part (:class:`EmailFiles`, or a shard of
:class:`~renderer.build.bundle.BundleFiles`: encoding, SHA-256 and file creation are a
quarter of a recipient's cost, so they run where the render ran). Only manifest lines,
rejections and counts come back, in input order, so the output is byte-identical
whatever the executor and the number of workers. A bundle format splits each chunk into
parts of ``shard_size`` valid rows whichever the executor, and numbers them in input
order: part ``n`` is shard ``n``.

An executor is anything with ``submit(chunk) -> Iterator[ChunkResult]`` and
``close()``: :class:`InProcessExecutor` works as the iterator is consumed;
:class:`ProcessPoolExecutor` splits the chunk, submits the parts at once and yields
their results in order.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, Protocol

from renderer.build.output import holdout_line
from renderer.coupons import CouponCodes
from renderer.runtime import EARLY_STOP, CampaignRuntime, Rendered, render_batch
from segments.batch import SegmentedBatch, SegmentPlan, segment_chunk
from segments.profiles.read import Rejection
from segments.profiles.spool import ValidatedChunk

if TYPE_CHECKING:
    from renderer.build.pool import ContextRef, WorkerPool

SUB_BATCH = 250  # rows rendered before their files are written: memory stays flat
POOL_PART = 1000  # valid rows per task sent to a worker process


@dataclass
class ChunkResult:
    """What one chunk gave: manifest lines in input-row order, rejections by row, counts."""

    input_rows: int = 0
    lines: list[bytes] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    rendered: int = 0
    holdout: int = 0
    excluded: int = 0
    not_sampled: int = 0
    evaluated: int = 0
    members: Counter[str] = field(default_factory=Counter)
    segments: Counter[str] = field(default_factory=Counter)  # of rendered recipients
    variants: dict[str, Counter[str]] = field(default_factory=dict)  # of rendered recipients
    holdouts: Counter[str] = field(default_factory=Counter)  # per experiment
    layouts: set[str] = field(default_factory=set)
    shards: int = 0  # bundle shards written (a part has one, unless it has no email)


class EmailSink(Protocol):
    """Writes the emails of one part of the input; :meth:`close` finishes its files."""

    def write(self, item: Rendered) -> bytes: ...

    def close(self) -> None: ...


class EmailOutput(Protocol):
    """Where a build's emails go (picklable): a sink per part of the input."""

    @property
    def shard_size(self) -> int | None:
        """Valid rows per part (its own shard); None: a chunk is one part."""

    def open(self, shard: int) -> EmailSink: ...


@dataclass(frozen=True)
class ChunkJob:
    """What the unit needs besides the chunk: the same for every chunk of a build."""

    runtime: CampaignRuntime
    plan: SegmentPlan
    files: EmailOutput
    coupons: CouponCodes | None = None  # a code by input row (renderer/coupons.py)


def run_chunk(job: ChunkJob, chunk: ValidatedChunk, shard: int = 0) -> ChunkResult:
    """Segment, render and write one chunk (part ``shard`` of the input): the unit of
    work of a build."""
    batch = segment_chunk(chunk, job.plan)
    if job.coupons is not None:
        job.coupons.give(batch.rows, batch.records)
    result = ChunkResult(
        input_rows=batch.input_rows,
        excluded=batch.excluded,
        not_sampled=batch.not_sampled,
        evaluated=len(batch),
        members=Counter(batch.members),
        holdouts=Counter(batch.holdouts()),
    )
    rejected = list(batch.rejected)
    # what the counts need, not the emails: a part's HTML is not held past its write
    written: list[tuple[str, tuple[str, ...], Mapping[str, str | None]]] = []
    email_field = job.plan.schema.email_field
    # the build's first renders all over the render limit: a template error, not data
    stop_after = EARLY_STOP if 1 in chunk.row_numbers()[:1] else 0
    sink = job.files.open(shard)
    for start in range(0, len(batch), SUB_BATCH):
        part = batch.take(range(start, min(start + SUB_BATCH, len(batch))))
        done = render_batch(job.runtime, part, stop_after=stop_after if start == 0 else 0)
        rejected.extend(done.rejected)
        rendered = iter(done.rendered)  # in row order, without the held-out and rejected rows
        item = next(rendered, None)
        for index, row in enumerate(part.rows):
            if part.held_out[index]:
                email = str(part.records[index].get(email_field))
                line = holdout_line(row, part.ids[index], email, part.segments[index],
                                    part.variants[index])  # fmt: skip
                result.lines.append(line)
                result.holdout += 1
            elif item is not None and item.row == row:
                line = sink.write(item)
                result.lines.append(job.coupons.line(line, row) if job.coupons else line)
                written.append((item.layout, item.segments, item.variants))
                item = next(rendered, None)
    sink.close()
    result.rejected = sorted(rejected, key=lambda r: r.row)
    _count(result, written)
    result.shards = 1 if written and job.files.shard_size else 0
    return result


def _count(
    result: ChunkResult, written: list[tuple[str, tuple[str, ...], Mapping[str, str | None]]]
) -> None:
    """Counts of the rendered recipients (layout, segments, variants of each), once per
    chunk (not a call per recipient)."""
    result.rendered = len(written)
    result.layouts = {layout for layout, _, _ in written}
    segments = Counter(chain.from_iterable(names for _, names, _ in written))
    result.segments = Counter({s: n for s, n in segments.items() if not s.startswith("block:")})
    pairs = Counter(chain.from_iterable(variants.items() for _, _, variants in written))
    for (key, name), count in pairs.items():
        result.variants.setdefault(key, Counter())[str(name)] += count


class Executor(Protocol):
    def submit(self, chunk: ValidatedChunk) -> Iterator[ChunkResult]: ...

    def skip(self, chunk: ValidatedChunk) -> None:
        """Number the chunk's parts as :meth:`submit` would, and run nothing: a chunk a
        resumed build committed before it was killed."""

    @property
    def parts(self) -> int:
        """Parts numbered so far (submitted or skipped)."""

    def close(self) -> None: ...

    def abort(self) -> None: ...


class _Parts:
    """Splits chunks into the parts the unit runs on, numbered in input order."""

    def __init__(self, job: ChunkJob, size: int | None) -> None:
        self.size = job.files.shard_size or size  # a bundle's shards, else ``size``
        self.count = 0

    def __call__(self, chunk: ValidatedChunk) -> list[tuple[ValidatedChunk, int]]:
        parts = chunk.split(self.size) if self.size else [chunk]
        numbered = [(part, self.count + index) for index, part in enumerate(parts)]
        self.count += len(parts)
        return numbered


class InProcessExecutor:
    """Runs the unit here, as the results are consumed."""

    def __init__(self, job: ChunkJob) -> None:
        self.job = job
        self._parts = _Parts(job, None)

    def submit(self, chunk: ValidatedChunk) -> Iterator[ChunkResult]:
        return (run_chunk(self.job, *part) for part in self._parts(chunk))

    def skip(self, chunk: ValidatedChunk) -> None:
        self._parts(chunk)

    @property
    def parts(self) -> int:
        return self._parts.count

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


_WORKER: ChunkJob | None = None


def _init_worker(job: ChunkJob) -> None:
    global _WORKER
    stay_with_parent()
    _WORKER = job  # unpickled once per process: templates compiled once per worker


def _run_in_worker(part: tuple[ValidatedChunk, int]) -> ChunkResult:
    assert _WORKER is not None
    return run_chunk(_WORKER, *part)


def _run_job(job: ChunkJob, part: tuple[ValidatedChunk, int]) -> ChunkResult:
    """The unit in a :class:`~renderer.build.pool.WorkerPool` worker (the job is its context)."""
    return run_chunk(job, *part)


def stay_with_parent() -> None:
    """A worker leaves stopping to its parent, and does not outlive it.

    Ctrl-C reaches every process of the terminal's group: the parent stops the
    pool and removes the staging folder, so workers ignore SIGINT. SIGTERM ends a
    worker at once (not the parent's handler, inherited through fork: the pool would
    catch the KeyboardInterrupt it raises and go on). A parent killed
    outright (SIGKILL, out of memory) cannot stop them, and a worker waiting for
    work would wait for ever: on Linux the kernel sends it SIGTERM when the parent
    dies (``PR_SET_PDEATHSIG``).
    """
    parent = os.getppid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)


_PR_SET_PDEATHSIG = 1


class ProcessPoolExecutor:
    """Runs the unit in ``workers`` processes; each chunk is split into parts of
    :data:`POOL_PART` rows (a bundle's shards) so every worker has work, and results
    come back in order."""

    def __init__(self, job: ChunkJob, workers: int, pool: WorkerPool | None = None) -> None:
        self.job = job
        self.workers = workers
        self._parts = _Parts(job, POOL_PART)
        self._pool: futures.ProcessPoolExecutor | None = None
        self._shared = pool  # the build's processes, which ran its pre-pass
        self._job_ref: ContextRef | None = None

    def submit(self, chunk: ValidatedChunk) -> Iterator[ChunkResult]:
        if self._shared is not None:
            if self._job_ref is None:  # each worker loads the job once
                self._job_ref = self._shared.context(self.job)
            ref = self._job_ref
            submitted = [self._shared.submit(_run_job, ref, part) for part in self._parts(chunk)]
            return (future.result() for future in submitted)
        if self._pool is None:
            self._pool = futures.ProcessPoolExecutor(
                max_workers=self.workers, initializer=_init_worker, initargs=(self.job,)
            )
        return self._pool.map(_run_in_worker, self._parts(chunk))  # submits them all now

    def skip(self, chunk: ValidatedChunk) -> None:
        self._parts(chunk)

    @property
    def parts(self) -> int:
        return self._parts.count

    def close(self) -> None:
        if self._shared is not None:  # the render pass is the build's last stage
            self._shared.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def abort(self) -> None:
        """Stop the workers now, mid-render (a signal, an error): :meth:`close` would
        wait for the renders under way, and a long one takes up to its time limit.
        They are gone when this returns, so none writes into the staging folder after."""
        if self._shared is not None:
            self._shared.abort()
        if self._pool is not None:
            stop_processes(self._pool)


def stop_processes(pool: futures.ProcessPoolExecutor) -> None:
    """End a pool's processes now, abandoning the work under way (see
    :meth:`ProcessPoolExecutor.abort`)."""
    processes = list((pool._processes or {}).values())
    # parts still being sent to the workers: the queue's feeder thread may be
    # blocked writing one into a pipe nobody will read again, and the pool's
    # shutdown (and the interpreter's exit) would wait for it for ever
    pool._call_queue.cancel_join_thread()  # type: ignore[attr-defined]
    pool.shutdown(wait=False, cancel_futures=True)
    # the renders under way are abandoned; before Python 3.12 the pool would mark
    # the cancelled ones failed too when it sees its workers end, and its thread
    # die of InvalidStateError (a traceback on stderr)
    pool._pending_work_items.clear()
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=1)
        if process.exitcode is None:
            process.kill()
            process.join()


def make_executor(
    job: ChunkJob, workers: int, pool: WorkerPool | None = None
) -> InProcessExecutor | ProcessPoolExecutor:
    """In this process for one worker, else a process pool: ``pool`` (the build's, which
    the executor closes with itself) or one of its own."""
    if workers <= 1:
        return InProcessExecutor(job)
    return ProcessPoolExecutor(job, workers, pool)


__all__ = ["ChunkJob", "ChunkResult", "SegmentedBatch", "make_executor", "run_chunk"]
