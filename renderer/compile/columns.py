"""Column-width CSS kept only for the columns a recipient's email shows.

Runs once per shape on the inlined HTML, while the Jinja is still carried as
markers (see :mod:`renderer.compile.placeholders`).
"""

from __future__ import annotations

import re

from renderer.compile.placeholders import MARKER_RE, Atom, Protected
from renderer.compile.structure import Context
from renderer.content import Token

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
