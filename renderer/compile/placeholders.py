"""Carrying Jinja through the MJML compiler and the CSS inliner, and back.

Each ``{{ }}``/``{% %}`` becomes ``MSJ<n>Z`` (letters and digits survive
attribute URL-escaping and text handling), wrapped as an HTML comment where it
stands between HTML elements, and in an ``<mj-raw>`` where it stands between
MJML elements. After compilation the markers are replaced by the original tag
text. Each restored tag is preceded by a Jinja comment holding a newline, so
that every tag starts a line of its own in the compiled source (the output is
unchanged) and a failing line maps back to exactly one designer position.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from renderer.compile.structure import Context
from renderer.content import Token
from segments.errors import TemplateError

MARKER_RE = re.compile(r"MSJ(\d+)Z")
_CARRIED_RE = re.compile(r"<!--MSJ(\d+)Z-->|MSJ(\d+)Z")
_JINJA_OPEN_RE = re.compile(r"\{(?=[{%#])")


@dataclass(frozen=True, slots=True)
class Atom:
    """A token placed in an expanded template (generated tags borrow their origin)."""

    kind: str
    text: str
    context: Context
    origin: Token


@dataclass
class Protected:
    """MJML source with markers, and what each marker stands for."""

    source: str
    atoms: dict[int, Atom]

    @property
    def tag_markers(self) -> frozenset[str]:
        return frozenset(f"MSJ{n}Z" for n, a in self.atoms.items() if a.kind == "tag")


def protect(atoms: Sequence[Atom]) -> Protected:
    """Replace Jinja in ``atoms`` by markers the MJML compiler passes through."""
    pieces: list[str] = []
    table: dict[int, Atom] = {}
    for atom in atoms:
        if atom.kind == "data":
            if MARKER_RE.search(atom.text):
                raise TemplateError(
                    "the text 'MSJ<digits>Z' is reserved by mailsmith",
                    file=atom.origin.file,
                    line=atom.origin.line,
                )
            pieces.append(atom.text)
            continue
        if atom.kind == "comment":
            continue
        n = len(table)
        table[n] = atom
        marker = f"MSJ{n}Z"
        if atom.kind == "var" or atom.context.kind in ("rcdata", "attr"):
            pieces.append(marker)
        elif atom.context.kind == "struct":
            pieces.append(f"<mj-raw><!--{marker}--></mj-raw>")
        else:
            pieces.append(f"<!--{marker}-->")
    return Protected("".join(pieces), table)


def escape_literal_jinja(text: str) -> str:
    """Make ``{{``, ``{%`` and ``{#`` produced by the compilers print literally."""
    return _JINJA_OPEN_RE.sub("{{ '{' }}", text)


def own_line(tag: str) -> str:
    """``tag`` after a Jinja comment holding a newline: it starts a line, output unchanged.

    A ``{%-`` tag gets a ``{#-`` comment, so the whitespace before both is stripped
    as the tag alone would strip it.
    """
    return ("{#-\n#}" if tag[2:3] == "-" else "{#\n#}") + tag


def restore(compiled: str, protected: Protected) -> tuple[str, list[tuple[int, Token]]]:
    """Put the Jinja back; return the source and (source line, designer token) pairs."""
    compiled = escape_literal_jinja(compiled)
    pieces: list[str] = []
    line_map: list[tuple[int, Token]] = []
    line, pos = 1, 0
    for match in _CARRIED_RE.finditer(compiled):
        before = compiled[pos : match.start()]
        pieces.append(before)
        line += before.count("\n")
        atom = protected.atoms[int(match.group(1) or match.group(2))]
        pieces.append(own_line(atom.text))
        line += 1
        line_map.append((line, atom.origin))
        line += atom.text.count("\n")
        pos = match.end()
    pieces.append(compiled[pos:])
    return "".join(pieces), line_map
