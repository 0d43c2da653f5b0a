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
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from renderer.build.bundle import FOLDER as BUNDLE_FOLDER
from renderer.build.bundle import BundleFiles, BundleFormat
from renderer.build.executors import (
    ChunkJob,
    ChunkResult,
    EmailOutput,
    Executor,
    make_executor,
)
from renderer.build.fingerprint import build_fingerprint
from renderer.build.inputs import InputFiles
from renderer.build.journal import Checkpoint, remove_parts_from
from renderer.build.mime import MIME_FORMATS, MimeFormat, delivery_warnings, mime_output
from renderer.build.output import OutputWriter, iter_manifest, write_failed
from renderer.build.pool import WorkerPool
from renderer.build.resume import resume_notes, skip_committed
from renderer.campaign import OUTPUT_FORMATS, Campaign
from renderer.check.runner import raise_for_static_errors
from renderer.coupons import load_pool
from renderer.runtime import CampaignRuntime
from renderer.specs import audience_spec, profile_file, schema_of, sql_warnings
from segments.audience.prepass import (
    CampaignAudience,
    finish_audience,
    prepare_audience,
    raise_for_warnings,
)
from segments.chunkmap import SERIAL
from segments.errors import ConfigError
from segments.experiments.assign import (
    sample_ratio_mismatch,
)
from segments.profiles.read import RawChunk, leave_interrupts_to_python
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
    (they are deleted with it; a folder that holds no build is never replaced);
    ``resume`` continues a build of the same inputs and options that was killed
    outright (:mod:`renderer.build.journal`), or starts one when there is none.
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
    resume: bool = False  # continue a killed build of this output folder
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
    shards: int = 0

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
        self.shards += result.shards

    def progress(self) -> Progress:
        return Progress(self.rows, self.rendered, self.rejected_count, self.holdout)

    def to_dict(self) -> dict[str, Any]:
        """The counts as JSON values (a journal's checkpoint), in the counters' order."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        for name, value in values.items():
            if isinstance(value, Counter):
                values[name] = dict(value)
        values["variants"] = {key: dict(counts) for key, counts in self.variants.items()}
        values["layouts"] = sorted(self.layouts)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BuildState:
        """The counts of :meth:`to_dict`; counters keep their order, so a resumed build's
        summary lists them as the uninterrupted build's does."""
        state = cls(**values)
        for name in ("reasons", "segments", "holdouts", "members"):
            setattr(state, name, Counter(values[name]))
        state.variants = {key: Counter(counts) for key, counts in values["variants"].items()}
        state.layouts = set(values["layouts"])
        return state


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
        # the unsubscribe secret, and a sender for eml/mbox, before anything is read
        format = self.options.format or campaign.output.format
        self._delivery_warnings = delivery_warnings(campaign, format, self.as_of)
        self._coupons = load_pool(campaign.coupons, campaign.base_dir, campaign.file)
        self._state = BuildState()
        self.notes: list[str] = []  # what a resumed build took over, or removed
        self._resumed: Checkpoint | None = None
        self._dask: DaskCluster | None = None

    def run(self) -> Iterator[Progress]:
        started = time.perf_counter()
        inputs = InputFiles(self._input_paths())  # before the first read
        # the pre-pass (when there is one) keeps its validated chunks for the render pass
        spool = ChunkSpool(self.out.resolve().parent)
        # the output folder is checked and locked first: a refusal costs nothing
        writer = self._writer()
        # --workers: processes for the pre-pass (validating, cleaning events) and the render
        pool = WorkerPool(self.options.workers, spool.folder) if self.options.workers > 1 else None
        try:  # from here on, whatever stops the build removes its staging folder
            self._dask = self._start_dask(writer.staging)
            if self._resumed is not None:  # the shards of chunks after its last checkpoint
                remove_parts_from(writer.staging / BUNDLE_FOLDER, self._resumed.parts)
            chunks = profile_file(self.campaign).chunks()
            first = next(chunks, None)
            schema = schema_of(self.campaign) or self._inferred_schema(first)
            self.spec = audience_spec(self.campaign, schema)
            self.audience = prepare_audience(
                self.spec,
                self.as_of,
                refit=self.options.refit,
                baseline=self.options.baseline,
                spool=spool,
                mapper=pool or SERIAL,
            )
            inputs.check()  # a pre-pass read the profiles (and events) to the end
            yield from self._render_pass(schema, first, chunks, spool, writer, inputs, pool)
            self.summary = self._summary(self._state, time.perf_counter() - started)
            self.summary.update(self._audience_stage(self._state, writer.staging))
            self.summary["warnings"] = [*self.summary["warnings"], *sql_warnings(self.campaign)]
            if self.options.strict:
                raise_for_warnings(self.summary["warnings"])
            self.summary.setdefault("warnings", []).extend(self._delivery_warnings)
            writer.commit(self.summary)
        except BaseException as exc:
            if pool is not None:
                pool.abort()
            writer.abort()
            if isinstance(exc, OSError):  # the readers report their own files: this is a write
                raise write_failed(exc, exc.filename or self.out) from None
            raise
        finally:
            with suppress(OSError):  # closing flushes: it fails again on a full disk
                spool.close()
            if self._dask is not None:  # stopped with its executor, or before it started
                self._dask.close()

    def _writer(self) -> OutputWriter:
        """The build's output, resumed from a killed build's when asked and possible."""
        given = self.options.as_of is not None or self.campaign.as_of is not None
        fingerprint = build_fingerprint(
            self.campaign,
            as_of=self.as_of,
            as_of_given=given,
            options=self._fingerprint_options(),
            out=self.out,
        )
        writer = OutputWriter(
            self.out,
            text=self.campaign.output.text,
            force=self.options.force,
            fingerprint=fingerprint,
            resume=self.options.resume,
        )
        self.notes = resume_notes(writer, self.options.resume)
        if writer.resumed is not None:
            self._resumed = writer.resumed.checkpoint
            self.as_of = datetime.fromisoformat(writer.resumed.fingerprint["as_of"])
        return writer

    def _fingerprint_options(self) -> dict[str, Any]:
        """The options that change the output's bytes (not the number of workers)."""
        options = self.options
        return {
            "format": options.format or self.campaign.output.format,
            "limit": options.limit,
            "sample": options.sample,
            "winner": dict(sorted(options.winner.items())),
            "exclude": [str(path.resolve()) for path in options.exclude],
            "refit": options.refit,
        }

    def _inferred_schema(self, first: RawChunk | None) -> ProfileSchema:
        source = self.campaign.profiles
        columns = [source.id_field, source.email_field]
        frame = first.frame if first else pd.DataFrame(columns=columns)
        return infer_schema(frame, source.id_field, source.email_field)

    def _input_paths(self) -> dict[str, Path]:
        """The input files to watch. A database source is not watched: each of its reads
        is one statement, which the database answers from one snapshot."""
        paths = {}
        if not self.campaign.profiles.is_sql:
            paths["profile file"] = self.campaign.path(self.campaign.profiles.path)
        if self.campaign.events is not None and not self.campaign.events.is_sql:
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
        pool: WorkerPool | None = None,
    ) -> Iterator[Progress]:
        """Segment, render and write every chunk; the counts go to ``self._state``."""
        self.runtime = CampaignRuntime(self.campaign, schema, self.as_of, self.audience)
        plan = self.runtime.segment_plan(
            self.options.winner, sample=self.options.sample, excluded=self._excluded_ids
        )
        todo = self._validated(spool, lambda: _chain(first, chunks))
        again = self._validated(spool, profile_file(self.campaign).chunks)  # coupons only
        codes = self._coupons.assign(plan, again) if self._coupons else None  # before a render
        job = ChunkJob(self.runtime, plan, self._emails(writer), codes)
        executor = self._executor(job, pool)  # it closes the pool
        resumed = self._resumed or Checkpoint()
        state = self._state = (
            BuildState.from_dict(resumed.state) if resumed.chunks else BuildState()
        )
        try:  # workers write files: all of them stop before the build commits or aborts
            with _fewer_collections():
                skip_committed(todo, resumed, executor)
                # with workers, one chunk is prepared while they render the one before
                ahead = 1 if self.options.workers > 1 or self.options.executor != "local" else 0
                in_flight: deque[tuple[Iterator[ChunkResult], int]] = deque()
                done = resumed.chunks
                for chunk in todo:
                    in_flight.append((executor.submit(chunk), executor.parts))
                    while len(in_flight) > ahead:
                        done += 1
                        _write_chunk(*in_flight.popleft(), done, writer, state)
                        yield state.progress()
                while in_flight:
                    done += 1
                    _write_chunk(*in_flight.popleft(), done, writer, state)
                    yield state.progress()
        except BaseException:
            executor.abort()  # a signal or an error: the renders under way are not waited for
            raise
        finally:
            executor.close()
        if not spool.complete:  # this pass read the profile file
            inputs.check("profile file")

    def _validated(
        self, spool: ChunkSpool, raw: Callable[[], Iterator[RawChunk]]
    ) -> Iterator[ValidatedChunk]:
        """The chunks up to ``--limit``: the pre-pass's spool, else ``raw()`` validated now."""
        if spool.complete:
            yield from _limited(iter(spool), self.options.limit)
            return
        validator = self.spec.validator()
        validated = (ValidatedChunk(*validator.validate(chunk)) for chunk in raw())
        yield from _limited(validated, self.options.limit)

    def _executor(self, job: ChunkJob, pool: WorkerPool | None) -> Executor:
        """The render's executor; it closes ``pool`` (the pre-pass's workers)."""
        if self._dask is not None:
            from renderer.build.dask_executor import DaskExecutor

            if pool is not None:  # the pre-pass is done with them
                pool.close()
            return DaskExecutor(job, self._dask)
        return make_executor(job, self.options.workers, pool)

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
        if format in MIME_FORMATS:
            mime: MimeFormat = "eml" if format == "eml" else "mbox"  # as checked
            return mime_output(writer.staging, mime, self.campaign, self.as_of)
        bundle: BundleFormat = "parquet" if format == "parquet" else "jsonl"  # as checked
        return BundleFiles(
            writer.staging, bundle, output.shard_size, text=output.text,
            compression=output.compression,
        )  # fmt: skip

    def _output_summary(self, state: BuildState) -> dict[str, Any]:
        """summary.json's ``output``: the emails' format, compression and shards."""
        output = self.campaign.output
        format = self.options.format or output.format
        if format == "files":
            return {"format": format, "compression": None, "shard_size": None, "shards": 0}
        # Parquet compresses its pages with zstd whatever output.compression says
        compression = "zstd" if format == "parquet" else output.compression
        return {
            "format": format,
            "compression": compression,
            "shard_size": output.shard_size,
            "shards": state.shards,
        }

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
            "output": self._output_summary(state),
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


def _write_chunk(
    results: Iterator[ChunkResult], parts: int, chunks: int, writer: OutputWriter, state: BuildState
) -> None:
    """A chunk's manifest lines (rendered and held out, in input-row order), then its
    rejections; the chunk's counts added to the build's, and the chunk committed to the
    journal (the first ``chunks`` chunks, ``parts`` parts, are written)."""
    for result in results:
        writer.write_lines(result.lines, result.rejected)
        state.add(result)
    writer.commit_chunk(chunks, parts, state.to_dict())


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
