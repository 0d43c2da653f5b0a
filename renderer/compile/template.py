"""Compile once: assembled MJML+Jinja -> HTML -> inlined CSS -> one Jinja template.

Per template, the pipeline runs MJML and the CSS inliner once, with the Jinja
carried through as markers (:mod:`renderer.compile.placeholders`); per recipient, only
the compiled Jinja template renders. The result equals the naive per-recipient
pipeline (Jinja, then MJML, then inlining) up to whitespace and entities; a test
proves it over the demo campaign and generated profiles.

Control flow directly inside ``<mj-section>``/``<mj-group>`` (a loop producing
columns, a column behind an ``if``) changes the number of columns MJML sees, and
so the column widths. Those constructs are compiled per *shape*: a small shape
template, rendered per recipient, records which branches and how many
iterations they take; each distinct shape is expanded (branches chosen, loops
unrolled), compiled once and cached.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Template
from jinja2.exceptions import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from renderer.compile.ascii import ascii_html
from renderer.compile.columns import conditional_column_css
from renderer.compile.fused import FusedSource, fuse_sources
from renderer.compile.fusedgen import FusedCodeGenerator, finish_template
from renderer.compile.inline import inline_css, refused_style
from renderer.compile.lang import localize_html
from renderer.compile.links import PARAMETERS, LinkDecorator
from renderer.compile.mjml import compile_mjml
from renderer.compile.placeholders import Protected, protect, restore
from renderer.compile.shapes import expand, parse_shape, shape_source
from renderer.compile.structure import Context, Node, classify, parse_tree
from renderer.compile.text import html_to_text
from renderer.content import AssembledTemplate, Token
from renderer.env import RENDER_ERRORS, render_error, render_shared, syntax_error, with_globals
from segments.errors import MjmlError, TemplateError

MAX_SHAPES = 256
_BLANK_LINES_RE = re.compile(r"\n\n\n+")


@dataclass
class CompiledShape:
    """One structural shape, compiled: HTML and text Jinja templates."""

    key: str
    html: Template
    text: Template
    filename: str
    line_map: list[tuple[int, Token]]
    html_source: str = ""  # the Jinja source of ``html`` and ``text``, as compiled
    text_source: str = ""
    fused: Template | None = None  # both parts in one pass (renderer.compile.fused)

    @functools.cached_property
    def layout(self) -> str:
        """A short stable name for this layout (a digest of its shape key)."""
        return hashlib.sha256(self.key.encode()).hexdigest()[:12]

    def origin(self, line: int) -> Token | None:
        """The designer's token that produced ``line`` of the compiled source."""
        return _origin_of(self.line_map, line)


@dataclass
class CompiledTemplate:
    """A template compiled once; ``render`` is the per-recipient cost."""

    assembled: AssembledTemplate
    env: SandboxedEnvironment
    text_env: SandboxedEnvironment
    tokens: list[Token]
    contexts: list[Context]
    tree: list[Node]
    shape_template: Template | None
    shapes: dict[str, CompiledShape] = field(default_factory=dict)
    shape_source: str | None = None  # the source of shape_template
    shape_lines: list[tuple[int, Token]] = field(default_factory=list)  # its line map
    links: LinkDecorator | None = None  # the campaign's tracked links, when it has them
    localized: bool = False  # <html lang dir> from the recipient's locale (i18n:)
    fused_enabled: bool = True  # False: always the two-pass render (benchmarks, tests)

    def shape_key(self, context: Mapping[str, Any]) -> str:
        """The recipient's shape key; RecipientError when it cannot render."""
        if self.shape_template is None:
            return ""
        try:
            return render_shared(self.shape_template, with_globals(self.env, context))
        except RENDER_ERRORS as exc:
            origin = _origin_of(self.shape_lines, _failing_line(exc, self.shape_template))
            file, line = (origin.file, origin.line) if origin else (self.assembled.file, None)
            raise render_error(exc, file, line) from None

    def layout_for(self, context: Mapping[str, Any]) -> CompiledShape:
        """The compiled layout for a recipient; RecipientError when its key cannot render."""
        return self.shape(self.shape_key(context))

    def shape(self, key: str) -> CompiledShape:
        compiled = self.shapes.get(key)
        if compiled is None:
            if len(self.shapes) >= MAX_SHAPES:
                raise TemplateError(
                    f"more than {MAX_SHAPES} distinct column layouts",
                    file=self.assembled.file,
                    hint="a loop producing <mj-column>s needs a bounded length, e.g. items[:3]",
                )
            compiled = self.shapes[key] = self._compile_shape(key)
        return compiled

    def _compile_shape(self, key: str) -> CompiledShape:
        atoms = expand(self.tree, self.tokens, self.contexts, parse_shape(key))
        protected = protect(atoms)
        file = self.assembled.file
        html = _inline(compile_mjml(protected.source, file=file), protected, file)
        if self.links is not None:
            html = self.links.decorate(html, protected)
        if self.localized:
            html = localize_html(html, protected, Token("tag", "", self.assembled.file, 1))
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        filename = f"<mailsmith:{self.assembled.name}:{digest}>"
        origin = Token("tag", "", self.assembled.file, 1)
        user_atoms = len(protected.atoms)
        html_marked = conditional_column_css(ascii_html(html), protected, origin)
        text_marked = html_to_text(html, protected.tag_markers)
        html_source, line_map = restore(html_marked, protected)
        text_source, _ = restore(text_marked, protected)
        compiled = CompiledShape(
            key=key,
            html=_compile(self.env, html_source, filename, line_map),
            text=_compile(self.text_env, text_source, filename + "text", line_map),
            filename=filename,
            line_map=line_map,
            html_source=html_source,
            text_source=text_source,
        )
        fused = fuse_sources(html_marked, text_marked, protected, user_atoms, self.env, origin)
        if fused is not None:
            compiled.fused = _compile_fused(self.env, fused, filename + "fused")
        return compiled

    def render(self, context: Mapping[str, Any]) -> tuple[str, str]:
        """Render (html, text) for one recipient; RecipientError when it cannot."""
        _, html, text = self.render_layout(context)
        return html, text

    def render_layout(
        self, context: Mapping[str, Any], shape_key: str | None = None, *, prepared: bool = False
    ) -> tuple[CompiledShape, str, str]:
        """Like :meth:`render`, also returning the compiled layout used.

        ``shape_key``: the output of :attr:`shape_source` for this context when the
        caller already rendered it (the runtime renders it with the subject).
        ``prepared``: ``context`` is a dict that already holds the environment's
        globals (:meth:`renderer.runtime.CampaignRuntime.context` builds it so).
        """
        if not prepared or not isinstance(context, dict):
            context = with_globals(self.env, context)
        if self.links is not None and PARAMETERS not in context:
            self.links.values(self.env, context)  # the runtime has put them in already
        shape = self.layout_for(context) if shape_key is None else self.shape(shape_key)
        if shape.fused is not None and self.fused_enabled:
            both = _render_fused(shape.fused, context, self.env)
            if both is not None:
                return shape, both[0], both[1]
        html = _render(shape, shape.html, context)
        text = _BLANK_LINES_RE.sub("\n\n", _render(shape, shape.text, context))
        return shape, html, text


def _compile(
    env: SandboxedEnvironment, source: str, filename: str, line_map: list[tuple[int, Token]]
) -> Template:
    try:
        code = env.compile(source, name=filename, filename=filename)
    except TemplateSyntaxError as exc:
        origin = _origin_of(line_map, exc.lineno)
        raise syntax_error(
            exc, origin.file if origin else None, origin.line if origin else None
        ) from None
    return env.template_class.from_code(env, code, env.globals, None)


def _compile_fused(env: SandboxedEnvironment, fused: FusedSource, filename: str) -> Template | None:
    """The fused layout's template; None when it does not compile (two passes then,
    which report the error at the designer's line)."""
    try:
        tree = env.parse(fused.source, name=filename, filename=filename)
    except TemplateSyntaxError:
        return None
    stream = io.StringIO()
    generator = FusedCodeGenerator(env, filename, filename, stream, False, env.optimized)
    generator.visit(generator.prepare(tree))
    code = compile(stream.getvalue(), filename, "exec")
    return finish_template(env.template_class.from_code(env, code, env.globals, None))


def _render_fused(
    template: Template, context: dict[str, Any], env: SandboxedEnvironment
) -> tuple[str, str] | None:
    """(html, text) in one pass; None when the render fails, so that the two-pass
    render runs and raises its error at the designer's line, as it always has."""
    jinja_context = template.new_context(context, shared=True)
    text: list[str] = []
    jinja_context.msj_text = text  # type: ignore[attr-defined]
    warnings = env.guard.warnings  # type: ignore[attr-defined]
    before = len(warnings)
    try:
        html = "".join(template.root_render_func(jinja_context))
    except Exception:  # noqa: BLE001 - the two-pass render raises it properly
        del warnings[before:]
        return None
    return html, _BLANK_LINES_RE.sub("\n\n", "".join(text))


def _inline(html: str, protected: Protected, file: str) -> str:
    """Inlined ``html``; a failure located at the style attribute the inliner refused."""
    try:
        return inline_css(html, file=file)
    except MjmlError as exc:
        offset = refused_style(protected.source)
        origin = protected.origin_at(offset) if offset is not None else None
        if origin is None:
            raise
        raise MjmlError(exc.message, file=origin[0], line=origin[1], hint=exc.hint) from None


def _origin_of(line_map: Sequence[tuple[int, Token]], line: int) -> Token | None:
    found = None
    for source_line, token in line_map:
        if source_line > line:
            break
        found = token
    return found


def _render(shape: CompiledShape, template: Template, context: dict[str, Any]) -> str:
    try:
        return render_shared(template, context)
    except RENDER_ERRORS as exc:
        origin = shape.origin(_failing_line(exc, template))
        raise render_error(
            exc, origin.file if origin else None, origin.line if origin else None
        ) from None


def _failing_line(exc: BaseException, template: Template) -> int:
    line = 0
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == template.filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def compile_template(
    assembled: AssembledTemplate,
    env: SandboxedEnvironment,
    text_env: SandboxedEnvironment,
    links: LinkDecorator | None = None,
    localized: bool = False,
) -> CompiledTemplate:
    """Compile an assembled template; the static shape is compiled eagerly. ``links``
    decorates each layout's links (:mod:`renderer.compile.links`); ``localized``
    gives ``<html>`` the recipient's ``lang`` and ``dir`` (:mod:`renderer.compile.lang`)."""
    tokens = assembled.tokens
    contexts = classify(tokens)
    tree = parse_tree(tokens, contexts)
    source = shape_source(tree, tokens)
    shape_template = None
    if source is not None:
        filename = f"<mailsmith:{assembled.name}:shape>"
        shape_template = _compile(env, source.source, filename, source.line_map)
    compiled = CompiledTemplate(
        assembled,
        env,
        text_env,
        tokens,
        contexts,
        tree,
        shape_template,
        shape_source=source.source if source else None,
        shape_lines=source.line_map if source else [],
        links=links,
        localized=localized,
    )
    if source is None:
        compiled.shape("")
    return compiled


__all__ = ["CompiledShape", "CompiledTemplate", "compile_template"]
