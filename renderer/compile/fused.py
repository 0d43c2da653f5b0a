"""One template for both parts: the HTML and the plain text of a layout in one pass.

A layout's HTML and text templates come from the same compiled HTML, so they have
the same control flow: the same ``{% %}`` tags in the same order, with different
static text and expressions between them. :func:`fuse_sources` interleaves them
into one Jinja source: after the HTML between two tags comes the text between the
same two tags, in an ``{% autoescape false %}`` block that
:class:`~renderer.compile.fusedgen.FusedCodeGenerator` writes to a second output
(``context.msj_text``). Every tag runs once instead of twice, and an expression
that stands in both parts between the same two tags is evaluated once: the HTML
keeps its value in a local (``msj_share_<n>(...)``), the text prints that local
(``msj_use_<n>()``).

Only expressions whose value cannot depend on the part they print in are shared:
names, constants, attribute and item access, tests, comparisons, arithmetic, the
pure filters of :data:`SHARED_FILTERS` and the methods of :data:`PURE_METHODS`
with constant arguments (no other calls, no ``~``, whose result depends on
autoescaping). A template with control flow whose output would land elsewhere
(macros, call and filter blocks, block ``set``, ``autoescape``) or whitespace
control on a tag is not fused (:func:`fuse_sources` returns None) and renders in
two passes as before; so is a shape whose HTML and text disagree on the tags.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from renderer.compile.placeholders import Atom, Protected, restore
from renderer.compile.structure import Context
from renderer.content import Token

TEXT_OPEN = "{% autoescape false %}"
TEXT_CLOSE = "{% endautoescape %}"
SHARE_PREFIX = "msj_share_"
USE_PREFIX = "msj_use_"
# Filters whose result is the same whether the output is escaped or not.
SHARED_FILTERS = frozenset(
    {
        "fallback",
        "money",
        "date",
        "title",
        "upper",
        "lower",
        "capitalize",
        "trim",
        "default",
        "d",
        "int",
        "float",
        "round",
        "string",
        "urlencode",
        "length",
        "count",
        "first",
        "last",
        "abs",
    }
)
# Methods whose result depends only on the value and constant arguments (dates, text).
PURE_METHODS = frozenset({"strftime", "isoformat", "upper", "lower", "title", "strip"})
_PURE_NODES = (
    nodes.Name,
    nodes.Const,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Slice,
    nodes.Filter,
    nodes.Test,
    nodes.CondExpr,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Neg,
    nodes.Add,
    nodes.Sub,
    nodes.Mul,
    nodes.Div,
    nodes.FloorDiv,
    nodes.Mod,
    nodes.Keyword,
)
_SPLIT_RE = re.compile(r"<!--MSJ(\d+)Z-->|MSJ(\d+)Z")
_VAR_RE = re.compile(r"\A\{\{([-+]?)(.*?)([-+]?)\}\}\Z", re.DOTALL)
_TAG_KEYWORD_RE = re.compile(r"\A\{%([-+]?)\s*(\w+)(.*?)([-+]?)%\}\Z", re.DOTALL)
_FUSABLE_TAGS = frozenset({"if", "elif", "else", "endif", "for", "endfor", "with", "endwith"})


@dataclass(frozen=True)
class FusedSource:
    """The fused Jinja source of a layout and its (source line, designer token) map."""

    source: str
    line_map: list[tuple[int, Token]]


def _pieces(marked: str) -> list[str | int]:
    """``marked`` as static strings and marker numbers, in order."""
    result: list[str | int] = []
    pos = 0
    for match in _SPLIT_RE.finditer(marked):
        result.append(marked[pos : match.start()])
        result.append(int(match.group(1) or match.group(2)))
        pos = match.end()
    result.append(marked[pos:])
    return result


def is_fusable(atoms: Mapping[int, Atom]) -> bool:
    """Whether the designer's tags allow one pass (see the module docstring)."""
    for atom in atoms.values():
        if "msj_" in atom.text.lower() and atom.kind != "data":
            return False  # our own names: a template must not reach them
        if atom.kind != "tag":
            continue
        found = _TAG_KEYWORD_RE.match(atom.text)
        if found is None or found.group(1) or found.group(4):
            return False
        keyword, rest = found.group(2), found.group(3)
        if keyword == "set" and "=" in rest:
            continue
        if keyword not in _FUSABLE_TAGS:
            return False
    return True


def _is_pure_method_call(node: nodes.Call) -> bool:
    """``value.strftime('%B %Y')`` and the like: a method of :data:`PURE_METHODS`
    with constant arguments (the sandbox still checks the call where it runs)."""
    callee = node.node
    return (
        isinstance(callee, nodes.Getattr)
        and callee.attr in PURE_METHODS
        and not (node.kwargs or node.dyn_args or node.dyn_kwargs)
        and all(isinstance(arg, nodes.Const) for arg in node.args)
    )


def is_shareable(env: SandboxedEnvironment, text: str) -> bool:
    """Whether the output expression ``text`` (``{{ ... }}``) may be evaluated once
    for both parts: pure, independent of escaping, not a constant."""
    try:
        body = env.parse(text).body
    except TemplateSyntaxError:
        return False
    if len(body) != 1 or not isinstance(body[0], nodes.Output) or len(body[0].nodes) != 1:
        return False
    expr = body[0].nodes[0]
    seen_name = False
    for node in [expr, *expr.find_all(nodes.Node)]:
        if isinstance(node, nodes.Call) and _is_pure_method_call(node):
            continue
        if not isinstance(node, _PURE_NODES):
            return False
        if isinstance(node, nodes.Filter) and node.name not in SHARED_FILTERS:
            return False
        if isinstance(node, nodes.Filter | nodes.Call) and (node.dyn_args or node.dyn_kwargs):
            return False
        seen_name = seen_name or isinstance(node, nodes.Name)
    return seen_name


def _text_chunks(text: list[str | int], is_user_tag: Any) -> list[list[str | int]]:
    """The text part between two designer tags (before the first, ..., after the last)."""
    chunks: list[list[str | int]] = [[]]
    for piece in text:
        if is_user_tag(piece):
            chunks.append([])
        else:
            chunks[-1].append(piece)
    return chunks


def _stretches(html: list[str | int], is_user_tag: Any) -> dict[int, int]:
    """For each marker of the HTML: how many designer tags stand before it."""
    stretch_of: dict[int, int] = {}
    stretch = 0
    for piece in html:
        if is_user_tag(piece):
            stretch += 1
        elif isinstance(piece, int):
            stretch_of[piece] = stretch
    return stretch_of


def _share(
    chunks: list[list[str | int]],
    stretch_of: dict[int, int],
    atoms: dict[int, Atom],
    env: SandboxedEnvironment,
    add: Any,
) -> dict[int, str]:
    """Rewrite each expression standing in both parts between the same two tags as
    shared (in ``atoms``); return, for each, the marker of its use in the text."""
    shared: dict[int, str] = {}
    for index, chunk in enumerate(chunks):
        for piece in chunk:
            if isinstance(piece, int) and stretch_of.get(piece) == index:
                atom = atoms[piece]
                found = _VAR_RE.match(atom.text)
                if found and atom.kind == "var" and is_shareable(env, atom.text):
                    left, expr, right = found.groups()
                    share = f"{{{{{left} {SHARE_PREFIX}{piece}(({expr})) {right}}}}}"
                    atoms[piece] = Atom("var", share, atom.context, atom.origin)
                    use = f"{{{{{left} {USE_PREFIX}{piece}() {right}}}}}"
                    shared[piece] = add(use, atom.origin, "var")
    return shared


def fuse_sources(
    html_marked: str,
    text_marked: str,
    protected: Protected,
    user_atoms: int,
    env: SandboxedEnvironment,
    origin: Token,
) -> FusedSource | None:
    """The fused source of a layout, or None when it cannot be fused.

    ``html_marked`` and ``text_marked`` still carry the markers of ``protected``;
    atoms numbered from ``user_atoms`` on were added by the compiler (column CSS)
    and stand in the HTML only.
    """
    atoms = dict(protected.atoms)
    if not is_fusable({n: a for n, a in atoms.items() if n < user_atoms}):
        return None
    html = _pieces(html_marked)
    text = _pieces(text_marked)

    def is_user_tag(piece: str | int) -> bool:
        return isinstance(piece, int) and piece < user_atoms and atoms[piece].kind == "tag"

    html_tags = [p for p in html if is_user_tag(p)]
    if html_tags != [p for p in text if isinstance(p, int) and atoms[p].kind == "tag"]:
        return None
    chunks = _text_chunks(text, is_user_tag)
    stretch_of = _stretches(html, is_user_tag)

    def add(text: str, atom_origin: Token = origin, kind: str = "tag") -> str:
        number = len(atoms)
        atoms[number] = Atom(kind, text, Context("content", ""), atom_origin)
        return f"MSJ{number}Z"

    shared = _share(chunks, stretch_of, atoms, env, add)

    def text_block(index: int) -> str:
        body = "".join(
            shared.get(p, f"MSJ{p}Z") if isinstance(p, int) else p for p in chunks[index]
        )
        return add(TEXT_OPEN) + body + add(TEXT_CLOSE) if body else ""

    out: list[str] = []
    stretch = 0
    for piece in html:
        if is_user_tag(piece):
            out.append(text_block(stretch))
            stretch += 1
        out.append(f"MSJ{piece}Z" if isinstance(piece, int) else piece)
    out.append(text_block(stretch))
    source, line_map = restore("".join(out), Protected("", atoms))
    return FusedSource(source, line_map)


__all__ = ["FusedSource", "fuse_sources", "is_fusable", "is_shareable"]
