"""``mailsmith build``: load, segment, render, write; every input row accounted for.

:func:`iter_build` is a generator of :class:`Progress` (one per chunk) so a CLI
can drive a progress bar and a library user can stream; :func:`build_campaign`
runs it to the end and returns the summary. Always::

    input_rows == rendered + rejected + holdout + excluded + not_sampled
"""

from __future__ import annotations

import gc
import os
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from renderer.build.bundle import BundleFiles, BundleFormat
from renderer.build.executors import (
    ChunkJob,
    ChunkResult,
    EmailOutput,
    Executor,
    make_executor,
)
from renderer.build.inputs import InputFiles
from renderer.build.output import OutputWriter, iter_manifest, write_failed
from renderer.campaign import OUTPUT_FORMATS, Campaign
from renderer.check.runner import raise_for_static_errors
from renderer.runtime import CampaignRuntime
from renderer.specs import audience_spec, schema_of
from segments.audience.prepass import (
    CampaignAudience,
    finish_audience,
    prepare_audience,
    raise_for_warnings,
)
from segments.errors import ConfigError
from segments.experiments.assign import (
    sample_ratio_mismatch,
)
from segments.profiles.read import RawChunk, leave_interrupts_to_python, read_chunks
from segments.profiles.schema import ProfileSchema, infer_schema
from segments.profiles.spool import ChunkSpool, ValidatedChunk

if TYPE_CHECKING:
    from renderer.build.dask_executor import DaskCluster


@dataclass
class Progress:
    """Where a running build stands, after each chunk."""

    rows: int
    rendered: int
    rejected: int
    holdout: int = 0


EXECUTORS = ("local", "dask")


@dataclass
class BuildOptions:
    """How to run a build (the CLI's options).

    ``sample`` renders a deterministic share of the audience (test cohort);
    ``winner`` forces a variant per experiment; ``exclude`` names earlier
    manifests whose recipients are skipped (already sent or held out);
    ``force`` replaces an earlier build's folder even when files were added to it
    (they are deleted with it; a folder that holds no build is never replaced).
    """

    out: Path | None = None
    as_of: datetime | None = None
    limit: int | None = None
    workers: int = 1  # processes that render and write; 0: one per core
    sample: float | None = None
    winner: dict[str, str] = field(default_factory=dict)
    exclude: list[Path] = field(default_factory=list)
    strict: bool = False  # audience warnings (small segment, drift) fail the build
    refit: bool = False  # fit the cluster models again instead of loading them
    baseline: Path | None = None  # an earlier build to compare feature distributions with
    force: bool = False  # replace the output folder even if files were added to it
    check: bool = True  # refuse to start on the static errors of `check` (unknown names...)
    format: str | None = None  # files, jsonl or parquet; None: the campaign's output.format
    executor: str = "local"  # local: this process or a pool; dask: renderer/build/dask_executor
    scheduler: str | None = None  # dask: a scheduler's address; None: a local cluster

    def __post_init__(self) -> None:
        if self.workers == 0:
            self.workers = _cores()
        if self.executor not in EXECUTORS:
            raise ConfigError(
                f"unknown executor {self.executor!r}",
                field="--executor",
                hint="choose " + ", ".join(EXECUTORS),
            )
        if self.scheduler is not None and self.executor != "dask":
            raise ConfigError(
                "--scheduler names a Dask scheduler", hint="add --executor dask to use it"
            )
        if self.format is not None and self.format not in OUTPUT_FORMATS:
            raise ConfigError(
                f"unknown output format {self.format!r}",
                field="--format",
                hint="choose " + ", ".join(OUTPUT_FORMATS),
            )


@dataclass
class BuildState:
    """Counters a build accumulates from its chunks; turned into summary.json at the end."""

    rows: int = 0
    rendered: int = 0
    holdout: int = 0
    rejected_count: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    segments: Counter[str] = field(default_factory=Counter)
    variants: dict[str, Counter[str]] = field(default_factory=dict)
    holdouts: Counter[str] = field(default_factory=Counter)  # per experiment
    layouts: set[str] = field(default_factory=set)
    excluded: int = 0
    not_sampled: int = 0
    evaluated: int = 0  # profiles whose segments were evaluated (the audience)
    members: Counter[str] = field(default_factory=Counter)

    def add(self, result: ChunkResult) -> None:
        self.rows += result.input_rows
        self.rendered += result.rendered
        self.holdout += result.holdout
        self.rejected_count += len(result.rejected)
        self.reasons.update(r.reason for r in result.rejected)
        self.segments.update(result.segments)
        for key, counts in result.variants.items():
            self.variants.setdefault(key, Counter()).update(counts)
        self.holdouts.update(result.holdouts)
        self.layouts |= result.layouts
        self.excluded += result.excluded
        self.not_sampled += result.not_sampled
        self.evaluated += result.evaluated
        self.members.update(result.members)

    def progress(self) -> Progress:
        return Progress(self.rows, self.rendered, self.rejected_count, self.holdout)


class CampaignBuild:
    """One build of a campaign. Iterate :meth:`run`; read :attr:`summary` after."""

    def __init__(self, campaign: Campaign, options: BuildOptions | None = None) -> None:
        self.campaign = campaign
        self.options = options or BuildOptions()
        self.as_of = campaign.reference_time(self.options.as_of)
        # relative to the working directory, not the campaign (the demo ships read-only)
        self.out = self.options.out or Path(campaign.output.dir)
        self.summary: dict[str, Any] = {}
        self.runtime: CampaignRuntime | None = None
        self.audience: CampaignAudience | None = None
        self._excluded_ids = read_manifest_ids(self.options.exclude)
        self._state = BuildState()
        self._dask: DaskCluster | None = None

    def run(self) -> Iterator[Progress]:
        started = time.perf_counter()
        source = self.campaign.profiles
        inputs = InputFiles(self._input_paths())  # before the first read
        # the pre-pass (when there is one) keeps its validated chunks for the render pass
        spool = ChunkSpool(self.out.resolve().parent)
        # the output folder is checked and locked first: a refusal costs nothing
        writer = OutputWriter(self.out, text=self.campaign.output.text, force=self.options.force)
        try:  # from here on, whatever stops the build removes its staging folder
            self._dask = self._start_dask(writer.staging)
            chunks = read_chunks(
                self.campaign.path(source.path),
                source.resolved_format,
                source.chunk_size,
                **source.reader_options,
            )
            first = next(chunks, None)
            schema = schema_of(self.campaign) or self._inferred_schema(first)
            self.spec = audience_spec(self.campaign, schema)
            self.audience = prepare_audience(
                self.spec,
                self.as_of,
                refit=self.options.refit,
                baseline=self.options.baseline,
                spool=spool,
            )
            inputs.check()  # a pre-pass read the profiles (and events) to the end
            yield from self._render_pass(schema, first, chunks, spool, writer, inputs)
            self.summary = self._summary(self._state, time.perf_counter() - started)
            self.summary.update(self._audience_stage(self._state, writer.staging))
            if self.options.strict:
                raise_for_warnings(self.summary["warnings"])
            writer.commit(self.summary)
        except BaseException as exc:
            writer.abort()
            if isinstance(exc, OSError):  # the readers report their own files: this is a write
                raise write_failed(exc, exc.filename or self.out) from None
            raise
        finally:
            with suppress(OSError):  # closing flushes: it fails again on a full disk
                spool.close()
            if self._dask is not None:  # stopped with its executor, or before it started
                self._dask.close()

    def _inferred_schema(self, first: RawChunk | None) -> ProfileSchema:
        source = self.campaign.profiles
        columns = [source.id_field, source.email_field]
        frame = first.frame if first else pd.DataFrame(columns=columns)
        return infer_schema(frame, source.id_field, source.email_field)

    def _input_paths(self) -> dict[str, Path]:
        paths = {"profile file": self.campaign.path(self.campaign.profiles.path)}
        if self.campaign.events is not None:
            paths["events file"] = self.campaign.path(self.campaign.events.path)
        return paths

    def _render_pass(
        self,
        schema: ProfileSchema,
        first: RawChunk | None,
        chunks: Iterator[RawChunk],
        spool: ChunkSpool,
        writer: OutputWriter,
        inputs: InputFiles,
    ) -> Iterator[Progress]:
        """Segment, render and write every chunk; the counts go to ``self._state``."""
        self.runtime = CampaignRuntime(self.campaign, schema, self.as_of, self.audience)
        plan = self.runtime.segment_plan(
            self.options.winner, sample=self.options.sample, excluded=self._excluded_ids
        )
        if spool.complete:  # the pre-pass validated every chunk already
            validated: Iterator[ValidatedChunk] = iter(spool)
        else:
            validator = self.spec.validator()
            validated = (ValidatedChunk(*validator.validate(c)) for c in _chain(first, chunks))
        executor = self._executor(ChunkJob(self.runtime, plan, self._emails(writer)))
        state = self._state = BuildState()
        try:  # workers write files: all of them stop before the build commits or aborts
            with _fewer_collections():
                # with workers, one chunk is prepared while they render the one before
                ahead = 1 if self.options.workers > 1 or self.options.executor != "local" else 0
                in_flight: deque[Iterator[ChunkResult]] = deque()
                for chunk in _limited(validated, self.options.limit):
                    in_flight.append(executor.submit(chunk))
                    while len(in_flight) > ahead:
                        _write_chunk(in_flight.popleft(), writer, state)
                        yield state.progress()
                while in_flight:
                    _write_chunk(in_flight.popleft(), writer, state)
                    yield state.progress()
        except BaseException:
            executor.abort()  # a signal or an error: the renders under way are not waited for
            raise
        finally:
            executor.close()
        if not spool.complete:  # this pass read the profile file
            inputs.check("profile file")

    def _executor(self, job: ChunkJob) -> Executor:
        if self._dask is not None:
            from renderer.build.dask_executor import DaskExecutor

            return DaskExecutor(job, self._dask)
        return make_executor(job, self.options.workers)

    def _start_dask(self, staging: Path) -> DaskCluster | None:
        """With ``--executor dask``, the cluster, starting while the build reads its input."""
        if self.options.executor != "dask":
            return None
        from renderer.build.dask_executor import DaskCluster  # Dask loads only here

        shared = {"the output folder": str(staging), "the campaign": str(self.campaign.base_dir)}
        return DaskCluster(self.options.workers, self.options.scheduler, shared)

    def _emails(self, writer: OutputWriter) -> EmailOutput:
        """Where the emails go: a file or two each, or shards (``output.format``)."""
        output = self.campaign.output
        format = self.options.format or output.format
        if format == "files":
            return writer.files
        bundle: BundleFormat = "parquet" if format == "parquet" else "jsonl"  # as checked
        return BundleFiles(writer.staging, bundle, output.shard_size, text=output.text)

    def _audience_stage(self, state: BuildState, folder: Path) -> dict[str, Any]:
        assert self.audience is not None
        return finish_audience(
            self.spec,
            self.audience,
            folder,
            state.members,
            state.evaluated,
            baseline=self.options.baseline,
        )

    def _summary(self, state: BuildState, seconds: float) -> dict[str, Any]:
        assert self.runtime is not None
        segment_names = [n for n in self.runtime.segments.names if not n.startswith("block:")]
        summary: dict[str, Any] = {
            "campaign": self.campaign.name,
            "template": self.campaign.template,
            "as_of": self.as_of.isoformat(),
            "input_rows": state.rows,
            "rendered": state.rendered,
            "rejected": state.rejected_count,
            "holdout": state.holdout,
            "excluded": state.excluded,
            "not_sampled": state.not_sampled,
            "rejected_by_reason": dict(sorted(state.reasons.items())),
            "segments": {name: state.segments.get(name, 0) for name in segment_names},
            "experiments": self._experiment_summary(state),
            "options": {
                "sample": self.options.sample,
                "winner": dict(self.options.winner),
                "exclude": [str(p) for p in self.options.exclude],
                "limit": self.options.limit,
            },
            "layouts_used": len(state.layouts),
            "timing": {
                "duration_seconds": round(seconds, 3),
                "recipients_per_second": round(state.rows / seconds, 1) if seconds else None,
            },
        }
        return summary

    def _experiment_summary(self, state: BuildState) -> dict[str, Any]:
        assert self.runtime is not None
        result = {}
        for experiment in self.runtime.experiments:
            counts = state.variants.get(experiment.key, Counter())
            assigned = {v.name: counts.get(v.name, 0) for v in experiment.variants}
            entry: dict[str, Any] = {
                "weights": experiment.weights,
                "counts": assigned,
                "outside": counts.get("None", 0),
                "holdout": state.holdouts.get(experiment.key, 0),
                "holdout_share": experiment.holdout,
                "audience": experiment.audience,
                "layer": experiment.layer,
            }
            if experiment.key not in self.options.winner:
                srm = sample_ratio_mismatch(assigned, experiment.weights)
                entry["srm"] = {
                    "chi2": round(srm.chi2, 4),
                    "p_value": round(srm.p_value, 6),
                    "mismatch": srm.mismatch,
                }
            result[experiment.key] = entry
        return result


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Less cyclic garbage collection while rendering; restored afterwards.

    Rendering allocates many short-lived dicts and lists (records, contexts),
    which with the default thresholds triggers frequent collections that also
    walk the long-lived runtime and audience objects. Those are frozen (moved
    out of the collector's view) and young collections run less often: about 5%
    of a build's time (bench/bench_build.py). Cycles are still collected.
    """
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1_000)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def read_manifest_ids(paths: list[Path]) -> frozenset[str]:
    """Recipient ids listed in earlier manifests (rendered or held out)."""
    return frozenset(str(entry["id"]) for path in paths for entry in iter_manifest(path))


def _write_chunk(results: Iterator[ChunkResult], writer: OutputWriter, state: BuildState) -> None:
    """A chunk's manifest lines (rendered and held out, in input-row order), then its
    rejections; the chunk's counts added to the build's."""
    for result in results:
        writer.write_lines(result.lines, result.rejected)
        state.add(result)


def parse_max_rejected(text: str) -> tuple[float, bool]:
    """``"100"`` -> (100, False) a count; ``"5%"`` -> (0.05, True) a share."""
    text = text.strip()
    try:
        if text.endswith("%"):
            return float(text[:-1]) / 100, True
        return float(int(text)), False
    except ValueError:
        raise ConfigError(
            f"--max-rejected {text!r} is neither a count nor a percentage", hint="write 100 or 5%"
        ) from None


def too_many_rejected(summary: dict[str, Any], max_rejected: str | None) -> str | None:
    """A message when the build rejected more rows than allowed, else None."""
    if max_rejected is None:
        return None
    limit, is_share = parse_max_rejected(max_rejected)
    rejected, rows = summary["rejected"], summary["input_rows"]
    value = rejected / rows if is_share and rows else rejected
    if value > limit:
        allowed = f"{limit:.1%}" if is_share else f"{int(limit)}"
        return f"{rejected} of {rows} rows rejected, more than --max-rejected {allowed}"
    return None


def _chain(first: RawChunk | None, rest: Iterator[RawChunk]) -> Iterator[RawChunk]:
    if first is not None:
        yield first
        yield from rest


def _limited(chunks: Iterator[ValidatedChunk], limit: int | None) -> Iterator[ValidatedChunk]:
    """The chunks covering the first ``limit`` input rows (valid or rejected)."""
    if limit is None:
        yield from chunks
        return
    remaining = limit
    for chunk in chunks:
        if remaining <= 0:
            return
        if chunk.rows > remaining:
            chunk = chunk.up_to(chunk.row_numbers()[remaining - 1])
        remaining -= chunk.rows
        yield chunk


def iter_build(
    campaign: Campaign, options: BuildOptions | None = None
) -> tuple[CampaignBuild, Iterator[Progress]]:
    """Start a build; iterate the progress, then read ``build.summary``.

    Unless ``options.check`` is off, the static part of ``mailsmith check`` runs first
    and a campaign with errors raises :class:`CheckFailedError` before anything is read.
    """
    leave_interrupts_to_python()  # Ctrl-C stops the build, whatever is running
    build = CampaignBuild(campaign, options)
    if build.options.check:
        raise_for_static_errors(campaign)
    return build, build.run()


def build_campaign(campaign: Campaign, options: BuildOptions | None = None) -> dict[str, Any]:
    """Build a campaign to the end and return its summary."""
    build, progress = iter_build(campaign, options)
    for _ in progress:
        pass
    return build.summary


def _cores() -> int:
    """The cores this process may run on (all of the machine's where that is unknown)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
