"""HTML normalized for snapshots: readable, stable diffs.

:func:`normalize_html` writes one tag per line, indented by nesting, with its
attributes sorted by name, whitespace collapsed in text, attribute values and
inline styles (``a:b;c:d`` becomes ``a: b; c: d``), character references decoded
(a non-breaking space is written ``&nbsp;``), one CSS rule per line in ``<style>``,
and the markup inside Outlook's conditional comments laid out like any other
(the text of ``<pre>`` and ``<textarea>`` stays as written, unindented: it shows).
What a minifier may change without changing what a reader sees (line breaks,
indentation, attribute order, ``&#39;`` or ``'``) leaves the result alone; any
visible change (a word, an attribute value, a tag) shows as a changed line.

The standard library's parser: no dependency, and it never rewrites the markup
(no implied ``<tbody>``), so what it shows is what the email holds.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())
PREFORMATTED = frozenset({"pre", "textarea"})
INDENT = "  "
_SPACE_RE = re.compile(r"[ \t\n\r\f]+")  # HTML's whitespace: not U+00A0, which shows
_CONDITIONAL_RE = re.compile(r"^(\[if [^\]]*\]>)(.*?)(<!\[endif\])$", re.DOTALL)
_RULE_END_RE = re.compile(r"(?<=[{};])\s*")


def collapse(text: str) -> str:
    """Runs of HTML whitespace as one space, trimmed."""
    return _SPACE_RE.sub(" ", text).strip()


def _text(value: str) -> str:
    return html.escape(value, quote=False).replace("\xa0", "&nbsp;")


def _attribute(name: str, value: str | None) -> str:
    if value is None:
        return name
    value = collapse(value)
    if name == "style":
        value = _style(value)
    escaped = value.replace("&", "&amp;").replace('"', "&quot;").replace("\xa0", "&nbsp;")
    return f'{name}="{escaped}"'


def _style(value: str) -> str:
    """Declarations as ``name: value`` joined by ``; `` (their order kept: it cascades)."""
    parts = []
    for declaration in value.split(";"):
        name, sep, rest = declaration.partition(":")
        if sep:
            parts.append(f"{name.strip().lower()}: {rest.strip()}")
        elif declaration.strip():
            parts.append(declaration.strip())
    return "; ".join(parts)


def _css(text: str) -> list[str]:
    """A style sheet as one line per rule opening, declaration run and closing brace."""
    flat = collapse(text)
    return [line for line in _RULE_END_RE.split(flat) if line] if flat else []


class _Normalizer(HTMLParser):
    """Collects the normalized lines; ``depth`` follows the open elements."""

    def __init__(self, depth: int = 0) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.depth = depth
        self.stack: list[str] = []

    def emit(self, text: str, depth: int | None = None) -> None:
        self.lines.append(INDENT * (self.depth if depth is None else depth) + text)

    def tag(self, tag: str, attrs: list[tuple[str, str | None]], close: str) -> str:
        ordered = sorted(attrs, key=lambda pair: pair[0])
        inner = " ".join([tag, *(_attribute(n, v) for n, v in ordered)])
        return f"<{inner}{close}>"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.emit(self.tag(tag, attrs, ""))
        if tag not in VOID:
            self.stack.append(tag)
            self.depth += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.emit(self.tag(tag, attrs, " /"))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:  # close what it closes; a stray end tag changes no depth
            while self.stack:
                self.depth -= 1
                if self.stack.pop() == tag:
                    break
        self.emit(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1] == "style":
            level = 0  # inside how many braces
            for line in _css(data):
                level -= line.startswith("}")
                self.emit(line, self.depth + max(level, 0))
                level += line.endswith("{")
            return
        if PREFORMATTED.intersection(self.stack):  # its whitespace shows: kept as written
            for line in data.split("\n"):
                self.emit(_text(line).rstrip() or "", 0)
            return
        text = collapse(data)
        if text:
            self.emit(_text(text))

    def handle_comment(self, data: str) -> None:
        match = _CONDITIONAL_RE.match(data.strip())
        if match is None:
            self.emit(f"<!--{collapse(data)}-->")
            return
        self.emit(f"<!--{collapse(match.group(1))}")
        inner = _Normalizer(self.depth + 1)
        inner.feed(match.group(2))
        inner.close()
        self.lines.extend(inner.lines)
        self.emit(f"{match.group(3)}-->")

    def handle_decl(self, decl: str) -> None:
        self.emit(f"<!{collapse(decl)}>")

    def unknown_decl(self, data: str) -> None:  # <![endif]> and the like outside comments
        self.emit(f"<![{collapse(data)}]>")


def normalize_html(source: str) -> str:
    """``source`` as snapshot text: one tag per line (see the module docs), ending in a
    newline."""
    parser = _Normalizer()
    parser.feed(source)
    parser.close()
    return "\n".join(parser.lines) + "\n"
