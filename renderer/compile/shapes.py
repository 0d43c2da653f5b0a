"""Shapes: the column layouts control flow inside a section can produce.

A *shape key* records, per recipient, which branches the layout-changing
``if``s take and how many times the layout-changing ``for``s run. The key is
the output of a small Jinja template (:func:`shape_source`); each distinct key
is parsed back (:func:`parse_shape`) and the template tree expanded for it
(:func:`expand`): branches chosen, loops unrolled, ready for MJML.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from renderer.compile.placeholders import Atom, own_line
from renderer.compile.structure import Context, ForNode, IfNode, Leaf, Node
from renderer.content import Token


@dataclass(frozen=True)
class ShapeSource:
    """The shape-key template's source, and (source line, designer token) pairs."""

    source: str
    line_map: list[tuple[int, Token]]


def shape_source(tree: Sequence[Node], tokens: Sequence[Token]) -> ShapeSource | None:
    """Jinja source whose output is the shape key; None when the layout is static.

    Each of the designer's tags starts a line of its own (:func:`own_line`), so a
    failing line names one designer position.
    """
    if not _has_shape(tree):
        return None
    pieces: list[str] = []
    line_map: list[tuple[int, Token]] = []
    line = 1
    for part in _shape_parts(tree, tokens):
        if isinstance(part, Token):
            line_map.append((line + 1, part))
            part = own_line(part.text)
        pieces.append(part)
        line += part.count("\n")
    return ShapeSource("".join(pieces), line_map)


def _has_shape(nodes: Sequence[Node]) -> bool:
    for node in nodes:
        if isinstance(node, IfNode) and (
            node.shape or _has_shape([c for _, k in node.branches for c in k])
        ):
            return True
        if isinstance(node, ForNode) and node.shape:
            return True
    return False


def _shape_parts(nodes: Sequence[Node], tokens: Sequence[Token]) -> list[str | Token]:
    """The designer's tags (as tokens) and the key's own marks, in source order."""
    parts: list[str | Token] = []
    for node in nodes:
        if isinstance(node, Leaf):
            if tokens[node.index].kind == "tag":
                parts.append(tokens[node.index])
        elif isinstance(node, IfNode):
            for number, (tag, children) in enumerate(node.branches):
                parts.append(tokens[tag])
                if node.shape:
                    parts.append(f"I{node.ident}={number};")
                parts.extend(_shape_parts(children, tokens))
            parts.append(tokens[node.end])
        elif node.shape:
            parts.extend((f"F{node.ident}[", tokens[node.start], "("))
            parts.extend(_shape_parts(node.body, tokens))
            parts.append(")")
            if node.else_tag is not None:
                parts.extend((tokens[node.else_tag], "E("))
                parts.extend(_shape_parts(node.else_body, tokens))
                parts.append(")")
            parts.extend((tokens[node.end], "]"))
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
