"""What markup uses, in caniemail's terms: each CSS property, value, at-rule, selector,
HTML element and attribute found in a text, as a caniemail feature slug and an offset.

The same scanner reads both sides of the caniemail lint: the designer's MJML source
(where MJML attributes such as ``border-radius`` on ``<mj-section>`` stand for the CSS
they produce, and ``<mj-style>`` rules, inline ``style`` attributes and raw HTML stand
for themselves), and the compiled email (plain HTML and CSS). Offsets let the caller
map a use back to the designer's file and line.

No CSS or HTML library is needed: the scanner only has to find names, not to build a
tree, so a few regular expressions over the text keep it fast (the demo in ~10 ms).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


@dataclass(frozen=True, slots=True)
class Use:
    """One use of a caniemail feature: its ``slug``, ``offset`` in the scanned text,
    and ``what`` as written (``border-radius``, ``display:flex``, ``<video>``...)."""

    slug: str
    offset: int
    what: str


# Features whose slug names them by value, function, at-rule or markup rather than by
# a property name (property names come from the data: see FeatureIndex).
_DISPLAY = {"flex": "css-display-flex", "inline-flex": "css-display-flex"}
_DISPLAY |= {"grid": "css-display-grid", "inline-grid": "css-display-grid"}
_DISPLAY |= {"none": "css-display-none"}
_FUNCTIONS = {
    "linear-gradient": "css-linear-gradient",
    "repeating-linear-gradient": "css-linear-gradient",
    "radial-gradient": "css-radial-gradient",
    "repeating-radial-gradient": "css-radial-gradient",
    "conic-gradient": "css-conic-gradient",
    "calc": "css-unit-calc",
    "min": "css-function-min",
    "max": "css-function-max",
    "clamp": "css-function-clamp",
    "rgb": "css-rgb",
    "rgba": "css-rgba",
    "var": "css-variables",
    "light-dark": "css-function-light-dark",
    "lch": "css-modern-color",
    "oklch": "css-modern-color",
    "lab": "css-modern-color",
    "oklab": "css-modern-color",
}
_KEYWORDS = {
    "initial": "css-unit-initial",
    "system-ui": "css-sytem-ui",  # sic: caniemail's slug
    "ui-serif": "css-sytem-ui",
    "ui-sans-serif": "css-sytem-ui",
    "ui-rounded": "css-sytem-ui",
    "ui-monospace": "css-sytem-ui",
    "fit-content": "css-intrinsic-size",
    "min-content": "css-intrinsic-size",
    "max-content": "css-intrinsic-size",
}
_UNITS = {"%": "css-unit-percent"} | {
    unit: f"css-unit-{unit}"
    for unit in ("px", "em", "rem", "pt", "pc", "cm", "mm", "in", "ex", "ch")
    + ("vh", "vw", "vmin", "vmax")
}
_AT_RULES = {
    "media": "css-at-media",
    "font-face": "css-at-font-face",
    "import": "css-at-import",
    "keyframes": "css-at-keyframes",
    "-webkit-keyframes": "css-at-keyframes",
    "supports": "css-at-supports",
}
_MEDIA_FEATURES = {
    "prefers-color-scheme": "css-at-media-prefers-color-scheme",
    "prefers-reduced-motion": "css-at-media-prefers-reduced-motion",
    "hover": "css-at-media-hover",
    "any-hover": "css-at-media-hover",
    "orientation": "css-at-media-orientation",
    "-webkit-device-pixel-ratio": "css-at-media-device-pixel-ratio",
    "-webkit-min-device-pixel-ratio": "css-at-media-device-pixel-ratio",
    "-webkit-max-device-pixel-ratio": "css-at-media-device-pixel-ratio",
}
_LEGACY_PSEUDO_ELEMENTS = {"before", "after", "first-letter", "first-line"}
_ELEMENTS = {tag: f"html-{tag}" for tag in ("abbr", "acronym", "address", "audio", "base")}
_ELEMENTS |= {tag: f"html-{tag}" for tag in ("bdi", "blockquote", "body", "code", "del")}
_ELEMENTS |= {tag: f"html-{tag}" for tag in ("dfn", "dialog", "div", "form", "hr", "img")}
_ELEMENTS |= {tag: f"html-{tag}" for tag in ("link", "marquee", "meter", "object", "p")}
_ELEMENTS |= {tag: f"html-{tag}" for tag in ("picture", "pre", "progress", "rp", "rt")}
_ELEMENTS |= {tag: f"html-{tag}" for tag in ("ruby", "select", "small", "span", "strike")}
_ELEMENTS |= {tag: f"html-{tag}" for tag in ("strong", "style", "svg", "table", "textarea")}
_ELEMENTS |= {tag: f"html-{tag}" for tag in ("video", "wbr")}
_ELEMENTS |= {f"h{n}": "html-h1-h6" for n in range(1, 7)}
_ELEMENTS |= {tag: "html-lists" for tag in ("ul", "ol", "li", "dl", "dt", "dd")}
_ELEMENTS |= {tag: "html-image-maps" for tag in ("map", "area")}
_ELEMENTS |= {
    tag: "html-semantics"
    for tag in ("article", "aside", "details", "figcaption", "figure", "footer", "header")
    + ("main", "mark", "nav", "section", "summary", "time")
}
_ATTRIBUTES = {
    name: f"html-{name}"
    for name in ("align", "background", "cellpadding", "cellspacing", "dir", "height")
    + ("hidden", "lang", "popover", "required", "role", "target", "valign", "width")
}
_ATTRIBUTES |= {
    name: f"html-{name}"
    for name in ("aria-describedby", "aria-hidden", "aria-label", "aria-labelledby", "aria-live")
}
_ATTRIBUTES |= {"loading": "html-loading-attribute", "srcset": "html-srcset"}
_ATTRIBUTES |= {"sizes": "html-srcset", "usemap": "html-image-maps"}
_ATTRIBUTES |= {"inert": "css-inert-attribute"}
_IMAGE_FORMATS = {
    "webp": "image-webp",
    "avif": "image-avif",
    "svg": "image-svg",
    "gif": "image-gif",
    "png": "image-png",
    "jpg": "image-jpg",
    "jpeg": "image-jpg",
    "bmp": "image-bmp",
    "tif": "image-tiff",
    "tiff": "image-tiff",
    "ico": "image-ico",
    "heic": "image-heif",
    "heif": "image-heif",
}
# MJML attributes that are not CSS, and those that stand for other CSS (or HTML).
_MJML_SKIP = frozenset({"name", "mj-class", "css-class", "alt", "title", "rel", "mode"})
_MJML_SKIP |= {"full-width", "path", "owa", "mso-proof", "version", "icon-position"}
_MJML_SPECIAL = {
    "background-url": ("background-image", "background"),
    "align": ("text-align", "@align"),
    "vertical-align": ("vertical-align", "@valign"),
    "width": ("width", "@width"),
    "height": ("height", "@height"),
    "fluid-on-mobile": ("@media",),
    "lang": ("@lang",),
    "dir": ("@dir",),
    "target": ("@target",),
    "text-padding": ("padding",),
    "icon-padding": ("padding",),
    "icon-size": ("width", "height"),
}

# MJML elements that stand for HTML or CSS of their own.
_MJML_ELEMENTS = {
    "mj-style": (("html-style", "<mj-style> (a <style> element)"),),
    "mj-font": (
        ("html-link", "<mj-font> (a <link> element)"),
        ("css-at-import", "<mj-font> (an @import rule)"),
    ),
    "mj-breakpoint": (("css-at-media", "<mj-breakpoint> (an @media rule)"),),
}

_COMMENT_RE = re.compile(r"<!--(.*?)-->", re.DOTALL)
_MARKER_RE = re.compile(r"MSJ\d+Z")
_STYLE_RE = re.compile(r"<(mj-style|style)\b[^>]*>(.*?)</\1\s*>", re.DOTALL | re.IGNORECASE)
_TAG_RE = re.compile(r"""<([a-zA-Z][\w:.-]*)((?:[^<>"']|"[^"]*"|'[^']*')*)>""")
_ATTR_RE = re.compile(r"""([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?""")
_CSS_COMMENT_RE = re.compile(r"/\*.*?\*/", re.DOTALL)
_CSS_TOKEN_RE = re.compile(r""""(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|url\([^)]*\)|[{};]""")
_FUNCTION_RE = re.compile(r"(?<![\w-])([a-zA-Z-]+)\(")
_UNIT_RE = re.compile(r"(?<![\w#.-])-?(?:\d*\.)?\d+(%|[a-zA-Z]+)?")
_WORD_RE = re.compile(r"(?<![\w-])[a-zA-Z-]+(?![\w-])")
_MEDIA_FEATURE_RE = re.compile(r"\(\s*([\w-]+)")
_PSEUDO_RE = re.compile(r"(::?)([a-zA-Z-]+)")
_COMBINATOR_RE = re.compile(r"\s*([>+~])\s*|\s+")
_IMAGE_URL_RE = re.compile(r"\.([a-zA-Z]{3,4})(?:[?#]|$)")


class FeatureIndex:
    """CSS property names to caniemail slugs, read from the features' titles and
    keywords (``border-radius``, ``margin-left`` -> ``css-margin``...), and the fixed
    tables above, kept to the slugs the data holds."""

    def __init__(self, features: Mapping[str, Mapping[str, Any]]) -> None:
        self.slugs = frozenset(features)
        self.properties = {k: v for k, v in _PROPERTIES.items() if v in self.slugs}
        css = {s: f for s, f in features.items() if f.get("category") == "css"}
        for source in ("title", "keywords"):
            for slug, feature in css.items():
                for name in re.split(r"[,&]", str(feature.get(source) or "")):
                    name = name.strip().removesuffix(" property").lower()
                    plain = re.fullmatch(r"[a-z]+(-[a-z]+)*", name)
                    if plain and (source == "title" or "-" in name) and slug not in _NOT_PROPS:
                        self.properties.setdefault(name, slug)

    def known(self, slug: str | None) -> bool:
        return slug is not None and slug in self.slugs

    def property_slug(self, name: str) -> str | None:
        """The feature of property ``name``; a longhand (``padding-top``) falls back
        to its shorthand's when caniemail does not list it."""
        slug = self.properties.get(name)
        if slug is None:
            base = re.sub(r"-(top|right|bottom|left)(-\w+)?$", "", name)
            slug = self.properties.get(base)
        return slug


# Properties whose feature's title is not a plain property name.
_PROPERTIES = {
    "font": "css-font",
    "flex-direction": "css-flex-direction",
    "flex-wrap": "css-flex-wrap",
    "color-scheme": "css-color-scheme",
}
# Features whose title reads like a property name but that are not one.
_NOT_PROPS = frozenset({"css-at-media", "css-pseudo-class-lang", "css-inert-attribute"})


def css_uses(css: str, index: FeatureIndex, base: int = 0) -> Iterator[Use]:
    """The features a style sheet uses; offsets are ``base`` plus the offset in ``css``."""
    for match in _CSS_COMMENT_RE.finditer(css):
        yield Use("css-comments", base + match.start(), "/* */")
    # comments, and the markers standing for Jinja tags, as spaces: offsets stay true
    css = _CSS_COMMENT_RE.sub(_spaces, _MARKER_RE.sub(_spaces, css))
    stack: list[str] = []  # kinds of the open blocks: "rules", "decls", "frames"
    start = 0
    for match in _CSS_TOKEN_RE.finditer(css):
        token = match.group(0)
        if token not in "{};":
            continue
        text = css[start : match.start()]
        offset = base + start + len(text) - len(text.lstrip())
        text = text.strip()
        inside = stack[-1] if stack else "rules"
        if token == "{":
            yield from _prelude(text, inside, offset, index)
            stack.append(_body_kind(text, inside))
        elif text and (inside == "decls" or text.startswith("@")):
            yield from _statement(text, offset, index)
        if token == "}" and stack:
            stack.pop()
        start = match.end()
    tail = css[start:]
    if tail.strip() and stack and stack[-1] == "decls":
        yield from declaration_uses(tail.strip(), index, base + start)


def _spaces(match: re.Match[str]) -> str:
    return " " * len(match.group(0))


def _body_kind(prelude: str, inside: str) -> str:
    if inside == "frames":
        return "decls"
    name = _at_name(prelude) if prelude.startswith("@") else ""
    if name in ("media", "supports"):
        return "rules"
    return "frames" if name.endswith("keyframes") else "decls"


def _at_name(text: str) -> str:
    """``media`` for ``@media screen``, ``""`` for a bare ``@``."""
    match = re.match(r"@([\w-]*)", text)
    return match.group(1).lower() if match else ""


def _prelude(text: str, inside: str, offset: int, index: FeatureIndex) -> Iterator[Use]:
    if text.startswith("@"):
        yield from _at_rule(text, offset, index)
    elif inside == "decls":
        yield Use("css-nesting", offset, "nested rule")
        yield from selector_uses(text.replace("&", " "), index, offset)
    elif inside == "rules":
        yield from selector_uses(text, index, offset)


def _statement(text: str, offset: int, index: FeatureIndex) -> Iterator[Use]:
    if text.startswith("@"):
        yield from _at_rule(text, offset, index)
    else:
        yield from declaration_uses(text, index, offset)


def _at_rule(text: str, offset: int, index: FeatureIndex) -> Iterator[Use]:
    name = _at_name(text)
    slug = _AT_RULES.get(name)
    if index.known(slug):
        yield Use(str(slug), offset, f"@{name}")
    if name == "media":
        for feature in _MEDIA_FEATURE_RE.findall(text):
            feature_slug = _MEDIA_FEATURES.get(feature.lower())
            if index.known(feature_slug):
                yield Use(str(feature_slug), offset, f"@media ({feature})")


def selector_uses(selectors: str, index: FeatureIndex, offset: int) -> Iterator[Use]:
    """The selector features of a rule's prelude (all at ``offset``, the rule's start)."""
    groups = [g.strip() for g in re.sub(r"\([^)]*\)", "()", selectors).split(",")]
    found: dict[str, str] = {}
    if len(groups) > 1:
        found["css-selector-grouping"] = "selector list ','"
    for group in groups:
        for kind, name in _PSEUDO_RE.findall(group):
            name = name.lower()
            element = kind == "::" or name in _LEGACY_PSEUDO_ELEMENTS
            slug = f"css-pseudo-{'element' if element else 'class'}-{name}"
            if slug in index.slugs:
                found[slug] = f"{kind}{name}"
        # pseudo-classes and attribute selectors' contents ([rel~=x]) hold no combinator
        plain = re.sub(r"\[[^\]]*\]", "[]", _PSEUDO_RE.sub("", group))
        for sign, slug, what in (
            (">", "css-selector-child", "'>' combinator"),
            ("+", "css-selector-adjacent-sibling", "'+' combinator"),
            ("~", "css-selector-general-sibling", "'~' combinator"),
        ):
            if sign in plain:
                found[slug] = what
        compounds = [c for c in _COMBINATOR_RE.split(plain) if c and c not in "<>+~"]
        if len(compounds) > len(re.findall(r"[>+~]", plain)) + 1:
            found["css-selector-descendant"] = "descendant combinator"
        for compound in compounds:
            found |= _compound(compound)
    for slug, what in found.items():
        if slug in index.slugs:
            yield Use(slug, offset, what)


def _compound(compound: str) -> dict[str, str]:
    found: dict[str, str] = {}
    simple = 0
    if compound[:1].isalpha():
        found["css-selector-type"] = "type selector"
        simple += 1
    if compound.startswith("*"):
        found["css-selector-universal"] = "'*' selector"
    for sign, slug, what in (
        (".", "css-selector-class", "class selector"),
        ("#", "css-selector-id", "id selector"),
        ("[", "css-selector-attribute", "attribute selector"),
    ):
        count = compound.count(sign)
        if count:
            found[slug] = what
            simple += count
    if simple > 1:
        found["css-selector-chaining"] = "chained selectors"
    return found


def declaration_uses(text: str, index: FeatureIndex, offset: int) -> Iterator[Use]:
    """The features of one ``property: value`` declaration."""
    for slug, what in _declaration(text, index):
        yield Use(slug, offset, what)


@lru_cache(maxsize=8192)  # a compiled email repeats the same few hundred declarations
def _declaration(text: str, index: FeatureIndex) -> tuple[tuple[str, str], ...]:
    name, colon, value = text.partition(":")
    name = name.strip().lower()
    if not colon or not name:
        return ()
    if name.startswith("--"):
        return (("css-variables", name),)
    if name.startswith(("-", "mso-")):  # vendor and Outlook-only extensions
        return ()
    return tuple((use.slug, use.what) for use in property_uses(name, value, index, 0))


def property_uses(name: str, value: str, index: FeatureIndex, offset: int) -> Iterator[Use]:
    """The features of property ``name`` set to ``value`` (an MJML attribute alike)."""
    value = value.strip()
    slug = index.property_slug(name)
    if name == "display":
        keyword = value.lower().removesuffix("!important").strip()
        slug = _DISPLAY.get(keyword, slug)
        if slug != index.properties.get("display"):
            name = f"display:{keyword}"
    if index.known(slug):
        yield Use(str(slug), offset, name)
    yield from value_uses(value, index, offset)


def value_uses(value: str, index: FeatureIndex, offset: int) -> Iterator[Use]:
    """Functions, units, keywords and ``!important`` in a CSS value."""
    value = _MARKER_RE.sub(" ", value)
    found: dict[str, str] = {}
    if "!important" in value.replace(" ", "").lower():
        found["css-important"] = "!important"
    for function in _FUNCTION_RE.findall(value):
        slug = _FUNCTIONS.get(function.lower())
        if slug:
            found[slug] = f"{function.lower()}()"
    for match in _UNIT_RE.finditer(re.sub(r"url\([^)]*\)", "", value)):
        unit = (match.group(1) or "").lower()
        if unit in _UNITS:
            found[_UNITS[unit]] = unit
    for word in _WORD_RE.findall(value):
        slug = _KEYWORDS.get(word.lower())
        if slug:
            found[slug] = word.lower()
    for slug, what in found.items():
        if slug in index.slugs:
            yield Use(slug, offset, what)


def markup_uses(source: str, index: FeatureIndex) -> Iterator[Use]:
    """Every feature of an MJML or HTML document: style sheets, tags, attributes."""
    for match in _COMMENT_RE.finditer(source):
        body = match.group(1)
        if not _MARKER_RE.fullmatch(body) and not body.startswith(("[if", "<![")):
            yield Use("html-comments", match.start(), "<!-- -->")
    masked = _COMMENT_RE.sub(_blank, source)  # same length: offsets stay true
    for match in _STYLE_RE.finditer(masked):
        yield from css_uses(match.group(2), index, match.start(2))
    masked = _STYLE_RE.sub(_blank, masked)
    for match in _TAG_RE.finditer(masked):
        yield from tag_uses(match.group(1).lower(), match.group(2), match.start(2), index)


def _blank(match: re.Match[str]) -> str:
    """``match`` as spaces, but for the opening tag of a style sheet."""
    text = match.group(0)
    keep = match.start(2) - match.start() if match.re is _STYLE_RE else 0
    return text[:keep] + " " * (len(text) - keep)


def tag_uses(tag: str, attributes: str, offset: int, index: FeatureIndex) -> Iterator[Use]:
    """The features of one tag: its element and its attributes (MJML ones as the CSS
    or HTML they produce)."""
    mjml = tag.startswith("mj-") or tag == "mjml"
    for generated, what in _MJML_ELEMENTS.get(tag, ()):
        if index.known(generated):
            yield Use(generated, offset, what)
    if tag in ("mj-font", "mj-breakpoint"):
        return  # their attributes are a font's name and URL, the breakpoint's width
    if not mjml:
        slug = _ELEMENTS.get(tag)
        if tag in ("input", "button"):
            slug = _typed_element(tag, attributes)
        if index.known(slug):
            yield Use(str(slug), offset, f"<{tag}>")
    for match in _ATTR_RE.finditer(attributes):
        name = match.group(1).lower()
        group = next((g for g in (2, 3, 4) if match.group(g) is not None), 0)
        value = match.group(group) if group else ""
        at = offset + match.start()
        if mjml:
            yield from _mjml_attribute(name, value, index, at)
        elif name == "style":
            yield from _style_attribute(value, index, offset + match.start(group))
        else:
            yield from _html_attribute(name, value, index, at)


def _typed_element(tag: str, attributes: str) -> str:
    kind = re.search(r"""\btype\s*=\s*["']?(\w+)""", attributes)
    default = "submit" if tag == "button" else "text"
    return f"html-{tag}-{(kind.group(1) if kind else default).lower()}"


def _html_attribute(name: str, value: str, index: FeatureIndex, offset: int) -> Iterator[Use]:
    if name in ("href", "src", "background"):
        yield from _url_uses(value, index, offset)
    slug = _ATTRIBUTES.get(name)
    if index.known(slug):
        yield Use(str(slug), offset, f"{name} attribute")


def _style_attribute(value: str, index: FeatureIndex, offset: int) -> Iterator[Use]:
    """Each declaration of a ``style`` attribute, at its own offset (so its own line)."""
    pos = 0
    for part in value.split(";"):
        stripped = part.strip()
        if stripped:
            at = offset + pos + part.index(stripped[0])
            yield from declaration_uses(stripped, index, at)
        pos += len(part) + 1


def _url_uses(value: str, index: FeatureIndex, offset: int) -> Iterator[Use]:
    url = value.strip().lower()
    slug, what = None, ""
    if url.startswith("mailto:"):
        slug, what = "html-mailto-links", "mailto: link"
    elif url.startswith("#") and len(url) > 1:
        slug, what = "html-anchor-links", "local anchor link"
    elif url.startswith("data:image/"):
        slug, what = "image-base64", "base64 image"
    else:
        found = _IMAGE_URL_RE.search(url.split("?", 1)[0].split("#", 1)[0])
        if found:
            slug = _IMAGE_FORMATS.get(found.group(1))
            what = f".{found.group(1)} image"
    if index.known(slug):
        yield Use(str(slug), offset, what)


def _mjml_attribute(name: str, value: str, index: FeatureIndex, offset: int) -> Iterator[Use]:
    if name in _MJML_SKIP or name.startswith("data-"):
        return
    if name in ("href", "src", "background-url"):
        yield from _url_uses(value, index, offset)
    base = name.removeprefix("inner-").removeprefix("container-")
    for target in _MJML_SPECIAL.get(base, (base,)):
        if target.startswith("@"):
            slug = _ATTRIBUTES.get(target[1:]) if target != "@media" else "css-at-media"
            what = f"{target[1:]} attribute" if target != "@media" else "@media"
            if index.known(slug):
                yield Use(str(slug), offset, f"{what} (from MJML {name})")
        elif name not in ("href", "src"):
            for use in property_uses(target, value, index, offset):
                yield Use(use.slug, use.offset, _from_attribute(use.what, target, name))


def _from_attribute(what: str, target: str, name: str) -> str:
    return f"{what} (from MJML {name})" if what == target and target != name else what
