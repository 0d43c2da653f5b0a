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

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

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
    starts: list[int] = field(default_factory=list)  # where each placed atom starts in source
    placed: list[Atom] = field(default_factory=list)  # ... and which atom that is

    @property
    def tag_markers(self) -> frozenset[str]:
        return frozenset(f"MSJ{n}Z" for n, a in self.atoms.items() if a.kind == "tag")

    def origin_at(self, offset: int) -> tuple[str, int] | None:
        """The designer's file and line of position ``offset`` in :attr:`source`."""
        index = bisect.bisect_right(self.starts, offset) - 1
        if index < 0:
            return None
        atom = self.placed[index]
        line = atom.origin.line
        if atom.kind == "data":
            line += atom.text.count("\n", 0, offset - self.starts[index])
        return atom.origin.file, line


def protect(atoms: Sequence[Atom]) -> Protected:
    """Replace Jinja in ``atoms`` by markers the MJML compiler passes through."""
    protected = Protected("", {})
    pieces: list[str] = []
    length = 0
    for atom in atoms:
        piece = _piece(atom, protected.atoms)
        if piece:
            protected.starts.append(length)
            protected.placed.append(atom)
            pieces.append(piece)
            length += len(piece)
    protected.source = "".join(pieces)
    return protected


def _piece(atom: Atom, table: dict[int, Atom]) -> str:
    """What stands for ``atom`` in the MJML source (its marker is added to ``table``)."""
    if atom.kind == "data":
        if MARKER_RE.search(atom.text):
            raise TemplateError(
                "the text 'MSJ<digits>Z' is reserved by mailsmith",
                file=atom.origin.file,
                line=atom.origin.line,
            )
        return atom.text
    if atom.kind == "comment":
        return ""
    n = len(table)
    table[n] = atom
    marker = f"MSJ{n}Z"
    if atom.kind == "var" or atom.context.kind in ("rcdata", "attr"):
        return marker
    if atom.context.kind == "struct":
        return f"<mj-raw><!--{marker}--></mj-raw>"
    return f"<!--{marker}-->"


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
