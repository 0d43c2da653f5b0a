"""A preview session: a campaign loaded once, any recipient rendered on demand.

:class:`PreviewSession` does the slow part of ``mailsmith render`` once: it loads the
campaign, runs the audience stage (the build's own pre-pass, when the campaign needs
one), validates every profile and keeps the valid rows in memory, indexed by id and
email, with the rejected rows and their reasons. :meth:`PreviewSession.render` then
runs the build's two stages on the recipient's one row
(:func:`segments.batch.segment_chunk`, :func:`renderer.runtime.render_batch`), so
its HTML and text are the bytes the build writes for that recipient.

:meth:`PreviewSession.reload` compiles again after a file changed. A content change
(template, block) recompiles the templates over the same audience; anything else loads
the campaign again. A failure never raises: it is kept as a :class:`Problem` (file,
line, message, a few source lines), the last good compile keeps serving, and the next
successful reload clears it.

A session is shared by the threads of a web server: a reload builds a new state
aside and swaps it in with one assignment; rendering takes a lock (the compiled
templates' caches are not meant to be filled by two threads at once).
"""

from __future__ import annotations

import contextlib
import pickle
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from renderer.campaign import Campaign, load_campaign
from renderer.coupons import CouponCodes, load_pool
from renderer.reports.segments import campaign_schema
from renderer.runtime import CampaignRuntime, Rendered, render_batch
from renderer.specs import audience_spec, content_folders
from segments.audience.prepass import AudienceSpec, CampaignAudience, prepare_audience
from segments.batch import SegmentedBatch, SegmentPlan, segment_chunk
from segments.errors import ConfigError, MailsmithError, ProfileDataError
from segments.profiles.read import Rejection
from segments.profiles.schema import ProfileSchema
from segments.profiles.spool import ChunkSpool, ValidatedChunk

EXCERPT_LINES = 3  # source lines shown on each side of an error's line
WARM_SECONDS = 60.0  # at most this long warming the caches after a (re)load
Refusal = Literal["unknown", "rejected", "holdout"]


class NoEmailError(ProfileDataError):
    """The build sends this recipient no email: ``refusal`` says why (``unknown`` id,
    ``rejected`` row, ``holdout`` of an experiment)."""

    def __init__(self, message: str, *, refusal: Refusal, **context: Any) -> None:
        super().__init__(message, **context)
        self.refusal = refusal

    def __reduce__(self) -> Any:
        return (_rebuild_refusal, (self.message, self.refusal, self.context()))


def _rebuild_refusal(message: str, refusal: Refusal, context: dict[str, Any]) -> NoEmailError:
    return NoEmailError(message, refusal=refusal, **context)


class NotLoadedError(ConfigError):
    """The campaign has not loaded yet (its files have an error): nothing to show."""


@dataclass(frozen=True)
class Problem:
    """An error met while loading or compiling, as data: where, what, and the source
    lines around it (``excerpt``: (line number, text) pairs)."""

    kind: str
    message: str
    file: str | None = None
    line: int | None = None
    hint: str | None = None
    excerpt: tuple[tuple[int, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "kind": self.kind,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "hint": self.hint,
            "excerpt": [list(pair) for pair in self.excerpt],
        }


@dataclass(frozen=True)
class Recipient:
    """One valid profile as the build sees it: segments, variants, holdouts."""

    id: str
    email: str
    row: int
    segments: tuple[str, ...]
    variants: Mapping[str, str | None]
    held_out: tuple[str, ...]
    clusters: tuple[str, ...] = ()  # ``cluster=label``, one per cluster model

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the id and email are the designer's own data, shown to them)."""
        return {
            "id": self.id,
            "email": self.email,
            "row": self.row,
            "segments": [s for s in self.segments if not s.startswith("block:")],
            "variants": dict(self.variants),
            "held_out": list(self.held_out),
            "clusters": list(self.clusters),
        }


class _MemorySpool(ChunkSpool):
    """The pre-pass's validated chunks, kept in memory: the session holds them anyway."""

    def __init__(self) -> None:
        super().__init__(Path("."))
        self.kept: list[ValidatedChunk] = []

    def add(self, chunk: ValidatedChunk) -> None:
        self.kept.append(chunk)

    def add_packed(self, packed: bytes) -> None:
        """A chunk a worker (or the pre-pass) pickled for a file spool: kept unpickled."""
        valid, rejected = pickle.loads(packed)  # the pre-pass's own bytes
        self.kept.append(ValidatedChunk(valid, rejected))

    def __iter__(self) -> Iterator[ValidatedChunk]:
        return iter(self.kept)


@dataclass
class Audience:
    """What loading the campaign gives: the profiles validated once, and the audience
    stage. Replaced only when the campaign, segments or data files change."""

    campaign: Campaign
    schema: ProfileSchema
    as_of: datetime
    audience: CampaignAudience
    chunks: list[ValidatedChunk]  # as the build's render pass gets them

    @cached_property
    def rejections(self) -> list[Rejection]:
        """Every rejected row, in file order."""
        return [r for chunk in self.chunks for r in chunk.rejected]

    def rejection_of(self, recipient_id: str) -> Rejection | None:
        """The first rejection of a row with this id (the build's errors.jsonl order)."""
        return next((r for r in self.rejections if r.id == recipient_id), None)


@dataclass
class Compiled:
    """The templates compiled over an :class:`Audience`, and every chunk segmented as
    the build segments it (nothing forced): records, segments, variants, holdouts."""

    runtime: CampaignRuntime
    batches: list[SegmentedBatch]
    recipients: list[Recipient] = field(default_factory=list)
    where: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (batch, index)
    plans: dict[tuple[tuple[str, str], ...], SegmentPlan] = field(default_factory=dict)
    codes: CouponCodes | None = None  # the build's coupon codes, given at render

    def __post_init__(self) -> None:
        email_field = self.runtime.schema.email_field
        cluster_names = [c.name for c in self.runtime.audience.document.clusters]
        for number, batch in enumerate(self.batches):
            for index, rid in enumerate(batch.ids):
                if rid in self.where:  # the validator rejects duplicates; first one wins
                    continue
                self.where[rid] = (number, index)
                self.recipients.append(
                    Recipient(
                        id=rid,
                        email=str(batch.records[index].get(email_field, "")),
                        row=batch.rows[index],
                        segments=batch.segments[index],
                        variants=batch.variants[index],
                        held_out=batch.held_out[index],
                        clusters=tuple(
                            f"{name}={batch.records[index].get(name)}" for name in cluster_names
                        ),
                    )
                )
        self.by_id = {r.id: i for i, r in enumerate(self.recipients)}

    def plan(self, forced: Mapping[str, str]) -> SegmentPlan:
        """The build's plan, or a preview's with ``forced`` variants (checked: an unknown
        experiment or arm is a ConfigError listing those that exist)."""
        key = tuple(sorted(forced.items()))
        plan = self.plans.get(key)
        if plan is None:
            if forced:
                plan = self.runtime.segment_plan(forced, force_holdouts=True)
            else:
                plan = self.runtime.segment_plan()
            self.plans[key] = plan
        return plan

    def block_rules(self) -> dict[str, Any]:
        """The blocks' inline ``show_if`` rules: segmenting depends on them."""
        blocks = self.runtime.assembled.blocks.values()
        return {b.name: b.show_if for b in blocks if isinstance(b.show_if, dict)}


def load_audience(campaign_file: Path, as_of: datetime | None) -> Audience:
    """Load the campaign, run its audience stage and validate every profile once."""
    campaign = load_campaign(campaign_file)
    schema = campaign_schema(campaign)
    moment = campaign.reference_time(as_of)
    spec = audience_spec(campaign, schema)
    spool = _MemorySpool()
    audience = prepare_audience(spec, moment, spool=spool)
    chunks = spool.kept if spool.complete else list(_validate(spec))
    return Audience(campaign, schema, moment, audience, chunks)


def _validate(spec: AudienceSpec) -> Iterator[ValidatedChunk]:
    validator = spec.validator()
    for chunk in spec.profiles.chunks():
        yield ValidatedChunk(*validator.validate(chunk))


def compile_audience(loaded: Audience, previous: Compiled | None = None) -> Compiled:
    """Compile the templates and segment every chunk as the build does.

    The segments are kept from ``previous`` when the blocks' inline rules did not
    change (a template or block body edit recompiles only)."""
    runtime = CampaignRuntime(loaded.campaign, loaded.schema, loaded.as_of, loaded.audience)
    if previous is not None:
        candidate = Compiled(runtime, previous.batches, codes=previous.codes)
        if candidate.block_rules() == previous.block_rules():
            return candidate
    plan = runtime.segment_plan()
    batches = [segment_chunk(chunk, plan) for chunk in loaded.chunks]
    campaign = loaded.campaign
    pool = load_pool(campaign.coupons, campaign.base_dir, campaign.file)
    codes = pool.assign(plan, loaded.chunks) if pool is not None else None  # as the build
    return Compiled(runtime, batches, codes=codes)


def force_variants(batch: SegmentedBatch, forced: Mapping[str, str]) -> SegmentedBatch:
    """``batch`` with ``forced`` variants in place for every row, held-out ones included:
    what :func:`segment_chunk` gives with a preview's plan (``force_holdouts``), without
    segmenting again (segments and records do not depend on variants)."""
    if not forced:
        return batch
    return SegmentedBatch(
        rows=list(batch.rows),
        ids=list(batch.ids),
        records=list(batch.records),
        segments=list(batch.segments),
        variants=[{**v, **forced} for v in batch.variants],
        held_out=[tuple(k for k in keys if k not in forced) for keys in batch.held_out],
    )


class PreviewSession:
    """A campaign loaded once for previewing (see module docs)."""

    def __init__(
        self, campaign_file: str | Path, *, as_of: datetime | None = None, warm: bool = True
    ) -> None:
        self.campaign_file = Path(campaign_file)
        self.warm_up = warm
        self.warmed = threading.Event()  # set when the last (re)load's warm-up is done
        if not self.campaign_file.is_file():
            raise ConfigError("no campaign file here", file=str(self.campaign_file))
        self.as_of = as_of
        self.loaded: Audience | None = None
        self.compiled: Compiled | None = None
        self.problem: Problem | None = None
        self.generation = 0  # bumped by every reload that changed what is shown
        self.timings: dict[str, float] = {}  # of the last reload: load, then compile too
        self._lock = threading.RLock()
        self.reload()

    # --- loading ------------------------------------------------------------------------

    def reload(self, changed: Iterable[str | Path] | None = None) -> Problem | None:
        """Load or compile again; ``changed`` files decide how much (None: everything).

        Returns the problem met (also kept in :attr:`problem`), None when all is well.
        """
        content_only = changed is not None and self.loaded is not None
        if content_only:
            content_only = all(self._is_content(Path(p)) for p in changed or ())
        started = time.perf_counter()
        try:
            if content_only and self.loaded is not None:
                loaded, previous = self.loaded, self.compiled
            else:
                loaded, previous = self._load(), None
            self.timings["load_s"] = round(time.perf_counter() - started, 2)
            compiled = compile_audience(loaded, previous)
            self.timings["compile_s"] = round(time.perf_counter() - started, 2)
        except MailsmithError as exc:
            self.problem = problem_of(exc)
        except Exception as exc:  # a bug must not stop the server either; it is shown
            self.problem = Problem(type(exc).__name__, str(exc) or type(exc).__name__)
        else:
            with self._lock:
                self.loaded, self.compiled, self.problem = loaded, compiled, None
        self.generation += 1
        self.warmed.clear()
        if self.warm_up and self.problem is None:
            threading.Thread(target=self.warm, name="mailsmith-warm", daemon=True).start()
        else:
            self.warmed.set()
        return self.problem

    def warm(self, budget: float = WARM_SECONDS) -> int:
        """Render one recipient of each combination of segments and variants, so the
        first request for any recipient finds the templates' caches (layouts, headers)
        filled: the first render of a combination costs ten times the next. Stops after
        ``budget`` seconds or when a reload replaces what it warms. Returns the renders."""
        compiled, generation = self.compiled, self.generation
        started, rendered = time.monotonic(), 0
        seen: set[tuple[tuple[str, ...], tuple[tuple[str, str | None], ...]]] = set()
        try:
            for recipient in compiled.recipients if compiled else ():
                combination = (recipient.segments, tuple(recipient.variants.items()))
                if recipient.held_out or combination in seen:
                    continue
                if self.generation != generation or time.monotonic() - started > budget:
                    break
                seen.add(combination)
                with contextlib.suppress(MailsmithError):
                    self.render(recipient.id)
                    rendered += 1
        finally:
            if self.generation == generation:
                self.warmed.set()
        return rendered

    def _load(self) -> Audience:
        return load_audience(self.campaign_file, self.as_of)

    def _is_content(self, path: Path) -> bool:
        """A template or block file: recompiling is enough."""
        if self.loaded is None or path.suffix.lower() != ".mjml":
            return False  # the campaign file sits in a template folder too
        folders = content_folders(self.loaded.campaign)
        roots = [*folders.templates, *folders.blocks]
        resolved = path.resolve()
        return any(resolved.is_relative_to(root.resolve()) for root in roots)

    def watched_paths(self) -> list[Path]:
        """What a change to reloads: the campaign file, its segments file and data files,
        and its template and block folders (the shipped ones included)."""
        paths = [self.campaign_file.resolve().parent]
        loaded = self.loaded
        if loaded is not None:
            campaign = loaded.campaign
            folders = content_folders(campaign)
            paths += [*folders.templates, *folders.blocks]
            if isinstance(campaign.segments, str):
                paths.append(campaign.path(campaign.segments).parent)
        unique: list[Path] = []
        for path in paths:
            resolved = path.resolve()
            if resolved.exists() and not any(resolved.is_relative_to(p) for p in unique):
                unique = [p for p in unique if not p.is_relative_to(resolved)] + [resolved]
        return unique

    def is_watched(self, path: str | Path) -> bool:
        """A file whose change should reload: the campaign file and the files it names
        (segments, profiles, events, suppression), and templates and blocks (``.mjml``
        in their folders). Not editors' swap files, nor a build written beside them."""
        name = Path(path).name
        if name.startswith((".", "#")) or name.endswith(("~", ".swp", ".tmp")):
            return False
        resolved = Path(path).resolve()
        if resolved in self._named_files():
            return True
        loaded = self.loaded
        if loaded is None or resolved.suffix.lower() != ".mjml":
            return False
        folders = content_folders(loaded.campaign)
        roots = [r.resolve() for r in (*folders.templates, *folders.blocks)]
        return any(resolved.is_relative_to(root) for root in roots)

    def _named_files(self) -> set[Path]:
        files = {self.campaign_file.resolve()}
        loaded = self.loaded
        if loaded is not None:
            campaign = loaded.campaign
            named = [campaign.profiles.path]
            named += [s.path for s in (campaign.events, campaign.suppression) if s is not None]
            if isinstance(campaign.segments, str):
                named.append(campaign.segments)
            files |= {campaign.path(n).resolve() for n in named if n}  # ("": a database)
        return files

    # --- what is shown ------------------------------------------------------------------

    def state(self) -> tuple[Audience, Compiled]:
        """The loaded audience and compile shown now (the last good ones)."""
        loaded, compiled = self.loaded, self.compiled
        if loaded is None or compiled is None:
            assert self.problem is not None
            raise NotLoadedError(
                f"the campaign could not be loaded: {self.problem.message}",
                file=self.problem.file,
                line=self.problem.line,
                hint="fix the file: the preview reloads by itself",
            )
        return loaded, compiled

    def recipient(self, recipient_id: str) -> Recipient:
        """The recipient with this id; NoEmailError for a rejected or unknown id."""
        loaded, compiled = self.state()
        index = compiled.by_id.get(recipient_id)
        if index is not None:
            return compiled.recipients[index]
        raise refusal_for(loaded, recipient_id)

    def find(self, query: str = "", segment: str | None = None, limit: int = 50) -> list[Recipient]:
        """Recipients whose id or email contains ``query`` (any case), in ``segment`` (a
        segment, ``group:label`` or ``cluster=label``)."""
        _, compiled = self.state()
        needle = query.strip().lower()
        found = []
        for recipient in compiled.recipients:
            if segment and segment not in recipient.segments and segment not in recipient.clusters:
                continue
            if needle and needle not in f"{recipient.id}\t{recipient.email}".lower():
                continue
            found.append(recipient)
            if len(found) >= limit:
                break
        return found

    def rejected(self, limit: int = 200) -> list[Rejection]:
        """The rows the build rejects, with reasons (file order)."""
        loaded, _ = self.state()
        return loaded.rejections[:limit]

    def batch(self, recipient_id: str, forced: Mapping[str, str] | None = None) -> SegmentedBatch:
        """The recipient's row as the build segments it (its chunk's
        :func:`segment_chunk`), with ``forced`` variants in place."""
        loaded, compiled = self.state()
        place = compiled.where.get(recipient_id)
        if place is None:
            raise refusal_for(loaded, recipient_id)
        compiled.plan(forced or {})  # checks the experiments and arms named
        number, index = place
        return force_variants(compiled.batches[number].take([index]), forced or {})

    def render(self, recipient_id: str, forced: Mapping[str, str] | None = None) -> Rendered:
        """The recipient's email, byte for byte the build's (``forced`` variants in place,
        held-out recipients included when their experiment is forced)."""
        _, compiled = self.state()
        batch = self.batch(recipient_id, forced)
        if batch.held_out[0]:
            key = batch.held_out[0][0]
            raise NoEmailError(
                f"recipient is in the holdout of experiment {key!r}: the build sends no email",
                refusal="holdout",
                row=batch.rows[0],
                hint=f"force a variant of {key} to preview it anyway",
            )
        if compiled.codes is not None:  # as the build gives them, in copies of the records
            batch = replace(batch, records=[dict(r) for r in batch.records])
            compiled.codes.give(batch.rows, batch.records)
        with self._lock:
            result = render_batch(compiled.runtime, batch)
        if result.rejected:
            rejection = result.rejected[0]
            raise NoEmailError(
                f"recipient is rejected ({rejection.reason}): {rejection.detail}",
                refusal="rejected",
                field=rejection.field,
                row=rejection.row,
            )
        return result.rendered[0]

    def explain(self, recipient_id: str, forced: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The explain panel's data (see :mod:`renderer.serve.explain`); a held-out or
        rejected recipient is explained too, without an email."""
        from renderer.serve.explain import explain_recipient  # it imports this module

        loaded, compiled = self.state()
        batch = self.batch(recipient_id, forced)
        try:
            rendered: Rendered | None = self.render(recipient_id, forced)
            refusal = None
        except NoEmailError as exc:
            rendered, refusal = None, {"refusal": exc.refusal, "message": exc.message}
        return {**explain_recipient(loaded, compiled, batch, rendered), "no_email": refusal}

    def matrix(self) -> list[dict[str, Any]]:
        """One representative per exclusive-group label and variant combination."""
        from renderer.serve.explain import representatives

        return representatives(self.state()[1])

    def experiments(self) -> dict[str, list[str]]:
        """Experiment key -> its variants, in order."""
        _, compiled = self.state()
        return {e.key: list(e.weights) for e in compiled.runtime.experiments}

    def segment_names(self) -> list[str]:
        """Segments, exclusive-group labels (``group:label``) and cluster labels
        (``cluster=label``), as the recipient filter takes them."""
        _, compiled = self.state()
        names = [n for n in compiled.runtime.segments.names if not n.startswith("block:")]
        clusters = sorted({c for r in compiled.recipients for c in r.clusters})
        return names + clusters


def refusal_for(loaded: Audience, recipient_id: str) -> NoEmailError:
    """Why there is no email for an id that is not a valid recipient."""
    rejection = loaded.rejection_of(recipient_id)
    if rejection is not None:
        return NoEmailError(
            f"recipient is rejected ({rejection.reason}): {rejection.detail}",
            refusal="rejected",
            field=rejection.field,
            row=rejection.row,
        )
    return NoEmailError(
        "no profile with this id",
        refusal="unknown",
        field=loaded.schema.id_field,
        hint="search the recipients by id or email",
    )


def problem_of(exc: MailsmithError) -> Problem:
    """A located error as data, with the source lines around its line."""
    return Problem(
        kind=type(exc).__name__,
        message=exc.message,
        file=exc.file,
        line=exc.line,
        hint=exc.hint,
        excerpt=excerpt(exc.file, exc.line),
    )


def excerpt(file: str | None, line: int | None) -> tuple[tuple[int, str], ...]:
    """Up to :data:`EXCERPT_LINES` lines either side of ``line`` in ``file``: only for
    the designer's own text files (templates, blocks, YAML), never a data file."""
    if not file or not line or Path(file).suffix.lower() not in (".mjml", ".yaml", ".yml"):
        return ()
    try:
        lines = Path(file).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ()
    first = max(1, line - EXCERPT_LINES)
    last = min(len(lines), line + EXCERPT_LINES)
    return tuple((number, lines[number - 1]) for number in range(first, last + 1))


def parse_variants(items: Sequence[str]) -> dict[str, str]:
    """``["exp=B"]`` -> ``{"exp": "B"}``; anything else is a ConfigError."""
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ConfigError(
                f"variant {item!r} must look like experiment=variant", field="variant"
            )
        pairs[key] = value
    return pairs
