"""Rendering batches in-process or across worker processes, always in input order.

:meth:`CampaignRuntime.render_batch` is pure, so the same unit runs here in a
process pool: each worker builds its own runtime once (templates compiled once
per process) and renders sub-batches; results come back in order, so output
files and the manifest are byte-identical whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime

from segments.profiles import ProfileSchema

from .audience import CampaignAudience
from .campaign import Campaign
from .runtime import BatchResult, CampaignRuntime, ProfileBatch

SUB_BATCH = 250
_WORKER: CampaignRuntime | None = None


def _init_worker(
    campaign: Campaign, schema: ProfileSchema, as_of: datetime, audience: CampaignAudience
) -> None:
    global _WORKER
    _WORKER = CampaignRuntime(campaign, schema, as_of, audience=audience)


def _render_in_worker(batch: ProfileBatch) -> BatchResult:
    assert _WORKER is not None
    return _WORKER.render_batch(batch)


class BatchRenderer:
    """Renders :class:`ProfileBatch` es with ``workers`` processes (1: in this process)."""

    def __init__(self, runtime: CampaignRuntime, workers: int = 1) -> None:
        self.runtime = runtime
        self.workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None

    def iter_render(self, batch: ProfileBatch) -> Iterator[BatchResult]:
        """Render ``batch`` in sub-batches, yielding each result in input order."""
        bounds = range(0, len(batch.rows), SUB_BATCH)
        parts = [_slice(batch, start, start + SUB_BATCH) for start in bounds]
        if self.workers == 1 or len(parts) <= 1:
            for part in parts:
                yield self.runtime.render_batch(part)
        else:
            yield from self._executor().map(_render_in_worker, parts)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            runtime = self.runtime
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                initializer=_init_worker,
                initargs=(runtime.campaign, runtime.schema, runtime.as_of, runtime.audience),
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
