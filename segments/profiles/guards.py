"""Checks that keep hostile profile values out of a build: nesting, control characters,
lone surrogates, and the one spelling of an id.

These are the limits README's "Profiles" section promises:

- a list or dict value nests at most :data:`MAX_DEPTH` levels (``[1]`` is one level,
  ``[[1]]`` two); deeper is ``invalid_value``;
- text holds no C0 control character other than tab, line feed and carriage return,
  and no lone surrogate (``"\\ud800"`` in JSON); either is ``invalid_text``;
- ids are compared, and kept, trimmed of whitespace, without zero-width characters and
  in Unicode NFC; case matters.

Every check here walks values without recursion, so a value nested 100,000 deep costs
time, never the stack.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from typing import Any

import pandas as pd

MAX_DEPTH = 32
"""Deepest nesting of a list or dict value (a flat list is 1)."""

CONTROL_PATTERN = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"
"""C0 control characters other than tab, line feed and carriage return."""

_CONTROL_RE = re.compile(CONTROL_PATTERN)
_SURROGATE_RE = re.compile("[\ud800-\udfff]")

# A JSON text that may hold a control character or a surrogate once parsed: raw C0
# characters, or their escapes (\u0000-\u001f, \b, \f) and surrogate escapes.
# (Arrow's regex engine runs it on whole columns.)
SUSPECT_JSON_PATTERN = CONTROL_PATTERN + r"|\\u00[01]|\\[bf]|\\u[dD][89a-fA-F]"

# Characters that change no visible text, dropped from ids before comparing.
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))

# JSON tokens that change the nesting depth, and strings (skipped whole, with their escapes).
_JSON_TOKEN_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}:]')


def is_bad_text(text: str) -> bool:
    """True when ``text`` holds a control character (see :data:`CONTROL_PATTERN`) or a
    lone surrogate."""
    return bool(_CONTROL_RE.search(text) or _SURROGATE_RE.search(text))


def has_bad_text(value: Any) -> bool:
    """True when any text in ``value`` (a str, or lists and dicts of them, keys too) is
    bad by :func:`is_bad_text`."""
    return _any_text(value, is_bad_text)


def has_surrogate(value: Any) -> bool:
    """True when any text in ``value`` (as :func:`has_bad_text` walks it) holds a lone
    surrogate, which no UTF-8 text, and so no Arrow column, can hold."""
    return _any_text(value, lambda text: _SURROGATE_RE.search(text) is not None)


def _any_text(value: Any, predicate: Callable[[str], bool]) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if predicate(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def is_too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when ``value`` nests lists/dicts more than ``limit`` levels."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list | tuple):
            if depth + 1 > limit:
                return True
            stack.extend((child, depth + 1) for child in item)
    return False


def may_be_too_deep(json_text: str, limit: int = MAX_DEPTH) -> bool:
    """False when the JSON text has too few brackets to nest past ``limit`` (a cheap
    pre-check before parsing or walking)."""
    return json_text.count("[") + json_text.count("{") > limit


def json_depth_exceeds(json_text: str, limit: int) -> tuple[bool, str | None]:
    """Whether a JSON text nests brackets more than ``limit`` deep, found without parsing
    it (so a text too deep for the parser is still located), and the top-level key of
    the object whose value does (None when there is none)."""
    depth = 0
    key: str | None = None
    previous = ""
    for match in _JSON_TOKEN_RE.finditer(json_text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                return True, key
        elif token in ("]", "}"):
            depth -= 1
        elif token == ":" and depth == 1 and previous.startswith('"'):
            key = _json_string(previous)
        previous = token
    return False, None


def _json_string(token: str) -> str | None:
    try:
        value = json.loads(token)
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def normalize_id(value: Any) -> Any:
    """An id as it is compared and kept: see the module docstring (None stays None, an
    id that is only whitespace and zero-width characters becomes None: missing)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text.isascii():
        text = unicodedata.normalize("NFC", text.translate(_ZERO_WIDTH)).strip()
    return text or None


def normalize_ids(values: pd.Series) -> pd.Series:
    """:func:`normalize_id` over a column of ids; plain ASCII ids without padding (the
    usual case) are left as they are without a Python call each."""
    if not isinstance(values.dtype, pd.StringDtype):
        return pd.Series([normalize_id(v) for v in values], index=values.index, dtype=object)
    plain = values.str.isascii() & (values.str.strip().str.len() == values.str.len())
    todo = values.notna().to_numpy(dtype=bool) & ~plain.to_numpy(dtype=bool, na_value=False)
    if not todo.any():
        return values
    out = values.copy()
    positions = todo.nonzero()[0]
    out.iloc[positions] = [normalize_id(v) for v in out.iloc[positions]]
    return out
