"""Where each Jinja token stands in the MJML document, and the control-flow tree.

The compile-once pipeline has to know, for every ``{{ }}`` and ``{% %}``,
whether it sits between MJML elements (*structural*: it will be carried through
the MJML compiler inside an ``<mj-raw>``), inside the HTML content of an ending
element such as ``<mj-text>`` (*content*: carried as an HTML comment), inside
``<mj-title>``/``<mj-preview>`` (*rcdata*: carried as plain text), or inside an
attribute (*attr*: expressions only). Control flow directly inside
``<mj-section>``/``<mj-group>`` changes how many columns MJML sees, so it is
compiled per structural *shape* instead (see :mod:`renderer.compile.shapes`).
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field

from renderer.content import Token
from segments.errors import TemplateError

ENDING = {
    "mj-text",
    "mj-button",
    "mj-table",
    "mj-raw",
    "mj-navbar-link",
    "mj-accordion-title",
    "mj-accordion-text",
    "mj-social-element",
    "mj-title",
    "mj-preview",
    "mj-style",
    "mj-attributes",
    "mj-breakpoint",
    "mj-font",
    "mj-html-attributes",
}
RCDATA = {"mj-title", "mj-preview"}
NO_JINJA = {"mj-style", "mj-attributes", "mj-breakpoint", "mj-font", "mj-html-attributes"}
RAW_PARENTS = {"mj-body", "mj-wrapper", "mj-section", "mj-group", "mj-column", "mj-hero"}
COUNT_SENSITIVE = {"mj-section", "mj-group"}

_TAG_RE = re.compile(
    r"""<!--.*?-->|<(/?)([a-zA-Z][\w:.-]*)((?:[^>"']|"[^"]*"|'[^']*')*)>""", re.DOTALL
)
_MARK_RE = re.compile(r"\x00(\d+)\x00")


@dataclass(frozen=True, slots=True)
class Context:
    """Where a token stands: kind is struct, content, rcdata, attr or forbidden."""

    kind: str
    parent: str


def classify(tokens: Sequence[Token]) -> list[Context]:
    """Give every token its MJML context (data tokens get their enclosing one too)."""
    marked = "".join(t.text if t.kind == "data" else f"\x00{i}\x00" for i, t in enumerate(tokens))
    contexts: list[Context] = [Context("struct", "")] * len(tokens)
    for index, context in _scan(marked):
        contexts[index] = context
    for index, token in enumerate(tokens):
        _check(token, contexts[index])
    return contexts


def _scan(marked: str) -> Iterator[tuple[int, Context]]:
    stack: list[str] = []
    pos = 0
    while True:
        match = _TAG_RE.search(marked, pos)
        end = match.start() if match else len(marked)
        yield from _marks(marked[pos:end], _structural(stack))
        if match is None:
            return
        yield from _marks(match.group(0), Context("attr", stack[-1] if stack else ""))
        pos = match.end()
        closing, name = match.group(1), (match.group(2) or "").lower()
        if not name.startswith("mj") or match.group(0).startswith("<!--"):
            continue
        if closing:
            while stack and stack.pop() != name:
                pass
        elif match.group(3).rstrip().endswith("/"):
            continue
        elif name in ENDING:
            pos = yield from _content(marked, pos, name, stack)
        else:
            stack.append(name)


def _structural(stack: list[str]) -> Context:
    if "mj-head" in stack:
        return Context("forbidden", "mj-head")
    return Context("struct", stack[-1] if stack else "")


def _content(
    marked: str, pos: int, name: str, stack: list[str]
) -> Generator[tuple[int, Context], None, int]:
    close = re.compile(rf"</{re.escape(name)}\s*>", re.IGNORECASE).search(marked, pos)
    end = close.start() if close else len(marked)
    kind = "forbidden" if name in NO_JINJA else "rcdata" if name in RCDATA else "content"
    inner, inner_pos = marked[pos:end], 0
    for match in _TAG_RE.finditer(inner):
        yield from _marks(inner[inner_pos : match.start()], Context(kind, name))
        in_tag = "forbidden" if kind == "forbidden" else "attr"
        if match.group(0).startswith("<!--"):
            in_tag = kind
        yield from _marks(match.group(0), Context(in_tag, name))
        inner_pos = match.end()
    yield from _marks(inner[inner_pos:], Context(kind, name))
    return close.end() if close else len(marked)


def _marks(text: str, context: Context) -> Iterator[tuple[int, Context]]:
    for match in _MARK_RE.finditer(text):
        yield int(match.group(1)), context


def _check(token: Token, context: Context) -> None:
    if token.kind in ("data", "comment"):
        return
    where = f"<{context.parent}>" if context.parent else "the document root"
    if context.kind == "forbidden":
        raise TemplateError(
            f"Jinja is not supported inside {where}",
            file=token.file,
            line=token.line,
            hint="keep <mj-head>, <mj-style> and <mj-attributes> static; personalize the body",
        )
    if token.kind == "tag" and context.kind == "attr":
        raise TemplateError(
            "a {% %} tag cannot stand inside an attribute",
            file=token.file,
            line=token.line,
            hint="use an inline expression such as {{ 'a' if cond else 'b' }}",
        )
    if context.kind == "struct":
        if token.kind == "var":
            raise TemplateError(
                f"{{{{ }}}} output directly inside {where} would be dropped by MJML",
                file=token.file,
                line=token.line,
                hint="put the expression inside a content element such as <mj-text>",
            )
        if context.parent not in RAW_PARENTS:
            raise TemplateError(
                f"control flow directly inside {where} is not supported",
                file=token.file,
                line=token.line,
                hint="wrap whole <mj-section>, <mj-column> or content elements instead",
            )


@dataclass
class Leaf:
    index: int


@dataclass
class IfNode:
    """``{% if %}`` with its branches: (index of the opening/elif/else tag, children)."""

    branches: list[tuple[int, list[Node]]]
    end: int = -1
    shape: bool = False
    ident: int = -1


@dataclass
class ForNode:
    start: int
    body: list[Node] = field(default_factory=list)
    else_tag: int | None = None
    else_body: list[Node] = field(default_factory=list)
    end: int = -1
    shape: bool = False
    ident: int = -1


Node = Leaf | IfNode | ForNode


def parse_tree(tokens: Sequence[Token], contexts: Sequence[Context]) -> list[Node]:
    """Build the if/for tree; other tags stay leaves. Mark shape-compiled nodes."""
    root: list[Node] = []
    stack: list[tuple[IfNode | ForNode, list[Node]]] = []
    current = root
    for index, token in enumerate(tokens):
        keyword = token.keyword if token.kind == "tag" else ""
        if keyword == "if":
            opened = IfNode(branches=[(index, [])])
            current.append(opened)
            stack.append((opened, current))
            current = opened.branches[0][1]
        elif keyword == "for":
            loop = ForNode(start=index)
            current.append(loop)
            stack.append((loop, current))
            current = loop.body
        elif keyword in ("elif", "else"):
            current = _branch(stack, index, keyword, tokens, contexts)
        elif keyword in ("endif", "endfor"):
            current = _close(stack, index, keyword, tokens, contexts)
        else:
            current.append(Leaf(index))
    if stack:
        opener = stack[-1][0]
        first = opener.branches[0][0] if isinstance(opener, IfNode) else opener.start
        raise TemplateError(
            f"'{tokens[first].keyword}' is never closed",
            file=tokens[first].file,
            line=tokens[first].line,
        )
    _mark_shapes(root, contexts, tokens, counter=[0])
    return root


def _same_place(
    tokens: Sequence[Token], contexts: Sequence[Context], first: int, other: int
) -> None:
    if contexts[first] != contexts[other]:
        raise TemplateError(
            f"'{tokens[other].keyword}' is in a different MJML element than its "
            f"'{tokens[first].keyword}' (line {tokens[first].line})",
            file=tokens[other].file,
            line=tokens[other].line,
            hint="each branch must wrap whole MJML elements",
        )


def _branch(
    stack: list[tuple[IfNode | ForNode, list[Node]]],
    index: int,
    keyword: str,
    tokens: Sequence[Token],
    contexts: Sequence[Context],
) -> list[Node]:
    token = tokens[index]
    if not stack:
        raise TemplateError(
            f"'{keyword}' outside of an if or for", file=token.file, line=token.line
        )
    node = stack[-1][0]
    if isinstance(node, IfNode):
        _same_place(tokens, contexts, node.branches[0][0], index)
        node.branches.append((index, []))
        return node.branches[-1][1]
    if keyword == "elif" or node.else_tag is not None:
        raise TemplateError(
            f"unexpected '{keyword}' in a for loop", file=token.file, line=token.line
        )
    _same_place(tokens, contexts, node.start, index)
    node.else_tag = index
    return node.else_body


def _close(
    stack: list[tuple[IfNode | ForNode, list[Node]]],
    index: int,
    keyword: str,
    tokens: Sequence[Token],
    contexts: Sequence[Context],
) -> list[Node]:
    token = tokens[index]
    expected = IfNode if keyword == "endif" else ForNode
    if not stack or not isinstance(stack[-1][0], expected):
        raise TemplateError(f"unexpected '{keyword}'", file=token.file, line=token.line)
    node, parent = stack.pop()
    first = node.branches[0][0] if isinstance(node, IfNode) else node.start
    _same_place(tokens, contexts, first, index)
    node.end = index
    return parent


def _mark_shapes(
    nodes: list[Node], contexts: Sequence[Context], tokens: Sequence[Token], counter: list[int]
) -> bool:
    """Mark nodes compiled per shape; return whether any node below is one."""
    any_shape = False
    for node in nodes:
        if isinstance(node, Leaf):
            continue
        first = node.branches[0][0] if isinstance(node, IfNode) else node.start
        children = (
            [c for _, kids in node.branches for c in kids]
            if isinstance(node, IfNode)
            else node.body + node.else_body
        )
        below = _mark_shapes(children, contexts, tokens, counter)
        direct = contexts[first].kind == "struct" and contexts[first].parent in COUNT_SENSITIVE
        node.shape = direct or (isinstance(node, ForNode) and below)
        if node.shape:
            node.ident = counter[0]
            counter[0] += 1
        any_shape = any_shape or node.shape or below
    return any_shape
