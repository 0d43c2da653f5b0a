"""Profile values placed in ``href`` and ``src`` attributes: a scheme allow-list.

Autoescaping keeps a value inside its attribute, but not out of the URL's scheme:
a profile value ``javascript:alert(1)`` in ``<a href="{{ website }}">`` is a live
script link. Which output expressions start a URL attribute's value is decided
when a template compiles (:mod:`renderer.codegen`): only those are checked, so a
template where no expression starts a URL pays nothing, and URLs the designer
wrote (literal text, campaign ``vars`` folded into the template) are never
touched.

Allowed: ``http``, ``https``, ``mailto`` and ``tel``; for ``src`` (images)
``http``, ``https``, ``cid`` and ``data:image/``; and relative URLs (``/path``,
``page.html``, ``?q``, ``#top``, ``//host/path``). The scheme is read as a browser
reads it: after HTML character references are decoded (``&#106;avascript:``),
leading spaces and control characters dropped and tabs and newlines removed, in
any case. Anything else is replaced by :data:`SAFE_HREF` or :data:`SAFE_SRC`, with
a warning in the manifest, or rejects the recipient (``unsafe_url``) when the
campaign sets ``render: {unsafe_urls: reject}``.
"""

from __future__ import annotations

import html
import re
from typing import Any, Literal

from markupsafe import Markup, escape

UrlKind = Literal["href", "src"]

# Attributes whose value is a link (href) or a resource the client loads (src).
HREF_ATTRIBUTES = frozenset({"href", "action", "formaction", "xlink:href"})
SRC_ATTRIBUTES = frozenset({"src", "background", "background-url", "poster", "thumbnails-src"})
SAFE_HREF = "#"
SAFE_SRC = "about:blank"

_SCHEMES: dict[str, frozenset[str]] = {
    "href": frozenset({"http", "https", "mailto", "tel"}),
    "src": frozenset({"http", "https", "cid"}),
}
FAST_SAFE = ("https://", "http://", "/", "#")  # as most values start: no decoding needed
_SCHEME_RE = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*):")
_LEADING_RE = re.compile(r"^[\x00-\x20]+")
_TAB_NEWLINE_RE = re.compile(r"[\t\n\r]")
# An attribute name and `=`, then an opening quote (or none) and nothing else yet:
# the next expression starts the attribute's value.
_URL_ATTRIBUTE_RE = re.compile(
    r"""[\s"'](?P<name>[a-zA-Z][\w:.-]*)\s*=\s*["']?\s*$""",
)
_VALUE_END_RE = re.compile(r"""["'\s>/?#:]""")


def url_kind(before: str) -> UrlKind | None:
    """``href`` or ``src`` when ``before`` (compiled template text) ends where a URL
    attribute's value starts, else None."""
    match = _URL_ATTRIBUTE_RE.search(before[-200:])
    if match is None:
        return None
    name = match.group("name").lower()
    if name in HREF_ATTRIBUTES:
        return "href"
    if name in SRC_ATTRIBUTES:
        return "src"
    return None


def scheme_part(after: str) -> str:
    """The start of the literal text after an expression, up to and including the
    first character that ends a URL's scheme (what the check needs of it)."""
    match = _VALUE_END_RE.search(after)
    return after[: match.end()] if match else after


def is_safe_url(value: str, kind: UrlKind) -> bool:
    """Whether ``value`` (HTML text, as it stands in the attribute) has an allowed scheme."""
    if value.startswith(FAST_SAFE):
        return True
    text = html.unescape(value) if "&" in value else value
    text = _TAB_NEWLINE_RE.sub("", _LEADING_RE.sub("", text))
    match = _SCHEME_RE.match(text)
    if match is None:
        return not text.startswith(":")  # a relative URL
    scheme = match.group(1).lower()
    if scheme in _SCHEMES[kind]:
        return True
    return kind == "src" and scheme == "data" and text[5:].lower().startswith("image/")


def escaped_parts(parts: tuple[Any, ...]) -> Markup:
    """The expressions that start a URL attribute (``parts``), escaped and joined."""
    return Markup("").join(map(escape, parts))


def safe_value(kind: UrlKind) -> Markup:
    """What replaces an unsafe URL."""
    return Markup(SAFE_HREF if kind == "href" else SAFE_SRC)


__all__ = [
    "FAST_SAFE",
    "UrlKind",
    "escaped_parts",
    "is_safe_url",
    "safe_value",
    "scheme_part",
    "url_kind",
]
