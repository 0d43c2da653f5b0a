"""``<html lang dir>`` from the recipient's locale (campaigns with ``i18n:``).

MJML writes ``<html lang="en" dir="auto" ...>``. A localized campaign's compiled
template holds expressions there instead, ``lang="{{ lang }}" dir="{{ text_dir }}"``
(as new markers, like :mod:`.links`): compiled once, filled per recipient from the
context values of :meth:`renderer.i18n.Localizer.context_values`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from markupsafe import escape

from renderer.compile.placeholders import Atom, Protected
from renderer.compile.structure import Context
from renderer.content import Token

_HTML_TAG_RE = re.compile(r"<html\b[^>]*>", re.IGNORECASE)
_LANG_DIR_RE = re.compile(r"""\s(?:lang|dir)\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+)""", re.IGNORECASE)


def localize_html(source: str, protected: Protected, origin: Token) -> str:
    """``source`` (MJML's HTML, markers in it) with ``<html>``'s ``lang`` and ``dir``
    set by expressions; a document without ``<html>`` is returned as it is."""
    match = _HTML_TAG_RE.search(source)
    if match is None:
        return source
    tag = _LANG_DIR_RE.sub("", match.group(0))
    lang = _marker(protected, "{{ lang }}", origin)
    direction = _marker(protected, "{{ text_dir }}", origin)
    tag = f'<html lang="{lang}" dir="{direction}"{tag[5:]}'
    return source[: match.start()] + tag + source[match.end() :]


def localize_rendered(html: str, context: Mapping[str, Any]) -> str:
    """A rendered email's ``<html>`` with the recipient's ``lang`` and ``dir`` (the naive
    pipeline's way: once per email, what :func:`localize_html` compiles in once)."""
    match = _HTML_TAG_RE.search(html)
    if match is None:
        return html
    tag = _LANG_DIR_RE.sub("", match.group(0))
    lang, direction = escape(context["lang"]), escape(context["text_dir"])
    tag = f'<html lang="{lang}" dir="{direction}"{tag[5:]}'
    return html[: match.start()] + tag + html[match.end() :]


def _marker(protected: Protected, text: str, origin: Token) -> str:
    number = max(protected.atoms, default=-1) + 1
    protected.atoms[number] = Atom("var", text, Context("attr", "html"), origin)
    return f"MSJ{number}Z"
