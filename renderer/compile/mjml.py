"""The one module that talks to the MJML compiler (mjml-python, a binding of MRML).

MRML writes a newline or tab inside an attribute value as a Rust escape (the
two characters ``\\n``): a ``style`` attribute wrapped over several lines, as
formatters write it, would come out as CSS no browser reads and that the CSS
inliner refuses. Such values are first made what a browser reads them as: in a
URL the tabs and newlines are dropped (the URL standard removes them), anywhere
else each run of whitespace holding one is a single space.
"""

from __future__ import annotations

import re

import mjml

from segments.errors import MjmlError

_BREAKS = ("\n", "\t", "\r", "\f")
_TAG_RE = re.compile(r"""<[a-zA-Z][\w:.-]*(?:[^<>"']|"[^"]*"|'[^']*')*>""")
_ATTRIBUTE_RE = re.compile(r"""([\w:.-]+)(\s*=\s*)(?:"([^"]*)"|'([^']*)')""")
_URL_ATTRIBUTES = frozenset({"href", "src", "background-url", "action"})
_RUN_RE = re.compile(r"[ \t\n\r\f]*[\t\n\r\f][ \t\n\r\f]*")


def compile_mjml(source: str, *, file: str | None = None) -> str:
    """Compile MJML markup to HTML; raise :class:`MjmlError` naming ``file`` on failure."""
    try:
        return str(mjml.mjml2html(one_line_attributes(source)))
    except Exception as exc:  # the binding raises plain exceptions with MRML's message
        raise MjmlError(
            f"MJML compilation failed: {exc}",
            file=file,
            hint="check that every mj-* element is closed and allowed where it stands",
        ) from None


def one_line_attributes(source: str) -> str:
    """Attribute values holding newlines or tabs, as a browser reads them, on one line."""
    if not any(c in source for c in _BREAKS):
        return source
    return _TAG_RE.sub(_tag, source)


def _tag(match: re.Match[str]) -> str:
    text = match.group(0)
    return _ATTRIBUTE_RE.sub(_attribute, text) if any(c in text for c in _BREAKS) else text


def _attribute(match: re.Match[str]) -> str:
    name, equals, double, single = match.groups()
    value = double if double is not None else single
    if not any(c in value for c in _BREAKS):
        return match.group(0)
    quote = '"' if double is not None else "'"
    return f"{name}{equals}{quote}{one_line_value(name, value)}{quote}"


def one_line_value(name: str, value: str) -> str:
    """The value of attribute ``name`` as a browser reads it, without newlines or tabs."""
    if not any(c in value for c in _BREAKS):
        return value
    if name.lower() in _URL_ATTRIBUTES:
        return re.sub(r"[\t\n\r]", "", value).strip()
    return _RUN_RE.sub(" ", value).strip()
