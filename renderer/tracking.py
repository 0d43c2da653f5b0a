"""Tracked links: UTM parameters added to every http(s) link, once, at compile time.

``tracking: {utm: {source, medium, campaign, content, term}, exclude: [domains]}`` in
the campaign. Each ``href`` of an ``<a>`` or ``<area>`` in the compiled HTML (and so
each link the plain-text part shows) gets the set parameters, in that order:

- existing query parameters stay, and an existing ``utm_*`` parameter wins (the
  designer's hand-written value is kept, ours is not added); the query goes before
  the ``#fragment``;
- only ``http`` and ``https`` links: never ``mailto:``, ``tel:``, relative links or
  anchors; never a link to an excluded domain or its subdomains; never the
  unsubscribe link (an ``href`` that mentions ``unsubscribe``, as
  ``href="{{ unsubscribe_url }}"`` does: the same mark ``mailsmith check`` looks for);
- a value may hold Jinja (``content: "{{ variant('hero') }}"``): the compiled
  template then holds the decorated URL with that expression, URL-encoded at render
  by the ``utm_value`` filter (None renders as nothing).

A literal URL (written in the template, or a campaign ``vars`` value folded into it) is
decorated in the compiled template's source: nothing is added per recipient. A URL
that is itself an expression (``href="{{ product.url }}"``) is only known at render:
the compiled template wraps it in the ``track_url`` filter, which applies the same
rules to the rendered URL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import idna
from markupsafe import Markup
from pydantic import BaseModel, ConfigDict, Field, field_validator

UTM_KEYS = ("source", "medium", "campaign", "content", "term")

Pieces = tuple[tuple[str, tuple[Any, ...]], ...]  # (key, value pieces) per parameter


class UtmSpec(BaseModel):
    """The ``utm_*`` values; each may hold ``{{ expressions }}`` (no ``{% %}``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str | None = None
    medium: str | None = None
    campaign: str | None = None
    content: str | None = None
    term: str | None = None

    @field_validator("*")
    @classmethod
    def _expressions_only(cls, value: str | None) -> str | None:
        if value is not None and ("{%" in value or "{#" in value):
            raise ValueError("a utm value may hold {{ expressions }}, not {% tags %}")
        return value


class TrackingSpec(BaseModel):
    """``tracking:``: UTM parameters for every http(s) link (renderer/tracking.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    utm: UtmSpec = UtmSpec()
    exclude: tuple[str, ...] = Field(
        default=(), description="Domains (and their subdomains) whose links stay as written."
    )

    @field_validator("exclude")
    @classmethod
    def _lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(ascii_host(d).lstrip(".") for d in value if d.strip())

    def parameters(self) -> list[tuple[str, str]]:
        """``(utm_key, value template)`` for each value set, in :data:`UTM_KEYS` order."""
        values = self.utm.model_dump()
        return [(f"utm_{key}", values[key]) for key in UTM_KEYS if values[key] is not None]


def is_excluded(host: str, exclude: Sequence[str]) -> bool:
    """Whether ``host`` is one of the ``exclude`` domains or a subdomain of one."""
    host = ascii_host(host)
    return any(host == domain or host.endswith("." + domain) for domain in exclude)


def ascii_host(host: str) -> str:
    """``host`` lower-cased, IDNA-encoded when it is not ASCII (``bücher.example`` is
    ``xn--bcher-kva.example``), without a final dot."""
    host = host.strip().lower().rstrip(".")
    if host.isascii():
        return host
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError:
        return host


def tracked_query(url: str, exclude: Sequence[str]) -> set[str] | None:
    """The query keys already in ``url`` when it is to be decorated, else None."""
    if "unsubscribe" in url.lower():
        return None
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if is_excluded(parts.hostname, exclude):
        return None
    return {key for key, _ in parse_qsl(parts.query, keep_blank_values=True)}


def with_query(url: str, query: str, amp: str = "&") -> str:
    """``url`` with ``query`` appended before any fragment (``amp`` joins parameters:
    ``&amp;`` in HTML source)."""
    if not query:
        return url
    base, hash_, fragment = url.partition("#")
    if "?" not in base:
        separator = "?"
    elif base.endswith(("?", "&", amp)):
        separator = ""
    else:
        separator = amp
    return f"{base}{separator}{query}{hash_}{fragment}"


# track_url's results by its arguments. The same few URLs built from data come back for
# every recipient (a catalog's product links), and parsing them costs more than the rest
# of a render; the function is pure, so a look-up gives the same bytes. Per process;
# emptied when full so memory stays bounded. (utm values need none: renderer/compile/
# links.py evaluates them once per recipient, or per variant combination.)
_CACHE_SIZE = 4096
_urls: dict[Any, Any] = {}


def utm_value(pieces: Any) -> str:
    """A utm value rendered: its pieces (literal text and expression results) joined,
    None as nothing, URL-encoded. The ``utm_value`` filter."""
    if not isinstance(pieces, tuple | list):
        pieces = (pieces,)
    return quote("".join("" if p is None else str(p) for p in pieces), safe="")


def track_url(url: Any, parameters: Pieces, exclude: Sequence[str] = ()) -> Any:
    """The ``track_url`` filter: ``url`` (rendered) decorated as the module docstring
    says, or unchanged when it is not a tracked link."""
    # keyed by type too: Markup and str are equal but give different results
    key = (type(url), url, parameters, exclude)
    try:
        return _urls[key]
    except (KeyError, TypeError):
        pass
    result = _track_url(url, parameters, exclude)
    if type(url) in (str, Markup) and _plain(parameters):
        if len(_urls) >= _CACHE_SIZE:
            _urls.clear()
        _urls[key] = result
    return result


def _plain(parameters: Any) -> bool:
    """Whether ``parameters`` holds only strings and None (whose str() is fixed), so a
    result may be kept for them."""
    try:
        return all(
            type(k) is str
            and all(p is None or type(p) is str for p in (v if isinstance(v, tuple) else (v,)))
            for k, v in parameters
        )
    except (TypeError, ValueError):
        return False


def _track_url(url: Any, parameters: Pieces, exclude: Sequence[str]) -> Any:
    text = url.unescape() if isinstance(url, Markup) else url
    if not isinstance(text, str):
        return url
    existing = tracked_query(text, exclude)
    if existing is None:
        return url
    query = "&".join(f"{k}={utm_value(v)}" for k, v in parameters if k not in existing)
    return with_query(text.strip(), query)


TRACKING_FILTERS: dict[str, Callable[..., Any]] = {"track_url": track_url, "utm_value": utm_value}


__all__ = [
    "TRACKING_FILTERS",
    "tracked_query",
    "TrackingSpec",
    "UtmSpec",
    "is_excluded",
    "track_url",
    "utm_value",
    "with_query",
]
