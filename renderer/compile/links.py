"""Compile stage: the links of a layout's HTML decorated with the campaign's UTM
parameters (:mod:`renderer.tracking` has the rules).

Runs on MJML's inlined HTML, Jinja still carried as markers, before the plain-text
part is made from it (so the text part shows the decorated links too). A literal URL
gets the parameters in the HTML source; a utm value with Jinja becomes a new marker
(the name of its value in the render's context); an href holding expressions
becomes one marker whose expression is the whole URL through the ``track_url`` filter.

The utm values are evaluated once per recipient, not once per link: the markers read
them from the render's context (:data:`VALUES` + key, :data:`PARAMETERS`), which
:meth:`LinkDecorator.values` fills before the layout renders (a campaign's dozens of
links would otherwise evaluate the same ``variant('hero')`` dozens of times).
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import escape

from renderer.compile.placeholders import MARKER_RE, Atom, Protected
from renderer.compile.structure import Context
from renderer.content import Token
from renderer.tracking import TrackingSpec, track_url, tracked_query, utm_value, with_query
from segments.errors import TemplateError
from segments.yamlsrc import LineDict, load_yaml

# context names the compiled links read (a leading "_": not a profile field's name); names,
# not a dict, because a compiled template looks a name up once, a subscript at every use
VALUES = "_mailsmith_"  # + utm key: that value URL-encoded (the values with Jinja)
PARAMETERS = "_mailsmith_utm_parameters"  # ((utm key, (value,)), ...): track_url's argument

_LINK_RE = re.compile(
    r"""(<(?:a|area)\b[^>]*?\shref\s*=\s*)(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE
)
_EXPRESSION_RE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_VAR_TEXT_RE = re.compile(r"^\{\{[-+]?(.*?)[-+]?\}\}$", re.DOTALL)


class LinkDecorator:
    """Decorates the links of one compiled layout's HTML (with Jinja markers)."""

    def __init__(self, spec: TrackingSpec, file: str) -> None:
        self.spec = spec
        self.parameters = spec.parameters()
        self.file = file
        self.lines = _utm_lines(file)  # errors in a utm value point at its campaign line
        self._expressions: list[Any] | None = None  # per parameter: compiled, or None
        self._variants_only = True  # whether every value reads nothing but variant()
        self._by_variants: dict[Any, Any] = {}

    def bind(self, env: SandboxedEnvironment, fields: Collection[str] = ()) -> None:
        """Compile the utm values with Jinja in ``env`` (once, before any render);
        ``fields``: the recipients' field names (a field may shadow ``variant``)."""
        expressions: list[Any] = []
        self._expressions = expressions
        for key, template in self.parameters:
            if "{{" not in template:
                expressions.append(None)
                continue
            source = _pieces(template)
            try:
                names = meta.find_undeclared_variables(env.parse("{{ " + source + " }}"))
            except TemplateSyntaxError as exc:
                line = self.lines.get(key, self.lines.get(""))
                raise TemplateError(
                    f"{self.file}:{line}: tracking: {key}: {exc.message}",
                    file=self.file,
                    line=line,
                    hint="a utm value is text with {{ expressions }} (docs/delivery.md)",
                ) from None
            self._variants_only &= names <= {"variant"} and "variant" not in fields
            compiled = env.compile_expression(source)
            expressions.append(lambda context, c=compiled: c(**context) or ())

    def decorate(self, source: str, protected: Protected) -> str:
        """``source`` (MJML's HTML, markers in it) with its links decorated; new Jinja
        goes into ``protected`` as new markers."""
        if not self.parameters:
            return source

        def replace(match: re.Match[str]) -> str:
            quote_char = '"' if match.group(2) is not None else "'"
            value = match.group(2) if match.group(2) is not None else match.group(3)
            new = self._decorate_value(value, protected)
            return f"{match.group(1)}{quote_char}{new}{quote_char}"

        return _LINK_RE.sub(replace, source)

    def decorate_rendered(
        self, source: str, env: SandboxedEnvironment, context: Mapping[str, Any]
    ) -> str:
        """A rendered email's HTML with its links decorated (the naive pipeline's way:
        every link treated as :func:`~renderer.tracking.track_url` treats one)."""
        parameters = tuple(
            (key, tuple(env.compile_expression(_pieces(template))(**context) or ()))
            for key, template in self.parameters
        )

        def replace(match: re.Match[str]) -> str:
            value = match.group(2) if match.group(2) is not None else match.group(3)
            url = html.unescape(value)
            tracked = track_url(url, parameters, self.spec.exclude)
            new = value if tracked == url else str(escape(tracked))
            return f'{match.group(1)}"{new}"'

        return _LINK_RE.sub(replace, source)

    def _decorate_value(self, value: str, protected: Protected) -> str:
        numbers = [int(n) for n in MARKER_RE.findall(value)]
        if not numbers:
            existing = tracked_query(html.unescape(value), self.spec.exclude)
            if existing is None:
                return value
            query = "&amp;".join(
                f"{key}={self._literal_value(key, template, protected)}"
                for key, template in self.parameters
                if key not in existing
            )
            return with_query(value, query, "&amp;")
        atoms = [protected.atoms[n] for n in numbers]
        if any(a.kind != "var" for a in atoms) or any("unsubscribe" in a.text for a in atoms):
            return value  # (a tag inside a URL: left as written)
        text = "{{ " + self._dynamic(value, protected) + " }}"
        return self._marker(protected, text, atoms[0].origin)  # where the URL was written

    def _literal_value(self, key: str, template: str, protected: Protected) -> str:
        """A utm value in HTML source: encoded text, or a marker for its Jinja."""
        if "{{" not in template:
            return str(escape(quote(template, safe="")))
        origin = Token("var", "", self.file, self.lines.get(key, self.lines.get("", 1)))
        return self._marker(protected, "{{ " + VALUES + key + " }}", origin)

    def _dynamic(self, value: str, protected: Protected) -> str:
        """The Jinja expression of an href holding expressions, through ``track_url``."""
        pieces: list[str] = []
        position = 0
        for match in MARKER_RE.finditer(value):
            literal = html.unescape(value[position : match.start()])
            if literal:
                pieces.append(repr(literal))
            pieces.append(f"({_expression(protected.atoms[int(match.group(1))].text)})")
            position = match.end()
        if value[position:]:
            pieces.append(repr(html.unescape(value[position:])))
        url = " ~ ".join(pieces) if len(pieces) > 1 else pieces[0]
        return f"({url}) | track_url({PARAMETERS}, {self.spec.exclude!r})"

    def values(self, env: SandboxedEnvironment, context: dict[str, Any]) -> None:
        """Put one recipient's utm values into ``context`` (:data:`VALUES` + key,
        :data:`PARAMETERS`), each evaluated once; a value that reads only variants is
        kept per variant combination. Raises as the value's expression does."""
        if self._expressions is None:
            self.bind(env)
        variants = context.get("variants") or {}
        key = tuple(variants.items()) if self._variants_only else None
        found = self._by_variants.get(key) if key is not None else None
        if found is None:
            found = self._evaluate(env, context)
            if key is not None:
                self._by_variants[key] = found
        context.update(found[0])
        context[PARAMETERS] = found[1]

    def failing(self, context: Mapping[str, Any]) -> str:
        """The key of the first utm value whose expression raises for ``context``."""
        for (key, _), expression in zip(self.parameters, self._expressions or (), strict=True):
            try:
                if expression:
                    expression(context)
            except Exception:  # noqa: BLE001 (looking for the one that fails)
                return key
        return ""

    def _evaluate(
        self, env: SandboxedEnvironment, context: Mapping[str, Any]
    ) -> tuple[dict[str, str], tuple[tuple[str, tuple[Any, ...]], ...]]:
        parameters = []
        encoded = {}
        assert self._expressions is not None, "bind() first"
        for (key, template), expression in zip(self.parameters, self._expressions, strict=True):
            pieces = tuple(expression(context)) if expression else (template,)
            parameters.append((key, pieces))
            if expression:
                encoded[VALUES + key] = utm_value(pieces)
        return encoded, tuple(parameters)

    def _marker(self, protected: Protected, text: str, origin: Token) -> str:
        number = max(protected.atoms, default=-1) + 1
        protected.atoms[number] = Atom("var", text, Context("attr", "a"), origin)
        return f"MSJ{number}Z"


def _utm_lines(file: str) -> dict[str, int]:
    """The campaign file's line of each ``tracking.utm`` value (``utm_content``: 12),
    and of ``tracking:`` itself (key ``""``); empty when the file cannot be read."""
    path = Path(file)
    data = load_yaml(path) if path.is_file() else None
    if not isinstance(data, LineDict) or not isinstance(data.get("tracking"), LineDict):
        return {}
    tracking = data["tracking"]
    lines = {"": data.line_of("tracking")}
    utm = tracking.get("utm")
    if isinstance(utm, LineDict):
        lines.update({f"utm_{key}": utm.line_of(key) for key in utm})
    return lines


def _expression(var_text: str) -> str:
    match = _VAR_TEXT_RE.match(var_text.strip())
    return match.group(1).strip() if match else repr(var_text)


def _pieces(template: str) -> str:
    """A utm value template as a Jinja tuple of its pieces: ``('a-', (expr),)``."""
    pieces: list[str] = []
    position = 0
    for match in _EXPRESSION_RE.finditer(template):
        if match.start() > position:
            pieces.append(repr(template[position : match.start()]))
        pieces.append(f"({match.group(1).strip()})")
        position = match.end()
    if position < len(template):
        pieces.append(repr(template[position:]))
    return "(" + "".join(f"{p}, " for p in pieces) + ")"


__all__ = ["LinkDecorator"]
