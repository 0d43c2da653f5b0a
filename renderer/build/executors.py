"""Rendering batches in-process or across worker processes, always in input order.

:meth:`CampaignRuntime.render_batch` is pure, so the same unit runs here in a
process pool: each worker builds its own runtime once (templates compiled once
per process), renders sub-batches and writes their files (:class:`EmailFiles`:
encoding, SHA-256 and file creation are a quarter of a recipient's cost, so they
run in the workers too). Only manifest lines and counts come back, in order, so
output files and the manifest are byte-identical whatever the number of workers.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime

from renderer.build.output import EmailFiles
from renderer.campaign import Campaign
from renderer.runtime import CampaignRuntime, ProfileBatch, Rendered
from segments.audience.prepass import CampaignAudience
from segments.profiles.read import Rejection
from segments.profiles.schema import ProfileSchema

SUB_BATCH = 250
_WORKER: tuple[CampaignRuntime, EmailFiles] | None = None


@dataclass
class WrittenBatch:
    """A rendered batch whose files are written: manifest lines, in input order."""

    rendered: list[Rendered] = field(default_factory=list)  # html and text may be emptied
    lines: list[bytes] = field(default_factory=list)  # the manifest line of each
    rejected: list[Rejection] = field(default_factory=list)


def render_and_write(
    runtime: CampaignRuntime, files: EmailFiles, batch: ProfileBatch, *, keep_content: bool
) -> WrittenBatch:
    """Render ``batch`` and write its files: the unit of work of a build."""
    result = runtime.render_batch(batch)
    lines = [files.write(item) for item in result.rendered]
    rendered = result.rendered
    if not keep_content:  # what goes back to the parent process: no need for the bodies
        rendered = [replace(item, html="", text="") for item in rendered]
    return WrittenBatch(rendered, lines, result.rejected)


def _init_worker(
    campaign: Campaign,
    schema: ProfileSchema,
    as_of: datetime,
    audience: CampaignAudience,
    files: EmailFiles,
) -> None:
    global _WORKER
    _stay_with_parent()
    _WORKER = CampaignRuntime(campaign, schema, as_of, audience=audience), files


def _stay_with_parent() -> None:
    """A worker leaves stopping to its parent, and does not outlive it.

    Ctrl-C reaches every process of the terminal's group: the parent stops the
    pool and removes the staging folder, so workers ignore SIGINT. A parent killed
    outright (SIGKILL, out of memory) cannot stop them, and a worker waiting for
    work would wait for ever: on Linux the kernel sends it SIGTERM when the parent
    dies (``PR_SET_PDEATHSIG``).
    """
    parent = os.getppid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)


_PR_SET_PDEATHSIG = 1


def _render_in_worker(batch: ProfileBatch) -> WrittenBatch:
    assert _WORKER is not None
    runtime, files = _WORKER
    return render_and_write(runtime, files, batch, keep_content=False)


class BatchRenderer:
    """Renders :class:`ProfileBatch` es and writes their files with ``workers``
    processes (1: in this process)."""

    def __init__(self, runtime: CampaignRuntime, files: EmailFiles, workers: int = 1) -> None:
        self.runtime = runtime
        self.files = files
        self.workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None

    def iter_render(self, batch: ProfileBatch) -> Iterator[WrittenBatch]:
        """Render ``batch`` in sub-batches; the results in input order.

        In one process the work happens as the iterator is consumed; with workers
        every sub-batch is submitted before this returns.
        """
        bounds = range(0, len(batch.rows), SUB_BATCH)
        parts = [_slice(batch, start, start + SUB_BATCH) for start in bounds]
        if self.workers == 1 or len(parts) <= 1:
            runtime, files = self.runtime, self.files
            return (render_and_write(runtime, files, part, keep_content=True) for part in parts)
        return self._executor().map(_render_in_worker, parts)  # submits them all now

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            runtime = self.runtime
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                initializer=_init_worker,
                initargs=(
                    runtime.campaign,
                    runtime.schema,
                    runtime.as_of,
                    runtime.audience,
                    self.files,
                ),
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _slice(batch: ProfileBatch, start: int, stop: int) -> ProfileBatch:
    return ProfileBatch(
        batch.rows[start:stop],
        batch.records[start:stop],
        batch.segments[start:stop],
        batch.variants[start:stop],
        batch.derived_filled,
    )
