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

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from jinja2 import Template, meta, nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from renderer.compile.inline import inline_css
from renderer.compile.mjml import compile_mjml
from renderer.compile.placeholders import MARKER_RE, Atom, Protected, protect, restore
from renderer.compile.structure import Context, ForNode, IfNode, Leaf, Node, classify, parse_tree
from renderer.compile.text import html_to_text
from renderer.content import AssembledTemplate, Token
from renderer.env import render_shared, undefined_name, with_globals
from segments.errors import RecipientError, TemplateError

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

    @property
    def layout(self) -> str:
        """A short stable name for this layout (a digest of its shape key)."""
        return hashlib.sha256(self.key.encode()).hexdigest()[:12]

    def origin(self, line: int) -> Token | None:
        found = None
        for source_line, token in self.line_map:
            if source_line > line:
                break
            found = token
        return found


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

    def shape_key(self, context: Mapping[str, Any]) -> str:
        if self.shape_template is None:
            return ""
        try:
            return render_shared(self.shape_template, with_globals(self.env, context))
        except UndefinedError:
            raise
        except SecurityError as exc:
            raise TemplateError(f"unsafe template code: {exc}", file=self.assembled.file) from None

    def layout_for(self, context: Mapping[str, Any]) -> CompiledShape:
        """The compiled layout for a recipient; RecipientError when its key cannot render."""
        try:
            return self.shape(self.shape_key(context))
        except UndefinedError as exc:
            raise RecipientError(
                str(exc), reason="missing_field", file=self.assembled.file
            ) from None

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
        html = inline_css(compile_mjml(protected.source, file=self.assembled.file))
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        filename = f"<mailsmith:{self.assembled.name}:{digest}>"
        origin = Token("tag", "", self.assembled.file, 1)
        html_source, line_map = restore(
            conditional_column_css(ascii_html(html), protected, origin), protected
        )
        text_source, _ = restore(html_to_text(html, protected.tag_markers), protected)
        return CompiledShape(
            key=key,
            html=_compile(self.env, html_source, filename, line_map),
            text=_compile(self.text_env, text_source, filename + "text", line_map),
            filename=filename,
            line_map=line_map,
        )

    def render(self, context: Mapping[str, Any]) -> tuple[str, str]:
        """Render (html, text) for one recipient; RecipientError when it cannot."""
        _, html, text = self.render_layout(context)
        return html, text

    def render_layout(
        self, context: Mapping[str, Any], shape_key: str | None = None
    ) -> tuple[CompiledShape, str, str]:
        """Like :meth:`render`, also returning the compiled layout used.

        ``shape_key``: the output of :attr:`shape_source` for this context when the
        caller already rendered it (the runtime renders it with the subject).
        """
        context = with_globals(self.env, context)
        shape = self.layout_for(context) if shape_key is None else self.shape(shape_key)
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
        raise TemplateError(
            f"template syntax error: {exc.message}",
            file=origin.file if origin else None,
            line=origin.line if origin else None,
        ) from None
    return env.template_class.from_code(env, code, env.globals, None)


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
    except UndefinedError as exc:
        origin = shape.origin(_failing_line(exc, template))
        field_name = undefined_name(exc)
        return _raise(origin, "missing_field", field_name, f"'{field_name}' is undefined")
    except SecurityError as exc:
        origin = shape.origin(_failing_line(exc, template))
        raise TemplateError(
            f"unsafe template code refused by the sandbox: {exc}",
            file=origin.file if origin else None,
            line=origin.line if origin else None,
        ) from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        origin = shape.origin(_failing_line(exc, template))
        return _raise(origin, "render_error", None, f"{type(exc).__name__} while rendering")


def _raise(origin: Token | None, reason: str, field_name: str | None, detail: str) -> str:
    file = origin.file if origin else None
    line = origin.line if origin else None
    where = f"{file}:{line}: " if file else ""
    raise RecipientError(where + detail, reason=reason, field=field_name, file=file, line=line)


def _failing_line(exc: BaseException, template: Template) -> int:
    line = 0
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == template.filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


_NON_ASCII_RE = re.compile(r"[^\x00-\x7f]")
_STYLE_RE = re.compile(r"(<style\b[^>]*>.*?</style\s*>)", re.IGNORECASE | re.DOTALL)


def ascii_html(html: str) -> str:
    """The template's own non-ASCII characters as character references (``·`` -> ``&#183;``).

    Same document for every HTML parser, but an all-ASCII template keeps a
    recipient's whole email ASCII unless a profile value is not: joining, encoding
    and hashing an ASCII string is several times cheaper than a wider one. Inside
    ``<style>`` (raw text, where references are not decoded) nothing changes.
    """
    if html.isascii():
        return html
    parts = _STYLE_RE.split(html)
    for i in range(0, len(parts), 2):  # odd parts are <style> elements
        parts[i] = _NON_ASCII_RE.sub(lambda m: f"&#{ord(m.group(0))};", parts[i])
    return "".join(parts)


_COLUMN_RULE_RE = re.compile(r"(?:\.moz-text-html )?\.(mj-column-(?:per|px)-[\w-]+) \{[^{}]*\}")


def conditional_column_css(html: str, protected: Protected, origin: Token) -> str:
    """Keep a column-width rule in the head only when its column is in the rendered body.

    MJML lists a responsive rule for every column width in the document; with
    every branch present at compile time, that is more than a recipient's own
    email would list. Each column element in the body sets a flag as it renders
    (``{% set msj_cols.c_per_50 = true %}``); the body is rendered first into a
    variable, then the head keeps the rules whose flag is set.
    """
    head_end = html.find("<body")
    if head_end < 0 or not MARKER_RE.search(html, head_end):
        return html
    head, body = html[:head_end], html[head_end:]

    def add(text: str) -> str:
        number = len(protected.atoms)
        protected.atoms[number] = Atom("tag", text, Context("content", ""), origin)
        return f"MSJ{number}Z"

    unconditional, conditional_names = _column_classes(body, protected)
    flagged: set[str] = set()

    def conditional(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in unconditional or name not in conditional_names:
            return match.group(0)  # always (or never) in the body: as MJML wrote it
        flagged.add(name)
        return add(f"{{% if msj_cols.{_flag(name)} %}}") + match.group(0) + add("{% endif %}")

    new_head = _COLUMN_RULE_RE.sub(conditional, head)
    if not flagged:
        return html

    def set_flag(match: re.Match[str]) -> str:
        names = [n for n in match.group(2).split() if n in flagged]
        flags = "".join(add(f"{{% set msj_cols.{_flag(n)} = true %}}") for n in names)
        return flags + match.group(0)

    body = _ELEMENT_WITH_CLASS_RE.sub(set_flag, body)
    return (
        add("{% set msj_cols = namespace() %}")
        + add("{% set msj_body %}")
        + body
        + add("{% endset %}")
        + new_head
        + add("{{ msj_body }}")
    )


_OPENERS = {"if", "for", "with", "filter", "call", "macro", "autoescape"}
_CLOSERS = {"endif", "endfor", "endwith", "endfilter", "endcall", "endmacro", "endautoescape"}
_MARKER_OR_CLASS_RE = re.compile(r'MSJ(\d+)Z|<[a-zA-Z][\w:-]*\b[^<>]*?\bclass="([^"]*)"')


def _column_classes(body: str, protected: Protected) -> tuple[set[str], set[str]]:
    """Column classes found outside any control flow, and those found only inside it."""
    depth = 0
    outside: set[str] = set()
    inside: set[str] = set()
    for match in _MARKER_OR_CLASS_RE.finditer(body):
        if match.group(1) is not None:
            atom = protected.atoms.get(int(match.group(1)))
            text = atom.text if atom is not None and atom.kind == "tag" else ""
            keyword = _keyword(text)
            depth += (keyword in _OPENERS) - (keyword in _CLOSERS)
            if keyword == "set" and "=" not in text:
                depth += 1  # a block set captures until endset
            depth -= keyword == "endset"
            continue
        names = {n for n in match.group(2).split() if n.startswith("mj-column-")}
        (outside if depth == 0 else inside).update(names)
    return outside, inside - outside


def _keyword(text: str) -> str:
    found = re.match(r"\{%[-+]?\s*(\w+)", text)
    return found.group(1) if found else ""


_ELEMENT_WITH_CLASS_RE = re.compile(r'<([a-zA-Z][\w:-]*)\b[^<>]*?\bclass="([^"]*)"')


def _flag(name: str) -> str:
    return "c_" + re.sub(r"\W", "_", name)


# -- shapes ---------------------------------------------------------------------------------


def shape_source(tree: Sequence[Node], tokens: Sequence[Token]) -> str | None:
    """Jinja source whose output is the shape key; None when the layout is static."""
    if not _has_shape(tree):
        return None
    return "".join(_shape_parts(tree, tokens))


def _has_shape(nodes: Sequence[Node]) -> bool:
    for node in nodes:
        if isinstance(node, IfNode) and (
            node.shape or _has_shape([c for _, k in node.branches for c in k])
        ):
            return True
        if isinstance(node, ForNode) and node.shape:
            return True
    return False


def _shape_parts(nodes: Sequence[Node], tokens: Sequence[Token]) -> list[str]:
    parts: list[str] = []
    for node in nodes:
        if isinstance(node, Leaf):
            if tokens[node.index].kind == "tag":
                parts.append(tokens[node.index].text)
        elif isinstance(node, IfNode):
            for number, (tag, children) in enumerate(node.branches):
                parts.append(tokens[tag].text)
                if node.shape:
                    parts.append(f"I{node.ident}={number};")
                parts.extend(_shape_parts(children, tokens))
            parts.append(tokens[node.end].text)
        elif node.shape:
            parts.append(f"F{node.ident}[" + tokens[node.start].text + "(")
            parts.extend(_shape_parts(node.body, tokens))
            parts.append(")")
            if node.else_tag is not None:
                parts.append(tokens[node.else_tag].text + "E(")
                parts.extend(_shape_parts(node.else_body, tokens))
                parts.append(")")
            parts.append(tokens[node.end].text + "]")
    return parts


Scope = dict[int, Any]


def parse_shape(key: str) -> Scope:
    """Parse a shape key into {node id: branch number | (iterations, else scope)}."""
    scope, _ = _parse_scope(key, 0, "")
    return scope


def _parse_scope(key: str, pos: int, stop: str) -> tuple[Scope, int]:
    scope: Scope = {}
    while pos < len(key) and key[pos] not in stop:
        kind = key[pos]
        if kind == "I":
            equals, semicolon = key.index("=", pos), key.index(";", pos)
            scope[int(key[pos + 1 : equals])] = int(key[equals + 1 : semicolon])
            pos = semicolon + 1
        elif kind == "F":
            bracket = key.index("[", pos)
            ident, pos = int(key[pos + 1 : bracket]), bracket + 1
            iterations: list[Scope] = []
            otherwise: Scope | None = None
            while key[pos] != "]":
                is_else = key[pos] == "E"
                pos += 2 if is_else else 1
                sub, pos = _parse_scope(key, pos, ")")
                pos += 1
                if is_else:
                    otherwise = sub
                else:
                    iterations.append(sub)
            scope[ident] = (iterations, otherwise)
            pos += 1
        else:
            pos += 1  # whitespace the designer's tags let through
    return scope, pos


def expand(
    nodes: Sequence[Node], tokens: Sequence[Token], contexts: Sequence[Context], scope: Scope
) -> list[Atom]:
    """Flatten the tree for one shape: shape branches chosen, shape loops unrolled."""
    atoms: list[Atom] = []
    for node in nodes:
        if isinstance(node, Leaf):
            token = tokens[node.index]
            atoms.append(Atom(token.kind, token.text, contexts[node.index], token))
        elif isinstance(node, IfNode) and not node.shape:
            for tag, children in node.branches:
                atoms.append(_atom(tokens, contexts, tag))
                atoms.extend(expand(children, tokens, contexts, scope))
            atoms.append(_atom(tokens, contexts, node.end))
        elif isinstance(node, IfNode):
            chosen = scope.get(node.ident)
            if chosen is not None:
                atoms.extend(expand(node.branches[chosen][1], tokens, contexts, scope))
        elif not node.shape:
            atoms.append(_atom(tokens, contexts, node.start))
            atoms.extend(expand(node.body, tokens, contexts, scope))
            if node.else_tag is not None:
                atoms.append(_atom(tokens, contexts, node.else_tag))
                atoms.extend(expand(node.else_body, tokens, contexts, scope))
            atoms.append(_atom(tokens, contexts, node.end))
        else:
            atoms.extend(_unroll(node, tokens, contexts, scope.get(node.ident)))
    return atoms


def _unroll(
    node: ForNode,
    tokens: Sequence[Token],
    contexts: Sequence[Context],
    state: tuple[list[Scope], Scope | None] | None,
) -> list[Atom]:
    if state is None:
        return []
    iterations, otherwise = state
    start = tokens[node.start]
    context = contexts[node.start]
    atoms: list[Atom] = []
    for number, sub in enumerate(iterations):
        # re-enter the designer's own loop, so the loop variable and `loop` are bound
        atoms.append(Atom("tag", start.text, context, start))
        atoms.append(Atom("tag", f"{{% if loop.index0 == {number} %}}", context, start))
        atoms.extend(expand(node.body, tokens, contexts, sub))
        atoms.append(Atom("tag", "{% endif %}", context, start))
        atoms.append(Atom("tag", "{% endfor %}", context, start))
    if not iterations and otherwise is not None:
        atoms.extend(expand(node.else_body, tokens, contexts, otherwise))
    return atoms


def _atom(tokens: Sequence[Token], contexts: Sequence[Context], index: int) -> Atom:
    token = tokens[index]
    return Atom(token.kind, token.text, contexts[index], token)


def compile_template(
    assembled: AssembledTemplate, env: SandboxedEnvironment, text_env: SandboxedEnvironment
) -> CompiledTemplate:
    """Compile an assembled template; the static shape is compiled eagerly."""
    tokens = assembled.tokens
    contexts = classify(tokens)
    tree = parse_tree(tokens, contexts)
    source = shape_source(tree, tokens)
    shape_template = None
    if source is not None:
        filename = f"<mailsmith:{assembled.name}:shape>"
        try:
            shape_template = env.from_string(source)
        except TemplateSyntaxError as exc:
            raise TemplateError(
                f"template syntax error: {exc.message}", file=assembled.file
            ) from None
        shape_template.filename = filename
    compiled = CompiledTemplate(
        assembled, env, text_env, tokens, contexts, tree, shape_template, shape_source=source
    )
    if source is None:
        compiled.shape("")
    return compiled


__all__ = ["CompiledTemplate", "CompiledShape", "compile_template", "Protected"]


_IN_SEGMENT_CALL_RE = re.compile(r"""\bin_segment\(\s*(['"])([A-Za-z0-9_:.-]+)\1\s*\)""")
_HAS_FIELDS_CALL_RE = re.compile(r"""\bhas_fields\(((?:\s*'[A-Za-z_][A-Za-z0-9_]*'\s*,?)+)\)""")


def inline_calls(text: str) -> str:
    """Rewrite literal ``in_segment('x')``/``has_fields('a')`` calls as plain expressions.

    Same meaning, but no sandboxed function call per use: these run dozens of
    times per recipient.
    """
    text = _IN_SEGMENT_CALL_RE.sub(
        lambda m: f"({m.group(1)}{m.group(2)}{m.group(1)} in segments)", text
    )

    def fields(match: re.Match[str]) -> str:
        names = re.findall(r"'([A-Za-z_][A-Za-z0-9_]*)'", match.group(1))
        return "(" + " and ".join(f"({n} | fallback(none)) is not none" for n in names) + ")"

    return _HAS_FIELDS_CALL_RE.sub(fields, text)


_FOLDABLE_FILTERS = frozenset(
    {
        "money",
        "urlencode",
        "title",
        "upper",
        "lower",
        "capitalize",
        "trim",
        "e",
        "escape",
        "fallback",
        "default",
        "d",
        "string",
        "int",
        "float",
        "round",
        "replace",
        "truncate",
    }
)
# a template that rebinds `vars` itself gets no folding
_BINDS_VARS_RE = re.compile(
    r"\{%-?\s*(?:set\s+vars\b|with\s+vars\s*=|for\s+[\w\s,]*?\bvars\s*(?:,|\bin\b)|macro\b[^%]*\bvars\b)"
)


def optimize_tokens(
    tokens: Sequence[Token], env: SandboxedEnvironment, constants: Mapping[str, Any]
) -> list[Token]:
    """Per-template work done once: literal segment calls inlined, constants folded.

    ``{{ vars.shop_url }}`` depends only on the campaign, so it is rendered (and
    escaped) once here and becomes plain text; in the demo that is over half of
    all expressions.
    """
    may_fold = not any(t.kind == "tag" and _BINDS_VARS_RE.search(t.text) for t in tokens)
    result = []
    for token in tokens:
        if token.kind in ("var", "tag"):
            token = replace(token, text=inline_calls(token.text))
        if may_fold and token.kind == "var":
            folded = _fold(token, env, constants)
            if folded is not None:
                token = Token("data", folded, token.file, token.line)
        result.append(token)
    return result


def _fold(token: Token, env: SandboxedEnvironment, constants: Mapping[str, Any]) -> str | None:
    try:
        tree = env.parse(token.text)
    except TemplateSyntaxError:
        return None  # reported with its position when the template compiles
    if meta.find_undeclared_variables(tree) != {"vars"}:
        return None
    filters = {node.name for node in tree.find_all(nodes.Filter)}
    if not filters <= _FOLDABLE_FILTERS or any(True for _ in tree.find_all(nodes.Call)):
        return None
    try:
        return env.from_string(token.text).render(vars=constants)
    except Exception:  # noqa: BLE001 - not foldable; the per-recipient render reports it
        return None
