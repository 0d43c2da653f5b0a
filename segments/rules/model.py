"""Compiled segment rules, and matching one condition: on a scalar or on a column.

:mod:`segments.rules.ruleset` parses the YAML rule language into these nodes and runs
them over profiles; the kernels here are shared by both of its evaluators (one
profile at a time, and vectorized over a pandas chunk), which is how the two
always agree.
"""

from __future__ import annotations

import numbers
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import reduce
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api import types as pdt

# --- the rule model -----------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """``{field, op, value}``: one test on one profile field, compiled."""

    field: str
    op: str
    value: Any = None  # the threshold as written (dates normalized to UTC)
    operands: tuple[Any, ...] = ()  # what the value is compared with
    classes: frozenset[str] = frozenset()  # value classes that can match
    window: timedelta | None = None
    pattern: re.Pattern[str] | None = None
    line: int | None = None


@dataclass(frozen=True)
class Group:
    """``{all: [...]}`` (every child matches) or ``{any: [...]}`` (at least one does)."""

    kind: Literal["all", "any"]
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    """``{not: node}``: the child does not match."""

    child: Node


@dataclass(frozen=True)
class SegmentRef:
    """``{segment: name}``: another segment of the same set matches."""

    name: str
    line: int | None = None


Node = Condition | Group | Not | SegmentRef


@dataclass(frozen=True)
class Segment:
    """A named segment: its rule and where it was defined."""

    name: str
    rule: Node
    file: str | None = None
    line: int | None = None


# --- evaluation: one kernel per operator, shared by scalars and arrays -----------

_Kernel = Callable[[Any, tuple[Any, ...]], Any]
_KERNELS: dict[str, _Kernel] = {
    "eq": lambda x, a: x == a[0],
    "ne": lambda x, a: x != a[0],
    "lt": lambda x, a: x < a[0],
    "lte": lambda x, a: x <= a[0],
    "gt": lambda x, a: x > a[0],
    "gte": lambda x, a: x >= a[0],
    "before": lambda x, a: x < a[0],
    "after": lambda x, a: x > a[0],
    "older_than": lambda x, a: x < a[0],
    "between": lambda x, a: (x >= a[0]) & (x <= a[1]),
    "within": lambda x, a: (x >= a[0]) & (x <= a[1]),
    "in": lambda x, a: reduce(operator.or_, (x == v for v in a)),
    "not_in": lambda x, a: reduce(operator.and_, (x != v for v in a)),
}
_NONE_TYPES = (type(None), type(pd.NaT), type(pd.NA))


def _class_of(kind: type) -> str:
    """The value class of a Python type: str, num, bool, dt, list, dict, missing, other."""
    if issubclass(kind, _NONE_TYPES):
        return "missing"
    if issubclass(kind, bool | np.bool_):
        return "bool"
    if issubclass(kind, str):
        return "str"
    if issubclass(kind, date | np.datetime64):
        return "dt"
    if issubclass(kind, timedelta | np.timedelta64):
        return "other"
    if issubclass(kind, numbers.Real):
        return "num"
    if issubclass(kind, list | tuple | np.ndarray):
        return "list"
    return "dict" if issubclass(kind, Mapping) else "other"


def _timestamp(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _datetime64(value: datetime) -> np.datetime64:
    """An aware datetime as a naive-UTC numpy datetime64, for array comparisons."""
    return np.datetime64(_timestamp(value).tz_localize(None).to_datetime64())


def _scalar_view(value: Any) -> tuple[str, Any]:
    """(class, normalized value) of one profile value; class 'missing' if missing."""
    cls = _class_of(type(value))
    if cls in ("list", "dict", "other"):
        return cls, value
    if cls == "missing" or (cls == "str" and value == "") or pd.isna(value):
        return "missing", None
    return cls, _timestamp(value) if cls == "dt" else value


def match_value(cond: Condition, value: Any, as_of: datetime) -> bool:
    """Does one profile value satisfy ``cond``?"""
    cls, value = _scalar_view(value)
    if cond.op in ("exists", "missing"):
        return (cls == "missing") == (cond.op == "missing")
    if cls not in cond.classes:
        return False
    operands = _operands(cond, as_of, vector=False)
    return bool(_apply(cond, cls, value, operands, vector=False))


def _operands(cond: Condition, as_of: datetime, *, vector: bool) -> tuple[Any, ...]:
    found = (as_of - cond.window, as_of) if cond.window is not None else cond.operands
    if not vector:
        return found
    return tuple(_datetime64(v) if isinstance(v, datetime) else v for v in found)


def _apply(cond: Condition, cls: str, x: Any, operands: tuple[Any, ...], *, vector: bool) -> Any:
    """Run ``cond``'s operator on a value (or an array of values) of class ``cls``."""
    if cond.op in _KERNELS:
        return _KERNELS[cond.op](x, operands)
    hit: Any
    if vector:
        hit = _list_contains_vector(x, cond.value) if cls == "list" else _text_vector(cond, x)
    elif cls == "list":  # an item of the needle's class, equal to it
        kind = _class_of(type(cond.value))
        hit = any(c == kind and item == cond.value for c, item in map(_scalar_view, x))
    elif cond.pattern is not None:
        hit = cond.pattern.search(x) is not None
    else:
        hit = x.startswith(cond.value) if cond.op == "starts_with" else cond.value in x
    return np.logical_not(hit) if cond.op == "not_contains" else hit


def _text_vector(cond: Condition, x: np.ndarray) -> np.ndarray:
    text = pd.Series(x, dtype=object).str
    if cond.pattern is not None:
        hit = text.contains(cond.pattern, regex=True)
    elif cond.op == "starts_with":
        hit = text.startswith(cond.value)
    else:
        hit = text.contains(cond.value, regex=False)
    return np.asarray(hit, dtype=bool)


def _list_contains_vector(lists: np.ndarray, needle: Any) -> np.ndarray:
    """Which lists hold an item of ``needle``'s class equal to it (via explode)."""
    exploded = pd.Series(lists, dtype=object).explode()
    items = _object_column(exploded.to_numpy(dtype=object))
    hit = np.zeros(len(exploded), dtype=bool)
    part = items.parts.get(_class_of(type(needle)))
    if part is not None:
        hit[part[0]] = part[1] == needle
    rows = exploded.index.to_numpy()
    return np.bincount(rows, weights=hit, minlength=len(lists)) > 0


@dataclass(frozen=True)
class Column:
    """A frame column split by value class: class -> (row mask, values at those rows)."""

    missing: np.ndarray
    parts: dict[str, tuple[np.ndarray, np.ndarray]]


_TYPE_OF = np.frompyfunc(type, 1, 1)  # the type of each item of an object array
_CONVERT: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "bool": lambda v: v.astype(bool),
    "dt": lambda v: (
        pd.to_datetime(pd.Series(v, dtype=object), utc=True).dt.tz_localize(None).to_numpy()
    ),
}


def column_of(df: pd.DataFrame, field: str) -> Column:
    """``df[field]`` split by value class; an absent column is all missing."""
    if field not in df.columns:
        return Column(np.ones(len(df), dtype=bool), {})
    series = df[field]
    dtype = series.dtype
    if pdt.is_datetime64_any_dtype(dtype):
        if isinstance(dtype, pd.DatetimeTZDtype):
            series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        values = series.to_numpy()
        return _typed_column("dt", values, np.isnat(values))
    if pdt.is_bool_dtype(dtype):
        values = series.to_numpy(dtype=bool, na_value=False)
        return _typed_column("bool", values, series.isna().to_numpy())
    if pdt.is_numeric_dtype(dtype) and not pdt.is_complex_dtype(dtype):
        values = series.to_numpy(dtype=float, na_value=np.nan)
        return _typed_column("num", values, np.isnan(values))
    return _object_column(series.to_numpy(dtype=object))


def _typed_column(cls: str, values: np.ndarray, missing: np.ndarray) -> Column:
    present = ~missing
    return Column(missing, {cls: (present, values[present])})


def _object_column(values: np.ndarray) -> Column:
    """Split an object array by the class of each value's type."""
    if pdt.infer_dtype(values, skipna=True) == "string":  # the common case, made cheap
        missing = np.asarray(pd.isna(values), dtype=bool)
        missing[~missing] = values[~missing] == ""
        return _typed_column("str", values, missing)
    codes, kinds = pd.factorize(_TYPE_OF(values) if len(values) else values)
    classes = [_class_of(kind) for kind in kinds]  # a handful of types, not one per row
    row_class = np.array([*classes, "missing"])[codes]
    missing = np.asarray(pd.isna(values), dtype=bool) | (row_class == "missing")
    strings = row_class == "str"
    missing[strings] |= values[strings] == ""
    parts = {}
    for cls in set(classes) & {"str", "num", "bool", "dt", "list"}:
        present = (row_class == cls) & ~missing
        parts[cls] = (present, _CONVERT.get(cls, np.asarray)(values[present]))
    return Column(missing, parts)


def match_column(cond: Condition, column: Column, as_of: datetime) -> np.ndarray:
    """Which rows of ``column`` satisfy ``cond``, one class at a time."""
    if cond.op == "exists":
        return ~column.missing
    if cond.op == "missing":
        return column.missing.copy()
    operands = _operands(cond, as_of, vector=True)
    matched = np.zeros(len(column.missing), dtype=bool)
    for cls in cond.classes:
        mask, values = column.parts.get(cls, (None, ()))
        if len(values):
            matched[mask] = _apply(cond, cls, values, operands, vector=True)
    return matched
