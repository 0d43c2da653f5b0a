"""``--executor dask``: the build's unit of work on Dask workers.

The same pure unit as the other executors (:func:`~renderer.build.executors.run_chunk`:
segment, render and write one part of the input) runs on the workers of a Dask cluster:
a :class:`distributed.LocalCluster` of ``--workers`` processes on this machine, or the
cluster whose scheduler ``--scheduler`` names. The build's :class:`ChunkJob` (the
compiled campaign) is sent to every worker once and kept there, so templates are
compiled once per worker, not per task. Parts are numbered here, in input order, as the
process pool numbers them: part ``n`` is shard ``n`` whichever worker renders it, and the
results come back in input order, so the output is byte-identical to a local build.

Workers write their emails into the build's staging folder themselves and send back only
manifest lines, rejections and counts. That folder must be the same path on every worker:
on a local cluster it is; on a cluster of its own ``--out`` must sit on a file system that
every worker mounts at the same path (checked when the build connects).

A build starts its :class:`DaskCluster` first thing: a local cluster's processes start
(and import mailsmith) while the build reads the profiles and runs its audience
pre-pass, and an unreachable scheduler fails the build before anything is read.

This module is the only one that imports Dask.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import dask
from distributed import Client, Future, LocalCluster
from distributed.client import FutureCancelledError
from distributed.scheduler import KilledWorker
from distributed.utils import get_mp_context

from renderer.build.executors import POOL_PART, ChunkJob, ChunkResult, _Parts, run_chunk
from segments.errors import ConfigError, MailsmithError, OutputError
from segments.profiles.spool import ValidatedChunk

CONNECT_SECONDS = 10  # to reach a scheduler, and for it to have a worker
CLOSE_SECONDS = 5  # for a local cluster to stop its workers
START_SECONDS = 120  # for a local cluster's processes to start (a loaded machine is slow)
QUIET = {
    # Dask samples the stack of a busy worker every 10 ms, for its dashboard: it nearly
    # doubled a worker's CPU (bench/bench_dask.py); a local cluster has no dashboard
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.gil.enabled": False,
    # each server (scheduler, nannies, client: in the build's process; workers) wakes
    # every 20 ms to time its event loop, and samples memory and CPU for the dashboard
    # every 100 and 500 ms: taken from the build's own thread and the renders
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
}
"""Dask settings of a local cluster: docs/scale.md gives them for a cluster of its own."""


class DaskCluster:
    """The Dask workers of one build: a local cluster of ``workers`` processes (started
    in the background), or the cluster of the scheduler at ``scheduler``
    (``tcp://host:8786``), connected at once and checked to see the ``shared`` folders
    (the staging folder they write, the campaign's folder they compile it from)."""

    def __init__(self, workers: int, scheduler: str | None, shared: dict[str, str]) -> None:
        self._lock = threading.Lock()
        self._client: Client | None = None
        self._local: LocalCluster | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._starting: threading.Thread | None = None
        if scheduler is not None:
            self._client = _remote_client(scheduler)
            try:
                _check_shared(self._client, shared)
            except BaseException:
                self.close()
                raise
        else:
            self._starting = threading.Thread(
                target=self._start_local, args=(workers,), name="mailsmith-dask-start", daemon=True
            )
            self._starting.start()

    def _start_local(self, workers: int) -> None:
        try:
            cluster = _local_cluster(workers)
            # parts and results straight between this process and the workers, not
            # through the scheduler: it runs in this process too, whose CPU reads the input
            client = Client(cluster, set_as_default=False, direct_to_workers=True)
        except BaseException as exc:  # raised in the build's thread by client()
            self._error = exc
            return
        with self._lock:
            if not self._closed:
                self._local, self._client = cluster, client
                return
        _close(client, cluster)  # the build stopped while the cluster started

    def client(self) -> Client:
        """The cluster's client, once a local cluster has started."""
        if self._starting is not None:
            self._starting.join(START_SECONDS)
        if self._error is not None:
            raise MailsmithError(
                f"cannot start a local Dask cluster: {self._error}",
                hint="run the build with --executor local, or start a cluster and pass --scheduler",
            )
        if self._client is None:
            raise MailsmithError(
                f"a local Dask cluster did not start within {START_SECONDS} s",
                hint="the machine may be overloaded: try fewer --workers",
            )
        return self._client

    def close(self) -> None:
        """Stop a local cluster's workers (at once: a render under way is abandoned) and
        disconnect; a local cluster still starting stops when it has started."""
        with self._lock:
            self._closed = True
            client, cluster = self._client, self._local
            self._client = self._local = None
        _close(client, cluster)


def _close(client: Client | None, cluster: LocalCluster | None) -> None:
    if client is not None:
        with suppress(Exception):  # the cluster may be half gone already
            client.close(timeout=CLOSE_SECONDS)
    if cluster is not None:
        with suppress(Exception):
            cluster.close(timeout=CLOSE_SECONDS)


class DaskExecutor:
    """Runs the unit on the workers of ``cluster``; results come back in input order."""

    def __init__(self, job: ChunkJob, cluster: DaskCluster) -> None:
        self._cluster = cluster
        self._parts = _Parts(job, POOL_PART)
        self._pending: set[Future[ChunkResult]] = set()
        self._client = cluster.client()
        # once per worker; a worker that joins later is sent it with its first part
        self._job = self._client.scatter(job, broadcast=True, hash=False)

    def submit(self, chunk: ValidatedChunk) -> Iterator[ChunkResult]:
        parts = self._parts(chunk)
        # the parts go straight to the workers, not through the scheduler's task graph
        data = self._client.scatter([part for part, _ in parts], hash=False)
        futures = [
            self._client.submit(_run_part, self._job, part, shard, pure=False)
            for part, (_, shard) in zip(data, parts, strict=True)
        ]
        self._pending.update(futures)
        return self._results(futures)

    def skip(self, chunk: ValidatedChunk) -> None:
        """Number a chunk's parts and run nothing (a resumed build's committed chunk)."""
        self._parts(chunk)

    @property
    def parts(self) -> int:
        """Parts numbered so far (submitted or skipped)."""
        return self._parts.count

    def _results(self, futures: list[Future[ChunkResult]]) -> Iterator[ChunkResult]:
        for future in futures:
            try:
                result: ChunkResult = future.result()
            except KilledWorker as exc:
                raise MailsmithError(
                    "a Dask worker died while rendering (out of memory, or killed)",
                    hint="give the workers more memory or lower profiles.chunk_size or "
                    f"output.shard_size; Dask says: {exc}",
                ) from None
            except FutureCancelledError as exc:  # the scheduler went away, or was restarted
                raise MailsmithError(
                    f"the Dask cluster dropped the build's work: {exc.reason}",
                    hint="check the scheduler and workers, and run the build again",
                ) from None
            self._pending.discard(future)
            future.release()
            yield result

    def close(self) -> None:
        """The driver consumed every result: stop the cluster."""
        self._cluster.close()

    def abort(self) -> None:
        """Cancel the parts not yet rendered and stop a local cluster's workers now, so none
        writes into the staging folder once this returns. On a cluster of its own, a part
        already running finishes on its worker: see docs/scale.md."""
        if self._pending:
            with suppress(Exception):  # the cluster may be half gone already
                self._client.cancel(list(self._pending), force=True)
        self._pending.clear()
        self._cluster.close()


def _run_part(job: ChunkJob, part: ValidatedChunk, shard: int) -> ChunkResult:
    """The task: ``job`` is the worker's own copy, unpickled once when it arrived.

    A part that starts after its build stopped and removed the staging folder (a cluster
    of its own goes on with the parts it had) writes nothing: writing would make the
    folder again, and leave it there."""
    root = getattr(job.files, "root", None)
    if root is not None and not os.path.isdir(root):
        raise OutputError("the build's staging folder is gone", file=root)
    return run_chunk(job, part, shard)


def dask_setup(worker: Any) -> None:
    """Run in each local worker process as it starts (its ``preload``, which also imports
    mailsmith there while the build reads its input). Ctrl-C reaches every process of the
    terminal's group: the build stops the cluster, so its workers ignore SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _local_cluster(workers: int) -> LocalCluster:
    """``workers`` single-threaded processes on the loopback interface, no dashboard.

    Dask spawns its worker processes, and each would import mailsmith (and pandas,
    Jinja...) again: seconds of CPU per worker. They are forked from a server process that
    imported it once instead (``forkserver``: a fresh single-threaded process, unlike this
    one, whose threads make a plain fork unsafe). A worker Dask restarts is spawned.
    """
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    with dask.config.set({"distributed.worker.multiprocessing-method": method, **QUIET}):
        if method == "forkserver":
            get_mp_context().set_forkserver_preload([__name__])  # after Dask set its own
        return LocalCluster(
            n_workers=max(workers, 1),
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
            preload=[__name__],
        )


def _remote_client(address: str) -> Client:
    """A client of the scheduler at ``address`` that has a worker; else a clear error."""
    hint = (
        "start a scheduler (`dask scheduler`) and workers (`dask worker ADDRESS`), or leave "
        "out --scheduler to run a local cluster of --workers processes"
    )
    try:
        client = Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(
            f"cannot reach the Dask scheduler at {address}: {exc}", field="--scheduler", hint=hint
        ) from None
    try:
        client.wait_for_workers(1, timeout=CONNECT_SECONDS)
    except (OSError, TimeoutError) as exc:
        client.close()
        raise ConfigError(
            f"the Dask scheduler at {address} has no worker ({exc})", field="--scheduler", hint=hint
        ) from None
    return client


def _check_shared(client: Client, folders: dict[str, str]) -> None:
    """Every worker sees each of ``folders`` (what it is -> its path) at the same path."""
    for what, folder in folders.items():
        seen: dict[str, Any] = client.run(os.path.isdir, folder)
        blind = sorted(worker for worker, found in seen.items() if not found)
        if blind:
            raise OutputError(
                f"{len(blind)} of {len(seen)} Dask workers cannot see {what} (first: {blind[0]})",
                file=folder,
                hint="every worker must mount it at the same path: put --out and the "
                "campaign on a shared file system (docs/scale.md)",
            )
