"""``mailsmith build``: load, segment, render, write; every input row accounted for.

:func:`iter_build` is a generator of :class:`Progress` (one per chunk) so a CLI
can drive a progress bar and a library user can stream; :func:`build_campaign`
runs it to the end and returns the summary. Always::

    input_rows == rendered + rejected + holdout + excluded + not_sampled
"""

from __future__ import annotations

import gc
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from renderer.build.executors import BatchRenderer, WrittenBatch
from renderer.build.output import OutputWriter, iter_manifest, write_failed
from renderer.campaign import Campaign
from renderer.runtime import CampaignRuntime, ProfileBatch, Rendered
from renderer.specs import audience_spec, schema_of
from segments.audience.prepass import (
    CampaignAudience,
    finish_audience,
    prepare_audience,
    raise_for_warnings,
)
from segments.errors import ConfigError
from segments.experiments.assign import (
    HOLDOUT_SUFFIX,
    assign_frame,
    sample_mask,
    sample_ratio_mismatch,
)
from segments.profiles.read import RawChunk, Rejection, read_chunks
from segments.profiles.schema import ProfileSchema, infer_schema, to_records
from segments.profiles.spool import ChunkSpool, ValidatedChunk


@dataclass
class Progress:
    """Where a running build stands, after each chunk."""

    rows: int
    rendered: int
    rejected: int
    holdout: int = 0


@dataclass
class BuildOptions:
    """How to run a build (the CLI's options).

    ``sample`` renders a deterministic share of the audience (test cohort);
    ``winner`` forces a variant per experiment; ``exclude`` names earlier
    manifests whose recipients are skipped (already sent or held out).
    """

    out: Path | None = None
    as_of: datetime | None = None
    limit: int | None = None
    workers: int = 1
    sample: float | None = None
    winner: dict[str, str] = field(default_factory=dict)
    exclude: list[Path] = field(default_factory=list)
    strict: bool = False  # audience warnings (small segment, drift) fail the build
    refit: bool = False  # fit the cluster models again instead of loading them
    baseline: Path | None = None  # an earlier build to compare feature distributions with


@dataclass
class BuildState:
    """Counters a build accumulates; turned into summary.json at the end."""

    rows: int = 0
    rendered: int = 0
    holdout: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    segments: Counter[str] = field(default_factory=Counter)
    variants: dict[str, Counter[str]] = field(default_factory=dict)
    held_out: Counter[str] = field(default_factory=Counter)
    rejected_count: int = 0
    layouts: set[str] = field(default_factory=set)
    excluded: int = 0
    not_sampled: int = 0
    evaluated: int = 0  # profiles whose segments were evaluated (the audience)
    members: Counter[str] = field(default_factory=Counter)

    def progress(self) -> Progress:
        return Progress(self.rows, self.rendered, self.rejected_count, self.holdout)


class _Holdout(NamedTuple):
    """A held-out recipient's manifest line (the arguments of ``write_holdout``)."""

    row: int
    id: str
    email: str
    segments: tuple[str, ...]
    variants: dict[str, str | None]


@dataclass
class _ChunkInFlight:
    rows: int  # input rows the chunk covers
    results: Iterator[WrittenBatch]  # in input order; with workers, already submitted
    rejected: list[Rejection]  # rows the validation rejected
    holdouts: list[_Holdout]  # in input-row order


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
        self._state_holdouts: Counter[str] = Counter()
        self._renderer: BatchRenderer | None = None

    def run(self) -> Iterator[Progress]:
        started = time.perf_counter()
        source = self.campaign.profiles
        chunks = read_chunks(
            self.campaign.path(source.path),
            source.resolved_format,
            source.chunk_size,
            **source.reader_options,
        )
        first = next(chunks, None)
        schema = schema_of(self.campaign) or infer_schema(
            first.frame if first else pd.DataFrame(columns=[source.id_field, source.email_field]),
            source.id_field,
            source.email_field,
        )
        # the pre-pass (when there is one) keeps its validated chunks for the render pass
        spool = ChunkSpool(self.out.resolve().parent)
        try:
            self.spec = audience_spec(self.campaign, schema)
            self.audience = prepare_audience(
                self.spec,
                self.as_of,
                refit=self.options.refit,
                baseline=self.options.baseline,
                spool=spool,
            )
            yield from self._render_pass(schema, first, chunks, spool, started)
        except OSError as exc:  # the readers report their own files: this is a write
            raise write_failed(exc, exc.filename or self.out) from None
        finally:
            spool.close()

    def _render_pass(
        self,
        schema: ProfileSchema,
        first: RawChunk | None,
        chunks: Iterator[RawChunk],
        spool: ChunkSpool,
        started: float,
    ) -> Iterator[Progress]:
        self.runtime = CampaignRuntime(self.campaign, schema, self.as_of, self.audience)
        _check_winners(self.runtime, self.options.winner)
        if spool.complete:  # the pre-pass validated every chunk already
            validated: Iterator[ValidatedChunk] = iter(spool)
        else:
            validator = self.spec.validator()
            validated = (ValidatedChunk(*validator.validate(c)) for c in _chain(first, chunks))
        writer = OutputWriter(self.out, text=self.campaign.output.text)
        try:  # from here on, whatever stops the build removes its staging folder
            self._renderer = BatchRenderer(self.runtime, writer.files, self.options.workers)
            state = BuildState()
            with _fewer_collections():
                # with workers, one chunk is prepared while they render the one before
                ahead = 1 if self.options.workers > 1 else 0
                in_flight: deque[_ChunkInFlight] = deque()
                for chunk in _limited(validated, self.options.limit):
                    in_flight.append(self._start_chunk(chunk, state))
                    while len(in_flight) > ahead:
                        self._finish_chunk(in_flight.popleft(), writer, state)
                        yield state.progress()
                while in_flight:
                    self._finish_chunk(in_flight.popleft(), writer, state)
                    yield state.progress()
            self.summary = self._summary(state, time.perf_counter() - started)
            self.summary.update(self._audience_stage(state, writer.staging))
            if self.options.strict:
                raise_for_warnings(self.summary["warnings"])
            self._renderer.close()  # workers write files: all of them stop first
            writer.commit(self.summary)
        except BaseException:
            if self._renderer is not None:
                self._renderer.close()
            writer.abort()
            raise

    def _start_chunk(self, chunk: ValidatedChunk, state: BuildState) -> _ChunkInFlight:
        """Segments, variants and records of a chunk; its rendering handed to the renderer
        (with workers, it starts now: the next chunk is prepared while they render)."""
        assert self.runtime is not None
        runtime = self.runtime
        valid = chunk.valid
        ids = valid[runtime.schema.id_field].astype(str)
        keep = self._audience_filter(ids, state)
        valid, ids = valid[keep], ids[keep]
        membership = runtime.segments.evaluate_frame(valid, self.as_of)
        state.evaluated += len(membership)
        state.members.update(membership.sum().to_dict())
        names = list(membership.columns)
        segment_lists = [
            tuple(n for n, hit in zip(names, row, strict=True) if hit)
            for row in membership.to_numpy()
        ]
        variants, holdout = self._assign(ids, membership)
        # derived fields joined for the whole chunk at once (cheaper than per record)
        records = to_records(runtime.segments.enrich(valid), runtime.field_types)
        rows = [int(row) for row in valid.index]
        send = [i for i, held in enumerate(holdout) if not held]
        batch = ProfileBatch(
            [rows[i] for i in send],
            [records[i] for i in send],
            [segment_lists[i] for i in send],
            [variants[i] for i in send],
            derived_filled=True,
        )
        email_field = runtime.schema.email_field
        holdouts = [
            _Holdout(
                rows[i],
                ids.iloc[i],
                str(records[i].get(email_field)),
                segment_lists[i],
                variants[i],
            )
            for i, held in enumerate(holdout)
            if held
        ]
        assert self._renderer is not None
        results = self._renderer.iter_render(batch)
        return _ChunkInFlight(chunk.rows, results, list(chunk.rejected), holdouts)

    def _finish_chunk(self, work: _ChunkInFlight, writer: OutputWriter, state: BuildState) -> None:
        """Manifest lines in input-row order (holdouts between the rendered), then errors."""
        state.rows += work.rows
        state.holdout += len(work.holdouts)
        holdouts = iter(work.holdouts)
        held = next(holdouts, None)
        render_rejected = []
        # rendered emails are written as each sub-batch is done: memory stays flat
        for result in work.results:
            for item, line in zip(result.rendered, result.lines, strict=True):
                while held is not None and held.row < item.row:
                    writer.write_holdout(*held)
                    held = next(holdouts, None)
                writer.write_line(line)
            render_rejected.extend(result.rejected)
            _count_rendered(result.rendered, state)
        while held is not None:
            writer.write_holdout(*held)
            held = next(holdouts, None)
        all_rejected = sorted(work.rejected + render_rejected, key=lambda r: r.row)
        writer.write((), all_rejected)
        state.rejected_count += len(all_rejected)
        state.reasons.update(r.reason for r in all_rejected)

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

    def _audience_filter(self, ids: pd.Series, state: BuildState) -> pd.Series:
        keep = pd.Series(True, index=ids.index)
        if self._excluded_ids:
            excluded = ids.isin(self._excluded_ids)
            state.excluded += int(excluded.sum())
            keep &= ~excluded
        if self.options.sample is not None:
            sampled = sample_mask(ids, self.options.sample)
            state.not_sampled += int((keep & ~sampled).sum())
            keep &= sampled
        return keep

    def _assign(
        self, ids: pd.Series, membership: pd.DataFrame
    ) -> tuple[list[dict[str, str | None]], list[bool]]:
        assert self.runtime is not None
        experiments = self.runtime.experiments
        if not experiments:
            return [{} for _ in range(len(ids))], [False] * len(ids)
        frame = assign_frame(experiments, ids, membership)
        for key, name in self.options.winner.items():
            in_audience = frame[key].notna()
            frame.loc[in_audience, key] = name
        keys = [e.key for e in experiments]
        variants = [
            dict(zip(keys, row, strict=True)) for row in frame[keys].itertuples(index=False)
        ]
        for experiment in experiments:
            self._state_holdouts[experiment.key] += int(
                frame[experiment.key + HOLDOUT_SUFFIX].sum()
            )
        return variants, frame["holdout"].tolist()

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
                "holdout": self._state_holdouts.get(experiment.key, 0),
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


def _check_winners(runtime: CampaignRuntime, winner: dict[str, str]) -> None:
    experiments = {e.key: e for e in runtime.experiments}
    for key, name in winner.items():
        if key not in experiments:
            raise ConfigError(
                f"--winner: no experiment {key!r}",
                file=runtime.campaign.file,
                hint=f"experiments: {', '.join(experiments) or '(none)'}",
            )
        if name not in experiments[key].weights:
            raise ConfigError(
                f"--winner: experiment {key!r} has no variant {name!r}",
                file=runtime.campaign.file,
                hint=f"variants: {', '.join(experiments[key].weights)}",
            )


def _count_rendered(rendered: list[Rendered], state: BuildState) -> None:
    state.rendered += len(rendered)
    for item in rendered:
        state.layouts.add(item.layout)
        state.segments.update(s for s in item.segments if not s.startswith("block:"))
        for key, name in item.variants.items():
            state.variants.setdefault(key, Counter())[str(name)] += 1


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
    """Start a build; iterate the progress, then read ``build.summary``."""
    build = CampaignBuild(campaign, options)
    return build, build.run()


def build_campaign(campaign: Campaign, options: BuildOptions | None = None) -> dict[str, Any]:
    """Build a campaign to the end and return its summary."""
    build, progress = iter_build(campaign, options)
    for _ in progress:
        pass
    return build.summary
