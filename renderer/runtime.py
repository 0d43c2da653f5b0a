"""Everything a campaign needs at render time, prepared once, and :func:`render_batch`.

:class:`CampaignRuntime` loads the schema, segments and templates and compiles
them once. :func:`render_batch` turns a :class:`~segments.batch.SegmentedBatch`
(what :func:`~segments.batch.segment_chunk` made of a chunk) into rendered emails
or rejections: pure, no files, no state beyond the compiled templates, so it runs
the same in-process, in a process pool, or on a distributed engine. A runtime
pickles as its recipe (campaign, schema, reference time, audience): unpickling
compiles the templates again, once per process.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Template, meta
from jinja2.exceptions import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from renderer.campaign import Campaign
from renderer.compile import compile_template
from renderer.compile.links import LinkDecorator
from renderer.compile.optimize import optimize_tokens
from renderer.content import BlockOverrides, assemble
from renderer.delivery import token_signer, unsubscribe_source
from renderer.env import (
    RENDER_ERRORS,
    MailsmithEnvironment,
    MissingPolicy,
    make_environment,
    render_error,
    render_shared,
)
from renderer.i18n import Localizer
from renderer.limits import RenderGuard
from renderer.specs import audience_spec, cluster_model_path, content_folders, segment_document
from segments.audience.document import AudienceSegments, percentile_references
from segments.audience.prepass import CampaignAudience, audience_segments, prepare_audience
from segments.batch import SegmentedBatch, SegmentPlan
from segments.errors import ConfigError, RecipientError, TemplateError, UndefinedFieldError
from segments.experiments.assign import Experiment, parse_experiments
from segments.profiles.read import Rejection
from segments.profiles.schema import ProfileSchema
from segments.yamlsrc import LineDict, load_yaml

MAX_HEADER_LENGTH = 255  # subject and preheader, in characters
_CONTROL_CHARACTERS = dict.fromkeys([*range(0x20), 0x7F], " ")  # then squeezed: one line
_SHAPE_SEPARATOR = "\x1e"  # never in a shape key: those come from the template's own text
_TO_NAME = "_mailsmith_to_name"  # the rendered to_name, in the render's context
_IN_SEGMENT_RE = re.compile(r"""in_segment\(\s*(['"])([^'"]+)\1\s*\)""")


@dataclass(frozen=True)
class Rendered:
    """One recipient's email."""

    row: int
    id: str
    email: str
    key: str
    segments: tuple[str, ...]
    variants: Mapping[str, str | None]
    subject: str
    preheader: str
    html: str
    text: str
    warnings: tuple[str, ...] = ()
    layout: str = ""
    unsubscribe_url: str = ""  # for List-Unsubscribe (renderer/build/mime.py)
    unsubscribe_token: str = ""
    to_name: str = ""


@dataclass
class BatchResult:
    rendered: list[Rendered] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


def recipient_key(campaign: str, recipient_id: str) -> str:
    """The file name stem for a recipient: never the raw id (ids are personal data)."""
    return hashlib.sha256(f"{campaign}\0{recipient_id}".encode()).hexdigest()[:24]


class CampaignRuntime:
    """A campaign compiled once and ready to render batches of profiles."""

    def __init__(
        self,
        campaign: Campaign,
        schema: ProfileSchema,
        as_of: datetime,
        audience: CampaignAudience | None = None,
    ) -> None:
        self.campaign = campaign
        self.schema = schema
        self._lines: dict[str, int] | None = None
        self.as_of = as_of
        limits = campaign.render
        self.guard = RenderGuard(limits.max_seconds, limits.max_bytes, limits.unsafe_urls)
        self.localizer = i18n = localizer(campaign)  # None without i18n:
        self.env, self.text_env = environments(campaign.missing_token, self.guard, i18n)
        folders = content_folders(campaign)
        self.experiments = load_experiments(campaign)
        assembled = assemble(
            folders,
            campaign.template,
            block_overrides(self.experiments),
            named_in=campaign.file,
        )
        # Without a prepared audience (a preview, a test), prepare it: a pre-pass if needed.
        self.audience = audience or prepare_audience(audience_spec(campaign, schema), as_of)
        self.segments = load_campaign_segments(
            campaign, schema, assembled.blocks.values(), self.audience
        )
        self.field_types = self.audience.field_types(schema)  # profile fields + derived ones
        _check_audiences(self.experiments, self.segments, campaign.file)
        _check_segment_names(assembled.tokens, self.segments)
        self.assembled = assembled  # as the designer wrote it: the naive pipeline's input
        optimized = replace(
            assembled, tokens=optimize_tokens(assembled.tokens, self.env, campaign.vars)
        )
        self.links = links = _bound_links(campaign, self.env, self.field_types)
        localized = i18n is not None
        self.template = compile_template(optimized, self.env, self.text_env, links, localized)
        self.signer = token_signer(campaign)  # a missing secret stops here, before a render
        self.header_sources = {
            "subject": campaign.subject,
            "preheader": campaign.preheader,
            "unsubscribe_url": unsubscribe_source(campaign) or "",
        }
        if campaign.to_name:  # rendered with the others: one render for all per recipient
            self.header_sources["to_name"] = campaign.to_name
        self.headers = {k: self._field_template(k, v) for k, v in self.header_sources.items()}
        self._headers_once: dict[tuple[tuple[str, str], ...], tuple[Template, dict[str, str]]] = {}
        # The shape key renders with the headers (one render less per recipient)
        # unless the layout's control flow reads what the headers produce.
        shape = self.template.shape_source
        self._shape_with_headers = shape is not None and not (
            meta.find_undeclared_variables(self.env.parse(shape)) & set(self.header_sources)
        )
        self.globals = {
            "vars": campaign.vars,
            "as_of": as_of,
            "campaign": {"name": campaign.name, "template": campaign.template},
        }

    def _field_template(self, key: str, source: str) -> Template:
        try:
            template = self.text_env.from_string(source)
        except TemplateSyntaxError as exc:
            raise TemplateError(
                f"{key}: template syntax error: {exc.message}",
                file=self.campaign.file,
                line=self._line(key),
            ) from None
        return template

    def _line(self, key: str) -> int | None:
        if self._lines is None:
            path = Path(self.campaign.file)
            data = load_yaml(path) if path.is_file() else None
            self._lines = {k: data.line_of(k) for k in data} if isinstance(data, LineDict) else {}
        return self._lines.get(key)

    def context(
        self, record: Mapping[str, Any], segments: Sequence[str], variants: Mapping[str, str | None]
    ) -> dict[str, Any]:
        """The Jinja context for one recipient (with the environment's globals in it,
        so every render of the recipient shares it: see :func:`renderer.env.render_shared`)."""
        context = dict(self.env.globals)
        context.update(record)
        context.update(self.globals)
        context["profile"] = record
        context["recipient_id"] = str(record[self.schema.id_field])
        context["email"] = record[self.schema.email_field]
        context["segments"] = frozenset(segments)
        context["variants"] = variants
        if self.localizer is not None:  # locale_id, lang, text_dir
            context.update(self.localizer.context_values(record, self.guard.warnings))
        for group in self.segments.groups:
            label = group.label_of(segments)
            if label is not None:
                context[group.name] = label
        for experiment in self.experiments:
            variant = experiment.variant(variants.get(experiment.key))
            if variant is not None and variant.tokens:
                context.update(variant.tokens)
        return context

    def full_context(
        self, record: Mapping[str, Any], segments: Sequence[str], variants: Mapping[str, str | None]
    ) -> dict[str, Any]:
        """The context plus the rendered subject, preheader and unsubscribe URL."""
        return self._prepare(record, segments, variants)[0]

    def _prepare(
        self, record: Mapping[str, Any], segments: Sequence[str], variants: Mapping[str, str | None]
    ) -> tuple[dict[str, Any], str | None]:
        """:meth:`full_context` and, when the headers render gave it, the shape key."""
        context = self.context(record, segments, variants)
        if self.signer is not None:
            self._sign(context)
        if self.links is not None:
            self._utm(context)
        fields = self._render_headers(context)
        subject, preheader, unsubscribe = fields[:3]
        context["subject"] = self._header_line("subject", subject)
        context["preheader"] = self._header_line("preheader", preheader)
        if self.header_sources["unsubscribe_url"]:
            context["unsubscribe_url"] = unsubscribe.strip()
        count = len(self.header_sources)
        if count > 3:
            context[_TO_NAME] = _one_line(fields[3])
        return context, fields[count] if len(fields) > count else None

    def _sign(self, context: dict[str, Any]) -> None:
        """The recipient's signed token, and the preference URL that carries it."""
        assert self.signer is not None and self.campaign.unsubscribe is not None
        token = context["unsubscribe_token"] = self.signer.sign(context["recipient_id"])
        preferences = self.campaign.unsubscribe.preferences_url
        if preferences is not None:
            context["preferences_url"] = preferences.replace("{token}", token)

    def _utm(self, context: dict[str, Any]) -> None:
        """The recipient's utm values, once for all its links (renderer/compile/links.py)."""
        assert self.links is not None
        try:
            self.links.values(self.env, context)
        except RENDER_ERRORS as exc:
            key = self.links.failing(context)
            line = self.links.lines.get(key, self.links.lines.get(""))
            raise render_error(exc, self.campaign.file, line, label=f"tracking: {key}") from None

    def _header_line(self, key: str, text: str) -> str:
        """A rendered subject or preheader on one line, without control characters,
        cut to :data:`MAX_HEADER_LENGTH` characters (with a warning)."""
        line = _one_line(text)
        if not line.isprintable():
            line = _one_line(line.translate(_CONTROL_CHARACTERS))
        if len(line) > MAX_HEADER_LENGTH:
            line = line[:MAX_HEADER_LENGTH].rstrip()
            self.guard.warnings.append(f"{key} cut to {MAX_HEADER_LENGTH} characters")
        return line

    def render_one(
        self,
        row: int,
        record: Mapping[str, Any],
        segments: Sequence[str],
        variants: Mapping[str, str | None],
    ) -> Rendered:
        """Render one recipient; RecipientError when the recipient must be rejected
        (``render_limit`` when it runs over the campaign's ``render`` budget)."""
        guard = self.guard
        guard.start()
        try:
            context, shape_key = self._prepare(record, segments, variants)
            shape, html, text = self.template.render_layout(context, shape_key, prepared=True)
        finally:
            guard.stop()
        if len(html) > guard.max_bytes or len(text) > guard.max_bytes:
            raise RecipientError(
                f"{self.template.assembled.file}: {guard.too_big()} (the whole email)",
                reason="render_limit",
                file=self.template.assembled.file,
            )
        recipient_id = context["recipient_id"]
        warnings = list(guard.warnings)
        if len(context["subject"]) > 100:
            warnings.append("subject is longer than 100 characters")
        if not context["subject"]:
            warnings.append("subject is empty")
        return Rendered(
            row=row,
            id=recipient_id,
            email=str(context["email"]),
            key=recipient_key(self.campaign.name, recipient_id),
            segments=tuple(segments),
            variants=dict(variants),
            subject=context["subject"],
            preheader=context["preheader"],
            html=html,
            text=text,
            warnings=tuple(warnings),
            layout=shape.layout,
            unsubscribe_url=context.get("unsubscribe_url", ""),
            unsubscribe_token=context.get("unsubscribe_token", ""),
            to_name=self._render_to_name(context),
        )

    def _render_to_name(self, context: Mapping[str, Any]) -> str:
        """The To display name (``to_name:``), on one line; empty without one."""
        return str(context.get(_TO_NAME, ""))

    def _headers_for(self, variants: Mapping[str, str | None]) -> tuple[Template, dict[str, str]]:
        """Subject, preheader and unsubscribe URL as one template, per variant override;
        and the source of each."""
        chosen = [
            (e.key, v)
            for e in self.experiments
            if (v := e.variant(variants.get(e.key))) is not None
            and (v.subject is not None or v.preheader is not None)
        ]
        cache_key = tuple((key, v.name) for key, v in chosen)
        found = self._headers_once.get(cache_key)
        if found is None:
            sources = dict(self.header_sources)
            for _, variant in chosen:
                sources["subject"] = variant.subject or sources["subject"]
                sources["preheader"] = variant.preheader or sources["preheader"]
            # one render for all three (and the shape key): they run for every recipient
            source = "\x1f".join(sources.values())
            if self._shape_with_headers:
                source += _SHAPE_SEPARATOR + str(self.template.shape_source)
            found = self._headers_once[cache_key] = (
                self._field_template("subject", source),
                sources,
            )
        return found

    def _render_headers(self, context: dict[str, Any]) -> list[str]:
        """[subject, preheader, unsubscribe URL, to_name if set] and, when merged in, the
        shape key."""
        template, sources = self._headers_for(context["variants"])
        try:
            output = render_shared(template, context)
        except RENDER_ERRORS:
            for key, field_template in self.headers.items():
                self._render_field(key, field_template, context)  # raises at the key's line
            if self._shape_with_headers:
                self.template.layout_for(context)  # raises as a render of the layout would
            raise
        shape_key = None
        if self._shape_with_headers:
            output, _, shape_key = output.rpartition(_SHAPE_SEPARATOR)
        fields = output.split("\x1f")
        if len(fields) != len(sources):  # a value held the separator: one at a time
            fields = [
                self._render_field(k, self._field_template(k, v), context)
                for k, v in sources.items()
            ]
        return fields if shape_key is None else [*fields, shape_key]

    def _render_field(self, key: str, template: Template, context: Mapping[str, Any]) -> str:
        try:
            return template.render(context)
        except RENDER_ERRORS as exc:
            raise render_error(exc, self.campaign.file, self._line(key), label=key) from None

    def __reduce__(self) -> Any:
        return (CampaignRuntime, (self.campaign, self.schema, self.as_of, self.audience))

    def segment_plan(
        self,
        forced: Mapping[str, str] | None = None,
        *,
        force_holdouts: bool = False,
        sample: float | None = None,
        excluded: frozenset[str] = frozenset(),
    ) -> SegmentPlan:
        """What :func:`~segments.batch.segment_chunk` needs for this campaign.

        ``forced`` variants must name experiments and variants that exist.
        """
        check_variants(self.experiments, forced or {}, self.campaign.file)
        return SegmentPlan(
            segments=self.segments,
            experiments=tuple(self.experiments),
            schema=self.schema,
            field_types=self.field_types,
            as_of=self.as_of,
            forced=dict(forced or {}),
            force_holdouts=force_holdouts,
            sample=sample,
            excluded=excluded,
        )


def render_batch(
    runtime: CampaignRuntime, batch: SegmentedBatch, *, stop_after: int = 0
) -> BatchResult:
    """Render every row of ``batch`` that is not held out: each comes back rendered or
    rejected with a reason. Pure: no files, nothing kept between calls.

    ``stop_after``: when the batch's first that many renders all run over the render
    limit, the template is at fault rather than the data: a :class:`TemplateError`
    instead of grinding through every row (a build passes :data:`EARLY_STOP` for its
    first rows).
    """
    result = BatchResult()
    attempts = 0
    for index, row in enumerate(batch.rows):
        if batch.held_out[index]:
            continue
        record = batch.records[index]
        attempts += 1
        try:
            rendered = runtime.render_one(row, record, batch.segments[index], batch.variants[index])
        except RecipientError as exc:
            if attempts == stop_after:
                _stop_early(result, exc, stop_after)
            if runtime.campaign.missing_token == "error" and exc.reason == "missing_field":
                raise UndefinedFieldError(
                    f"'{exc.field}' is undefined",
                    file=exc.file,
                    line=exc.line,
                    field=exc.field,
                    recipient_id=batch.ids[index],
                    row=row,
                    hint="add a fallback: {{ field | fallback('...') }}, or set missing_token",
                ) from None
            result.rejected.append(
                Rejection(row, batch.ids[index], exc.field, exc.reason, exc.detail)
            )
            continue
        result.rendered.append(rendered)
    return result


EARLY_STOP = 3  # first renders of a build that, all over the render limit, stop it


def _stop_early(result: BatchResult, exc: RecipientError, stop_after: int) -> None:
    """Raise when the ``stop_after``-th render (``exc``) and all before it ran over the
    render limit."""
    if exc.reason == "render_limit" and not result.rendered:
        if all(r.reason == "render_limit" for r in result.rejected):
            raise TemplateError(
                f"the first {stop_after} recipients all ran over the render limit",
                file=exc.file,
                line=exc.line,
                hint="a loop that does not end or a string that keeps growing? "
                "Otherwise raise render: {max_seconds:, max_bytes:} in the campaign",
            ) from None


def check_variants(experiments: Sequence[Experiment], forced: Mapping[str, str], file: str) -> None:
    """Forced variants (``--winner``, ``--variant``) name experiments and variants that exist."""
    known = {e.key: e for e in experiments}
    listed = "; ".join(f"{k}: {', '.join(e.weights)}" for k, e in known.items()) or "(none)"
    for key, name in forced.items():
        if key not in known:
            raise ConfigError(
                f"no experiment {key!r}", file=file, hint=f"experiments and variants: {listed}"
            )
        if name not in known[key].weights:
            raise ConfigError(
                f"experiment {key!r} has no variant {name!r}",
                file=file,
                variant=name,
                hint=f"variants of {key}: {', '.join(known[key].weights)}",
            )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def load_campaign_segments(
    campaign: Campaign,
    schema: ProfileSchema,
    blocks: Any,
    audience: CampaignAudience | None = None,
) -> AudienceSegments:
    """The campaign's segments plus the inline ``show_if`` rules of its blocks.

    With an ``audience`` (see :mod:`segments.audience.prepass`), derived fields are
    known to the rules and percentile thresholds are resolved.
    """
    if audience is None:
        audience = CampaignAudience(
            segment_document(campaign), schema.id_field, cluster_model_path(campaign)
        )
    extra = {}
    for block in blocks:
        if not isinstance(block.show_if, dict):
            continue
        found = percentile_references(block.show_if)
        if found:  # resolved over the audience only in the segments document
            raise TemplateError(
                f"block '{block.name}': show_if compares with a percentile ({found[0]}), "
                "which only a segment in the segments file can do",
                file=block.file,
                line=block.line,
                hint="define a segment with this rule and write `show_if: <that segment>`",
            )
        extra[f"block:{block.name}"] = block.show_if
    return audience_segments(schema, audience, extra, file=campaign.file)


def environments(
    missing: MissingPolicy, guard: RenderGuard, i18n: Localizer | None
) -> tuple[MailsmithEnvironment, MailsmithEnvironment]:
    """A runtime's HTML and text environments (sharing the render guard)."""
    html = make_environment(missing, guard=guard, localizer=i18n)
    return html, make_environment(missing, text=True, guard=guard, localizer=i18n)


def localizer(campaign: Campaign) -> Localizer | None:
    """The campaign's locales and catalogs (``i18n:``); None without it."""
    spec = campaign.i18n
    if spec is None:
        return None
    return Localizer(
        spec.default,
        field=spec.field,
        currency=spec.currency,
        catalogs=campaign.path(spec.catalogs),
        invalid=spec.invalid,
        trusted=spec.trusted_translations,
        file=campaign.file,
    )


def load_experiments(campaign: Campaign) -> list[Experiment]:
    """The campaign's experiments, validated with line numbers from the YAML."""
    if not campaign.experiments:
        return []
    path = Path(campaign.file)
    raw = load_yaml(path).get("experiments") if path.is_file() else None
    return parse_experiments(raw if raw is not None else campaign.experiments, file=campaign.file)


def block_overrides(experiments: Sequence[Experiment]) -> BlockOverrides:
    """Which variants swap or hide which placed blocks."""
    overrides: BlockOverrides = {}
    for experiment in experiments:
        for variant in experiment.variants:
            for block, replacement in variant.blocks.items():
                overrides.setdefault(block, []).append((experiment.key, variant.name, replacement))
    return overrides


def _bound_links(
    campaign: Campaign, env: SandboxedEnvironment, fields: Collection[str]
) -> LinkDecorator | None:
    """The campaign's tracked links, their utm values compiled; None without ``tracking:``."""
    if not campaign.tracking:
        return None
    links = LinkDecorator(campaign.tracking, campaign.file)
    links.bind(env, fields)
    return links


def _check_audiences(
    experiments: Sequence[Experiment], segments: AudienceSegments, file: str
) -> None:
    for experiment in experiments:
        if experiment.audience is not None and experiment.audience not in segments.names:
            raise ConfigError(
                f"experiment {experiment.key!r}: unknown audience segment {experiment.audience!r}",
                file=file,
                field="experiments",
                hint=f"known segments: {', '.join(segments.names)}",
            )


def _check_segment_names(tokens: Sequence[Any], segments: AudienceSegments) -> None:
    known = set(segments.names)
    for token in tokens:
        if token.kind not in ("var", "tag"):
            continue
        for match in _IN_SEGMENT_RE.finditer(token.text):
            if match.group(2) not in known:
                raise TemplateError(
                    f"unknown segment {match.group(2)!r}",
                    file=token.file,
                    line=token.line,
                    hint=f"known segments: {', '.join(sorted(known)) or '(none)'}",
                )
