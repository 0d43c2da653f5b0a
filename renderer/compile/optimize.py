"""Per-template work done before compiling: literal calls inlined, constants folded."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from jinja2 import meta, nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from renderer.content import Token

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
        # code generation: an unknown filter (TemplateAssertionError) raises here too
        if meta.find_undeclared_variables(tree) != {"vars"}:
            return None
    except TemplateSyntaxError:
        return None  # reported with its position when the template compiles
    filters = {node.name for node in tree.find_all(nodes.Filter)}
    if not filters <= _FOLDABLE_FILTERS or any(True for _ in tree.find_all(nodes.Call)):
        return None
    if any(hasattr(env.filters[name], "jinja_pass_arg") for name in filters):
        return None  # reads the recipient's context (``money`` in their locale: i18n)
    try:
        return env.from_string(token.text).render(vars=constants)
    except Exception:  # noqa: BLE001 - not foldable; the per-recipient render reports it
        return None
