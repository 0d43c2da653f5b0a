"""The caniemail lint: what the designer writes, checked against caniemail.com's data.

For each CSS property (and value where caniemail tells them apart, e.g. ``display:flex``),
at-rule, selector, HTML element and attribute that the compiled email uses *and* that
the designer's own source writes, the support in a set of email clients is looked up in
the vendored caniemail data (``data/caniemail.json``, MIT, refreshed by
``scripts/refresh_caniemail.py``). Two rules report it, located at the line of the
template or block that writes it:

``css-unsupported`` (warning)
    Some clients of the set do not support the feature at all.
``css-partial`` (info)
    Some support it partly or with bugs; caniemail's notes say how.

Why a warning and not an error: caniemail records whether a client *renders* a
feature, not whether the email breaks without it, and most unsupported CSS degrades
gracefully (square corners in Outlook for Windows, no responsive columns where
``@media`` is dropped). An error would stop ``build`` on emails that are fine and
well-made; a warning shows in every report and fails ``check --strict``, so a team
that wants the gate has it. Partial support is an info: nearly every property is
"partial" somewhere (Outlook's Word engine, Gmail with non-Google accounts).

Only what the designer writes is reported: an MJML attribute (``border-radius`` on
``<mj-button>`` stands for the CSS it produces), a rule of ``<mj-style>``, an inline
``style`` attribute or a raw HTML element or attribute. The CSS and markup MJML adds of
its own accord (its reset styles, responsive ``@media`` rules, Outlook conditional
comments, ``role`` and ``cellpadding`` attributes) is not the designer's to change, so
it never produces a finding. A use is reported only when the compiled email really
contains the feature, so an attribute MJML ignores stays silent too.

A warning is reported at every line that writes the feature (each can be annotated,
and ignored, on its own); partial support is one info per feature and file, at the
first line that writes it, its message listing the others.
"""

from __future__ import annotations

import difflib
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from renderer.check.findings import Finding, Severity
from renderer.check.usage import FeatureIndex, markup_uses
from renderer.compile.inline import inline_css
from renderer.compile.mjml import compile_mjml
from renderer.compile.placeholders import Atom, Protected, protect
from renderer.compile.structure import classify
from renderer.content import AssembledTemplate
from segments.errors import ConfigError

DATA_FILE = "data/caniemail.json"
LICENSE_FILE = "data/caniemail.LICENSE"
FEATURE_URL = "https://www.caniemail.com/features/{slug}/"
UNSUPPORTED = "css-unsupported"
PARTIAL = "css-partial"
DEFAULT_CLIENTS: tuple[str, ...] = (
    "gmail.desktop-webmail",
    "gmail.ios",
    "gmail.android",
    "apple-mail.macos",
    "apple-mail.ios",
    "outlook.windows",
    "outlook.macos",
    "outlook.outlook-com",
    "outlook.ios",
    "outlook.android",
    "yahoo.desktop-webmail",
    "yahoo.ios",
    "yahoo.android",
    "samsung-email.android",
)
MAX_LINES_LISTED = 5
_NOTE_RE = re.compile(r"#(\d+)")


@dataclass(frozen=True, order=True)
class Client:
    """One email client as caniemail names it: a family (``outlook``) on a platform
    (``windows``); ``name`` is the ``family.platform`` a campaign writes."""

    family: str
    platform: str

    @property
    def name(self) -> str:
        return f"{self.family}.{self.platform}"

    @property
    def label(self) -> str:
        """The client as people call it: ``Outlook Windows``, ``Outlook.com``."""
        data = caniemail_data()
        family = data["families"].get(self.family, self.family)
        platform = data["platforms"].get(self.platform, self.platform)
        return platform if family in platform else f"{family} {platform}"


@cache
def caniemail_data() -> dict[str, Any]:
    """The vendored caniemail document (read once, from the installed package)."""
    text = resources.files("renderer.check").joinpath(DATA_FILE).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@cache
def feature_index() -> FeatureIndex:
    """Property names, selectors, elements... to caniemail feature slugs."""
    return FeatureIndex(caniemail_data()["features"])


def caniemail_license() -> str:
    """caniemail's MIT licence, shipped beside its data."""
    return resources.files("renderer.check").joinpath(LICENSE_FILE).read_text(encoding="utf-8")


@cache
def known_clients() -> tuple[Client, ...]:
    """Every client the data has a result for."""
    found = {
        Client(family, platform)
        for feature in caniemail_data()["features"].values()
        for family, platforms in feature["stats"].items()
        for platform in platforms
    }
    return tuple(sorted(found))


def resolve_clients(
    names: Sequence[str] | None, *, file: str | None = None, line: int | None = None
) -> tuple[Client, ...]:
    """The clients ``check: {clients: [...]}`` names (None: :data:`DEFAULT_CLIENTS`).

    A name is a family and platform (``outlook.windows``), a whole family (``gmail``,
    ``gmail.*``) or a platform in every family (``*.ios``). An unknown name is a
    :class:`ConfigError` at ``file``/``line`` listing the valid ones.
    """
    if isinstance(names, str):  # `clients: gmail` in YAML: one name, not its letters
        names = [names]
    if names is not None and not names:
        raise ConfigError(
            "check.clients is empty",
            file=file,
            line=line,
            hint="name the clients to check for, leave the key out for the default set, or "
            "switch the rules off with check: {ignore: [css-unsupported, css-partial]}",
        )
    known = known_clients()
    chosen: dict[Client, None] = {}
    for name in DEFAULT_CLIENTS if names is None else names:
        matched = _match(str(name).strip().lower(), known)
        if not matched:
            raise _unknown_client(str(name), known, file, line)
        chosen.update(dict.fromkeys(matched))
    return tuple(chosen)


def _match(name: str, known: Sequence[Client]) -> list[Client]:
    family, _, platform = name.partition(".")
    if family in ("*", "") and platform in ("*", ""):
        return []  # every client at once is not a client set anyone tests for
    return [
        client
        for client in known
        if family in ("*", client.family) and platform in ("", "*", client.platform)
    ]


def _unknown_client(
    name: str, known: Sequence[Client], file: str | None, line: int | None
) -> ConfigError:
    families = sorted({c.family for c in known})
    valid = families + [c.name for c in known]
    close = difflib.get_close_matches(name.lower(), valid, n=1)
    guess = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(
        f"check.clients: unknown email client {name!r}{guess}",
        file=file,
        line=line,
        hint="name caniemail clients as family.platform, a family, or *.platform; valid: "
        + ", ".join(valid),
    )


def designer_source(assembled: AssembledTemplate) -> Protected:
    """The MJML a template compiles from, every branch and block in place, with the
    designer's file and line of each position (:meth:`Protected.origin_at`)."""
    tokens = assembled.tokens
    atoms = [Atom(t.kind, t.text, c, t) for t, c in zip(tokens, classify(tokens), strict=True)]
    return protect(atoms)


def compile_source(source: Protected, file: str | None = None) -> str:
    """``source`` compiled as the build compiles it: MJML, then the CSS inliner."""
    return inline_css(compile_mjml(source.source, file=file), file=file)


def lint_template(
    assembled: AssembledTemplate, clients: Sequence[Client] | None = None
) -> list[Finding]:
    """:func:`lint_css_support` for an assembled template (its static form: every
    ``if`` branch, one pass of each loop), compiled here once."""
    source = designer_source(assembled)
    html = compile_source(source, assembled.file)
    return lint_css_support(source, html, resolve_clients(None) if clients is None else clients)


def lint_css_support(
    sources: Protected, compiled_html: str | Iterable[str], clients: Sequence[Client]
) -> list[Finding]:
    """Findings for the features the designer's ``sources`` write, that the compiled
    email uses, and that some of ``clients`` support partly or not at all."""
    index = feature_index()
    html = [compiled_html] if isinstance(compiled_html, str) else list(compiled_html)
    compiled = {use.slug for text in html for use in markup_uses(text, index)}
    places: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
    for use in markup_uses(sources.source, index):
        origin = sources.origin_at(use.offset)
        if use.slug in compiled and origin is not None:
            places[(use.slug, origin[0])].append((origin[1], use.what))
    findings: list[Finding] = []
    for (slug, file), written in places.items():
        findings.extend(_findings(slug, file, sorted(set(written)), clients))
    return sorted(findings)


def _findings(
    slug: str, file: str, written: list[tuple[int, str]], clients: Sequence[Client]
) -> list[Finding]:
    """A warning at each line writing a feature some clients lack; one info per file
    for partial support (nearly every property is partial somewhere: one per line
    would bury the warnings)."""
    feature = caniemail_data()["features"][slug]
    by_support: dict[str, list[tuple[Client, list[str]]]] = {"n": [], "a": []}
    for client in clients:
        result = feature["stats"].get(client.family, {}).get(client.platform, "u")
        if result[:1] in by_support:
            by_support[result[:1]].append((client, _NOTE_RE.findall(result)))
    found = []
    if by_support["n"]:
        hint = _hint(slug, UNSUPPORTED)
        first_per_line = {line: (line, what) for line, what in reversed(written)}
        for line, what in sorted(first_per_line.values()):
            message = _message(feature, [(line, what)], "is not supported by", by_support["n"])
            found.append(Finding(file, line, UNSUPPORTED, Severity.WARNING, message, hint))
    if by_support["a"]:
        hint = _hint(slug, PARTIAL)
        message = _message(feature, written, "is only partly supported by", by_support["a"])
        found.append(Finding(file, written[0][0], PARTIAL, Severity.INFO, message, hint))
    return found


def _message(
    feature: Mapping[str, Any],
    written: list[tuple[int, str]],
    verb: str,
    clients: list[tuple[Client, list[str]]],
) -> str:
    what = written[0][1]
    title = str(feature["title"])
    named = what if title == what.split(" (")[0] else f"{what} [caniemail: {title}]"
    listed = ", ".join(
        client.label + (f" (note {', '.join(notes)})" if notes else "") for client, notes in clients
    )
    message = f"{named} {verb} {listed}"
    cited = sorted({n for _, notes in clients for n in notes}, key=int)
    notes = feature.get("notes", {})
    if cited:
        message += ". Notes: " + " ".join(f"({n}) {notes[n]}" for n in cited if n in notes)
    lines = sorted({line for line, _ in written[1:]} - {written[0][0]})
    if lines:
        shown = ", ".join(str(n) for n in lines[:MAX_LINES_LISTED])
        more = f" and {len(lines) - MAX_LINES_LISTED} more" if len(lines) > MAX_LINES_LISTED else ""
        message += f" (also written at line{'s' if len(lines) > 1 else ''} {shown}{more})"
    return message


def _hint(slug: str, rule: str) -> str:
    return (
        f"see {FEATURE_URL.format(slug=slug)}; give these clients a fallback or accept how "
        f"they degrade ({{# mailsmith: ignore[{rule}] #}}), or name the clients you test "
        "for in check.clients"
    )


__all__ = [
    "DEFAULT_CLIENTS",
    "PARTIAL",
    "UNSUPPORTED",
    "Client",
    "caniemail_data",
    "caniemail_license",
    "compile_source",
    "designer_source",
    "known_clients",
    "lint_css_support",
    "lint_template",
    "resolve_clients",
]
