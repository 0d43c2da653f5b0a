"""The compiled HTML made ASCII: the template's own characters as references.

Runs once per shape, after inlining and before the Jinja is put back.
"""

from __future__ import annotations

import re

_NON_ASCII_RE = re.compile(r"[^\x00-\x7f]")
_STYLE_RE = re.compile(r"(<style\b[^>]*>.*?</style\s*>)", re.IGNORECASE | re.DOTALL)


def ascii_html(html: str) -> str:
    """The template's own non-ASCII characters as character references (``·`` -> ``&#183;``).

    Same document for every HTML parser, but an all-ASCII template keeps a
    recipient's whole email ASCII unless a profile value is not: joining, encoding
    and hashing an ASCII string is several times cheaper than a wider one. Inside
    ``<style>`` (raw text, where references are not decoded) nothing changes.
    """
    if html.isascii():
        return html
    parts = _STYLE_RE.split(html)
    for i in range(0, len(parts), 2):  # odd parts are <style> elements
        parts[i] = _NON_ASCII_RE.sub(lambda m: f"&#{ord(m.group(0))};", parts[i])
    return "".join(parts)
