"""Plain-text part from compiled HTML, done once per template shape.

The converter streams the HTML (no tree building, so nothing moves out of
tables) and keeps placeholder markers in document order: the text template is
compiled once and rendered per recipient like the HTML one. Links keep their
address as text: ``Shop now (https://...)``; a linked image's alt text is its
label, other images are left out; table cells are separated by spaces.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from renderer.compile.placeholders import MARKER_RE

_BLOCK = {
    "p",
    "div",
    "tr",
    "table",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "ul",
    "ol",
    "li",
    "blockquote",
    "section",
    "center",
    "hr",
    "tbody",
}
_SKIP = {"head", "style", "script", "title"}
_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}
_HIDDEN_RE = re.compile(r"display\s*:\s*none|mso-hide\s*:\s*all", re.IGNORECASE)


class _TextParser(HTMLParser):
    def __init__(self, is_tag_marker: frozenset[str]) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip: list[str] = []
        self.links: list[tuple[str, int]] = []
        self.tag_markers = is_tag_marker

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if self.skip:
            if tag not in _VOID:
                self.skip.append(tag)
            return
        if tag in _SKIP or _HIDDEN_RE.search(attributes.get("style", "")):
            if tag not in _VOID:
                self.skip.append(tag)
            return
        if tag == "br":
            self.out.append("\n")
        elif tag in _BLOCK:
            self.out.append("\n\n" if tag in {"p", "h1", "h2", "h3", "h4", "h5", "h6"} else "\n")
            if tag == "li":
                self.out.append("- ")
        elif tag == "img" and attributes.get("alt") and self.links:
            # a linked image: its alt text labels the link. An image outside a link
            # says nothing in plain text (its alt usually repeats the text beside it).
            self.out.append(f" {attributes['alt']} ")
        elif tag == "a":
            self.links.append((attributes.get("href", ""), len(self.out)))
        elif tag in ("td", "th"):
            self.out.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if self.skip:
            if self.skip[-1] == tag:
                self.skip.pop()
            return
        if tag == "a" and self.links:
            href, start = self.links.pop()
            label = re.sub(r"\s+", " ", "".join(self.out[start:])).strip()
            if href and not href.startswith("#") and href != label:
                self.out.append(f" ({href})" if label else href)
        elif tag in _BLOCK:
            self.out.append("\n\n" if tag in {"p", "h1", "h2", "h3", "h4", "h5", "h6"} else "\n")

    def handle_data(self, data: str) -> None:
        if self.skip:
            self._keep_tag_markers(data)
        else:
            self.out.append(data)

    def handle_comment(self, data: str) -> None:
        if MARKER_RE.fullmatch(data):
            if self.skip:
                self._keep_tag_markers(data)
            else:
                self.out.append(data)

    def _keep_tag_markers(self, data: str) -> None:
        # control flow must stay balanced even where the text shows nothing
        self.out.extend(
            m.group(0) for m in MARKER_RE.finditer(data) if m.group(0) in self.tag_markers
        )


def html_to_text(html: str, tag_markers: frozenset[str] = frozenset()) -> str:
    """Convert (placeholder-carrying) HTML to plain text."""
    parser = _TextParser(tag_markers)
    parser.feed(html)
    parser.close()
    text = "".join(parser.out).replace("\xa0", " ")
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return text + "\n"
