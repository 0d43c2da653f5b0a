"""The data-aware token audit: how many of the real profiles a token would fail for.

A token that prints a field without a fallback, outside any ``{% if field %}``
guard and outside a block whose ``fields:`` require it, fails for every
recipient missing that field: rejected (``missing_token: reject``), printed blank
or stopping the build. For each such token on a field that is neither required nor
defaulted, the profile file is read once and the missing values counted, per
column and vectorized, as the renderer's ``is_missing`` sees them (empty,
whitespace-only or one of the campaign's ``na_values``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from jinja2 import nodes

from renderer.campaign import Campaign
from renderer.check.findings import Finding, Severity
from renderer.check.names import FALLBACK_FILTERS
from renderer.check.sources import Source
from renderer.specs import profile_file

_OUTCOME = {
    "reject": (Severity.WARNING, "they would be rejected"),
    "blank": (Severity.INFO, "it would print blank for them"),
    "error": (Severity.ERROR, "the build would stop at the first of them"),
}


@dataclass(frozen=True)
class BareToken:
    """A token printing ``field`` with nothing to print when it is missing."""

    field: str
    file: str
    line: int


def bare_tokens(
    parsed: Iterable[tuple[Source, nodes.Template]],
    optional: set[str],
    guarded_by_file: Mapping[str, set[str]],
) -> list[BareToken]:
    """Tokens printing one of the ``optional`` fields bare (no fallback, no guard).

    ``guarded_by_file``: fields a whole file may assume (a block's ``fields:``).
    """
    found = []
    for source, tree in parsed:
        if source.key:  # headers: a missing field rejects too, but lines are the key's
            guards = set()
        else:
            guards = set(guarded_by_file.get(source.file, set()))
        for name, node in _printed(tree.body, guards):
            if name in optional:
                found.append(BareToken(name, source.file, source.line(node.lineno)))
    return found


def _printed(body: list[nodes.Node], guards: set[str]) -> Iterator[tuple[str, nodes.Node]]:
    """(field, node) for each field printed bare in ``body``; ``guards`` hold fields an
    enclosing ``if`` (or ``has_fields``) tested."""
    for node in body:
        if isinstance(node, nodes.Output):
            for expression in node.nodes:
                name = _bare_name(expression)
                if name is not None and name not in guards:
                    yield name, expression
        elif isinstance(node, nodes.If):
            tested = _tested(node.test)
            yield from _printed(node.body, guards | tested)
            for branch in node.elif_:
                yield from _printed([branch], guards | tested)
            yield from _printed(node.else_, guards)
        else:
            for child in node.iter_child_nodes():
                if isinstance(child, nodes.Stmt):
                    yield from _printed([child], guards)


def _tested(test: nodes.Node) -> set[str]:
    """Fields a condition reads: a true test means they hold a value (``if city``,
    ``has_fields('city')``, ``city is defined``)."""
    names = {n.name for n in [test, *test.find_all(nodes.Name)] if isinstance(n, nodes.Name)}
    for call in test.find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name == "has_fields":
            names |= {a.value for a in call.args if isinstance(a, nodes.Const)}
    return names


def _bare_name(expression: nodes.Node) -> str | None:
    """The field an expression fails on when it is missing: ``{{ x }}``, ``{{ x | title }}``,
    ``{{ x.attr }}``; None with a fallback filter, or a choice (``or``, ``if``) in it."""
    node = expression
    while True:
        if isinstance(node, nodes.Filter):
            if node.name in FALLBACK_FILTERS or node.node is None:
                return None
            node = node.node
        elif isinstance(node, nodes.Getattr | nodes.Getitem | nodes.Call):
            node = node.node
        elif isinstance(node, nodes.Name):
            return node.name
        else:
            return None


def count_missing(campaign: Campaign, fields: set[str]) -> tuple[int, dict[str, int]]:
    """(rows, missing count per field) over the campaign's profile file, one pass."""
    rows = 0
    missing = dict.fromkeys(sorted(fields), 0)
    for chunk in profile_file(campaign).chunks():
        frame = chunk.frame
        rows += len(frame) + len(chunk.rejections)
        for name in missing:
            if name not in frame.columns:
                missing[name] += len(frame)
                continue
            missing[name] += int(_missing(frame[name]).sum())
    return rows, missing


def _missing(column: pd.Series) -> pd.Series:
    """Missing as the renderer sees it: null, or text that is empty after trimming."""
    empty = column.isna()
    if column.dtype == object:  # mixed values (JSONL): only text can be blank
        return empty | column.map(lambda v: isinstance(v, str) and not v.strip()).astype(bool)
    if pd.api.types.is_string_dtype(column.dtype):
        return empty | column.str.strip().eq("").fillna(False).astype(bool)
    return empty


def audit_findings(campaign: Campaign, tokens: list[BareToken]) -> Iterator[Finding]:
    """One ``missing-data`` finding per bare token on a field some profiles lack."""
    if not tokens:
        return
    rows, missing = count_missing(campaign, {t.field for t in tokens})
    severity, outcome = _OUTCOME[campaign.missing_token]
    for token in tokens:
        count = missing.get(token.field, 0)
        if not count:
            continue
        share = count / rows if rows else 0.0
        yield Finding(
            token.file,
            token.line,
            "missing-data",
            severity,
            f"{token.field} is missing for {count} profiles ({share:.0%}): {outcome}",
            f"write {{{{ {token.field} | fallback('...') }}}}, or guard it with "
            f"{{% if {token.field} %}}",
        )


def optional_fields(fields: Mapping[str, Any]) -> set[str]:
    """Schema fields a row may lack: neither required nor given a default."""
    return {
        name
        for name, spec in fields.items()
        if not getattr(spec, "required", False) and getattr(spec, "default", None) is None
    }
