"""The segment rule language: parsed once, evaluated per frame or per profile.

A segment is one rule node: ``{all: [...]}``, ``{any: [...]}``, ``{not: node}``,
``{segment: name}`` (in any order, never a cycle) or a condition
``{field: F, op: OP, value: V}``.

A value is missing when absent, None, NaN, NaT or ``""``. Every comparison on a
missing value is False (``ne``, ``not_in`` and ``not_contains`` too); ``exists``
and ``missing`` test for it; ``not`` simply negates its child.

Every value has a class: str, num (int or float, never bool), bool, dt (date or
datetime; naive means UTC), list or dict. A condition matches only the classes
its value implies (``lt: 5`` numbers, ``contains: x`` strings and lists), so a
type mismatch is False, alike in :meth:`SegmentSet.evaluate_frame` (whole
columns) and :meth:`SegmentSet.evaluate_profile` (one dict). With known field
types it is a :class:`SegmentRuleError` at parse time instead.

The compiled nodes, and the per-operator kernels both evaluators share, live in
:mod:`segments.rules.model`; this module parses and runs them.
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import reduce
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from segments.errors import SegmentRuleError
from segments.rules.model import (
    Column,
    Condition,
    Group,
    Node,
    Not,
    Segment,
    SegmentRef,
    column_of,
    match_column,
    match_value,
)
from segments.yamlsrc import load_yaml

FieldType = Literal["string", "int", "float", "bool", "date", "datetime", "list", "dict"]

_FIELD_CLASS = {"string": "str", "int": "num", "float": "num", "bool": "bool"}
_FIELD_CLASS |= {"date": "dt", "datetime": "dt", "list": "list", "dict": "dict"}
_CLASS_NAME = {"str": "string", "num": "number", "bool": "boolean", "dt": "date"}
_CLASS_NAME.update({"list": "list", "dict": "mapping"})
_SCALAR = frozenset({"str", "num", "bool", "dt"})
_ORDERED = frozenset({"str", "num", "dt"})
_TEXT = frozenset({"str"})
_DT = frozenset({"dt"})

# op -> (shape of its value, classes of field it applies to)
_OPS: dict[str, tuple[str, frozenset[str]]] = {
    **dict.fromkeys(["eq", "ne"], ("scalar", _SCALAR)),
    **dict.fromkeys(["lt", "lte", "gt", "gte"], ("scalar", _ORDERED)),
    **dict.fromkeys(["in", "not_in"], ("list", _SCALAR)),
    "between": ("pair", _ORDERED),
    **dict.fromkeys(["contains", "not_contains"], ("member", _TEXT | {"list"})),
    "starts_with": ("scalar", _TEXT),
    "matches": ("regex", _TEXT),
    **dict.fromkeys(["exists", "missing"], ("none", frozenset(_FIELD_CLASS.values()))),
    **dict.fromkeys(["within", "older_than"], ("window", _DT)),
    **dict.fromkeys(["before", "after"], ("when", _DT)),
}
_NODE_KEYS = ("all", "any", "not", "segment")
_CONDITION_KEYS = ("field", "op", "value")
_WINDOW = re.compile(r"\s*(\d+)\s*([mhdw])\s*")
_WINDOW_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


# --- parsing --------------------------------------------------------------------


class _BadValue(Exception):
    """A condition's value is malformed; the caller adds the location."""


@dataclass(frozen=True)
class _Ctx:
    file: str | None
    segment: str
    fields: Mapping[str, str] | None  # field name -> value class

    def error(self, message: str, line: int | None, **details: Any) -> SegmentRuleError:
        """An error at ``line`` of this segment (``details``: field=, hint=)."""
        return SegmentRuleError(message, file=self.file, line=line, segment=self.segment, **details)


def _line(raw: Any, key: str | None = None, default: int | None = None) -> int | None:
    """The line of ``raw`` (or of its ``key``) when it came from yamlsrc."""
    if key is not None and hasattr(raw, "line_of"):
        return int(raw.line_of(key)) or default
    return int(getattr(raw, "line", 0)) or default


def _close(word: str, options: Any) -> str | None:
    matches = difflib.get_close_matches(word, sorted(options), n=3)
    return f"did you mean {' or '.join(repr(m) for m in matches)}?" if matches else None


def parse_segments(
    data: Mapping[str, Any],
    *,
    fields: Mapping[str, FieldType] | None = None,
    source: str | None = None,
) -> SegmentSet:
    """Compile a mapping of segment name -> rule node into a :class:`SegmentSet`.

    ``fields`` maps the known profile fields to their types; when given, an
    unknown field or a type mismatch is an error. ``source`` names the file in
    errors when ``data`` did not come from :mod:`segments.yamlsrc`.
    """
    file = source or getattr(data, "file", None)
    if not isinstance(data, Mapping):
        raise SegmentRuleError(
            "'segments' must be a mapping of segment name to rule", file=file, line=_line(data)
        )
    classes = _field_classes(fields)
    segments: dict[str, Segment] = {}
    for name, raw in data.items():
        ctx, line = _Ctx(file, str(name), classes), _line(data, str(name))
        if not isinstance(name, str) or not name:
            raise ctx.error("a segment name must be a non-empty string", line)
        segments[name] = Segment(name, _parse_node(raw, ctx, line), file, line)
    _check_references(segments)
    return SegmentSet(segments)


def load_segments(path: str | Path, *, fields: Mapping[str, FieldType] | None = None) -> SegmentSet:
    """Load the ``segments:`` of a file (other top-level keys belong to others)."""
    data, file = load_yaml(path), str(path)
    if not isinstance(data, Mapping) or "segments" not in data:
        raise SegmentRuleError("expected a top-level 'segments:' mapping", file=file, line=1)
    if not isinstance(data["segments"], Mapping):
        message = "'segments' must be a mapping of segment name to rule"
        raise SegmentRuleError(message, file=file, line=_line(data, "segments"))
    return parse_segments(data["segments"], fields=fields, source=file)


def _field_classes(fields: Mapping[str, FieldType] | None) -> dict[str, str] | None:
    if fields is None:
        return None
    for name, kind in fields.items():
        if kind not in _FIELD_CLASS:
            hint = f"types are {', '.join(_FIELD_CLASS)}"
            message = f"unknown type '{kind}' for field '{name}'"
            raise SegmentRuleError(message, field=name, hint=hint)
    return {name: _FIELD_CLASS[kind] for name, kind in fields.items()}


def _parse_node(raw: Any, ctx: _Ctx, line: int | None) -> Node:
    if not isinstance(raw, Mapping):
        raise ctx.error("a rule must be a mapping: all, any, not, segment or field/op/value", line)
    line = _line(raw, default=line)
    if "field" in raw or "op" in raw:
        return _parse_condition(raw, ctx, line)
    for key in raw:
        if key not in _NODE_KEYS:
            hint = _close(str(key), _NODE_KEYS + _CONDITION_KEYS)
            raise ctx.error(f"unknown rule key '{key}'", _line(raw, key, line), hint=hint)
    if len(raw) != 1:
        raise ctx.error("a rule needs exactly one of all, any, not, segment", line)
    ((key, value),) = raw.items()
    key_line = _line(raw, key, line)
    if key == "not":
        return Not(_parse_node(value, ctx, key_line))
    if key == "segment":
        if not isinstance(value, str) or not value:
            raise ctx.error("'segment' needs a segment name", key_line)
        return SegmentRef(value, key_line)
    if not isinstance(value, list) or not value:
        raise ctx.error(f"'{key}' needs a non-empty list of rules", key_line)
    lines = getattr(value, "item_lines", None) or [key_line] * len(value)
    children = tuple(_parse_node(item, ctx, n) for item, n in zip(value, lines, strict=True))
    return Group("all" if key == "all" else "any", children)


def _parse_condition(raw: Mapping[str, Any], ctx: _Ctx, line: int | None) -> Condition:
    for key in raw:
        if key not in _CONDITION_KEYS:
            hint = _close(str(key), _CONDITION_KEYS)
            raise ctx.error(f"unknown condition key '{key}'", _line(raw, key, line), hint=hint)
    field, op = raw.get("field"), raw.get("op")
    if not isinstance(field, str) or not field:
        raise ctx.error("a condition needs a 'field' name", _line(raw, "field", line))
    if not isinstance(op, str) or op not in _OPS:
        hint = _close(str(op), _OPS) or f"operators are {', '.join(_OPS)}"
        raise ctx.error(f"unknown operator '{op}'", _line(raw, "op", line), field=field, hint=hint)
    known = _known_class(field, ctx, _line(raw, "field", line))
    if known is not None and known not in _OPS[op][1]:
        message = f"operator '{op}' does not apply to {_CLASS_NAME[known]} field '{field}'"
        raise ctx.error(message, _line(raw, "op", line), field=field)
    value_line = _line(raw, "value", line)
    if (_OPS[op][0] == "none") == ("value" in raw):
        needs = "takes no value" if "value" in raw else "needs a value"
        raise ctx.error(f"operator '{op}' {needs}", value_line, field=field)
    try:
        compiled = _compile_value(op, raw.get("value"), known)
    except _BadValue as exc:
        raise ctx.error(f"bad value for '{op}': {exc}", value_line, field=field) from None
    if known is not None and compiled and known not in compiled["classes"]:
        message = f"the value of '{op}' does not match the {_CLASS_NAME[known]} field '{field}'"
        raise ctx.error(message, value_line, field=field)
    return Condition(field=field, op=op, line=line, **compiled)


def _known_class(field: str, ctx: _Ctx, line: int | None) -> str | None:
    if ctx.fields is None:
        return None
    if field not in ctx.fields:
        raise ctx.error(
            f"unknown field '{field}'", line, field=field, hint=_close(field, ctx.fields)
        )
    return ctx.fields[field]


def _compile_value(op: str, raw: Any, known: str | None) -> dict[str, Any]:
    """The Condition attributes for ``op``'s value; raises _BadValue."""
    shape, applies = _OPS[op]
    if shape == "none":
        return {}
    if shape == "window":
        return {"value": raw, "window": _parse_window(raw), "classes": _DT}
    if shape in ("list", "pair"):
        values, cls = _scalars(raw, known, 2 if shape == "pair" else None)
    else:
        value, cls = _scalar(raw, "dt" if shape == "when" else known)
        values = (value,)
    if shape == "member":
        if cls == "dt":
            raise _BadValue("expected a string, number or boolean")
        classes = frozenset({"str", "list"} if cls == "str" else {"list"})
        return {"value": values[0], "operands": values, "classes": classes}
    if cls not in applies:
        wanted = " or ".join(sorted(_CLASS_NAME[c] for c in applies))
        raise _BadValue(f"expected a {wanted}, got a {_CLASS_NAME[cls]}")
    if shape == "pair" and values[0] > values[1]:
        raise _BadValue("the low end of 'between' is above the high end")
    shown = values if shape in ("list", "pair") else values[0]
    compiled = {"value": shown, "operands": values, "classes": frozenset({cls})}
    if shape == "regex":
        try:
            compiled["pattern"] = re.compile(values[0])
        except re.error as exc:
            raise _BadValue(f"invalid regular expression: {exc.msg}") from None
    return compiled


def _scalar(raw: Any, known: str | None) -> tuple[Any, str]:
    """A rule value and its class; strings become dates where a date is expected."""
    if isinstance(raw, bool):
        return raw, "bool"
    if isinstance(raw, int | float):
        if raw != raw:
            raise _BadValue("NaN is not a value")
        return raw, "num"
    if isinstance(raw, date):
        return _as_utc(raw), "dt"
    if isinstance(raw, str) and raw and known == "dt":
        try:
            return _as_utc(datetime.fromisoformat(raw)), "dt"
        except ValueError:
            raise _BadValue(f"'{raw}' is not an ISO date or datetime") from None
    if isinstance(raw, str) and raw:
        return raw, "str"
    raise _BadValue("expected a non-empty string, a number, a boolean or a date")


def _scalars(raw: Any, known: str | None, size: int | None) -> tuple[tuple[Any, ...], str]:
    if not isinstance(raw, list) or not raw or (size is not None and len(raw) != size):
        raise _BadValue("expected a [low, high] list" if size else "expected a non-empty list")
    pairs = [_scalar(item, known) for item in raw]
    classes = {cls for _, cls in pairs}
    if len(classes) > 1:
        raise _BadValue("the list mixes types")
    return tuple(value for value, _ in pairs), classes.pop()


def _parse_window(raw: Any) -> timedelta:
    """``30m``, ``24h``, ``7d``, ``2w`` -> timedelta (m is minutes)."""
    found = _WINDOW.fullmatch(raw) if isinstance(raw, str) else None
    if found is None or int(found.group(1)) == 0:
        raise _BadValue("expected a positive window like 30m, 24h, 7d or 2w")
    try:
        return timedelta(**{_WINDOW_UNITS[found.group(2)]: int(found.group(1))})
    except OverflowError:
        raise _BadValue("the window is too long") from None


def _as_utc(value: date) -> datetime:
    """A date or datetime as an aware UTC datetime (naive means UTC)."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _walk(node: Node) -> Iterator[Node]:
    yield node
    if isinstance(node, Group):
        for child in node.children:
            yield from _walk(child)
    elif isinstance(node, Not):
        yield from _walk(node.child)


def _check_references(segments: Mapping[str, Segment]) -> None:
    """Every ``segment:`` reference names a segment, and none closes a cycle."""
    refs = {
        name: [node for node in _walk(seg.rule) if isinstance(node, SegmentRef)]
        for name, seg in segments.items()
    }
    done: set[str] = set()

    def visit(path: list[str]) -> None:
        ctx = _Ctx(segments[path[-1]].file, path[-1], None)
        for ref in refs[path[-1]]:
            if ref.name not in segments:
                hint = _close(ref.name, segments)
                raise ctx.error(f"unknown segment '{ref.name}'", ref.line, hint=hint)
            if ref.name in path:
                cycle = " -> ".join([*path[path.index(ref.name) :], ref.name])
                raise ctx.error(f"segment reference cycle: {cycle}", ref.line)
            if ref.name not in done:
                visit([*path, ref.name])
        done.add(path[-1])

    for name in segments:
        if name not in done:
            visit([name])


# --- the segment set ------------------------------------------------------------


class SegmentSet:
    """Compiled segments, evaluated over a whole frame or one profile."""

    def __init__(self, segments: Mapping[str, Segment]) -> None:
        self._segments = dict(segments)

    @property
    def names(self) -> list[str]:
        """Segment names, in file order."""
        return list(self._segments)

    def __getitem__(self, name: str) -> Segment:
        return self._segments[name]

    def fields_used(self) -> set[str]:
        """Every profile field some condition reads."""
        return {
            node.field
            for segment in self._segments.values()
            for node in _walk(segment.rule)
            if isinstance(node, Condition)
        }

    def evaluate_frame(self, df: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
        """One bool column per segment, same index as ``df``, computed column-wise.

        A field missing from ``df`` counts as missing on every row.
        """
        as_of = _as_utc(as_of)
        columns: dict[str, Column] = {}

        def leaf(cond: Condition) -> np.ndarray:
            if cond.field not in columns:
                columns[cond.field] = column_of(df, cond.field)
            return match_column(cond, columns[cond.field], as_of)

        results = self._evaluate(leaf)
        return pd.DataFrame(
            {name: np.asarray(value, dtype=bool) for name, value in results.items()},
            index=df.index,
        )

    def evaluate_profile(self, profile: Mapping[str, Any], as_of: datetime) -> dict[str, bool]:
        """Segment name -> membership for one profile given as a plain dict."""
        as_of = _as_utc(as_of)
        results = self._evaluate(lambda cond: match_value(cond, profile.get(cond.field), as_of))
        return {name: bool(value) for name, value in results.items()}

    def explain_profile(
        self, name: str, profile: Mapping[str, Any], as_of: datetime
    ) -> list[dict[str, Any]]:
        """Each condition behind segment ``name`` (and the segments it uses), tested.

        The rows hold the profile's actual values: show them to the user who
        asked, never put them in logs or errors.
        """
        if name not in self._segments:
            hint = _close(name, self._segments)
            raise SegmentRuleError(f"unknown segment '{name}'", hint=hint, segment=name)
        as_of = _as_utc(as_of)
        rows: list[dict[str, Any]] = []
        pending, seen = [name], {name}
        while pending:
            segment = self._segments[pending.pop(0)]
            for node in _walk(segment.rule):
                if isinstance(node, SegmentRef) and node.name not in seen:
                    seen.add(node.name)
                    pending.append(node.name)
                elif isinstance(node, Condition):
                    actual = profile.get(node.field)
                    rows.append(
                        {
                            "segment": segment.name,
                            "field": node.field,
                            "op": node.op,
                            "threshold": node.value,
                            "actual": actual,
                            "matched": match_value(node, actual, as_of),
                            "line": node.line,
                        }
                    )
        return rows

    def _evaluate(self, leaf: Callable[[Condition], Any]) -> dict[str, Any]:
        """Evaluate every segment, ``leaf`` deciding conditions (bools or bool arrays)."""
        memo: dict[str, Any] = {}

        def node_value(node: Node) -> Any:
            if isinstance(node, Condition):
                return leaf(node)
            if isinstance(node, SegmentRef):
                return segment_value(node.name)
            if isinstance(node, Not):
                return np.logical_not(node_value(node.child))
            combine = operator.and_ if node.kind == "all" else operator.or_
            return reduce(combine, (node_value(child) for child in node.children))

        def segment_value(name: str) -> Any:
            if name not in memo:
                memo[name] = node_value(self._segments[name].rule)
            return memo[name]

        return {name: segment_value(name) for name in self._segments}
