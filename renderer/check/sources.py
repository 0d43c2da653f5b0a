"""The designer's own sources, as ``check`` reads them: each template, include and block
file with the line its Jinja starts on, the campaign's header templates, the
``{# mailsmith: ignore[rule] #}`` comments, and the places attributes are written.

Every rule locates its findings through these, so a finding points at the line the
designer wrote, never at the assembled or compiled template.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from renderer.campaign import Campaign
from renderer.content import AssembledTemplate, split_front_matter
from renderer.delivery import unsubscribe_source
from segments.yamlsrc import LineDict, line_at, load_yaml

_IGNORE_RE = re.compile(r"mailsmith:\s*ignore\[([\w\s,-]+)\]")
_ATTRIBUTE_RE = re.compile(r"""\b(href|src)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_JINJA_RE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
HEADER_KEYS = ("subject", "preheader", "unsubscribe_url")


@dataclass(frozen=True)
class Source:
    """Jinja source as written: ``text`` starts at ``first_line`` of ``file``.

    ``key`` names the campaign key it came from (``subject``), empty for content files.
    """

    file: str
    text: str
    first_line: int = 1
    key: str = ""

    def line(self, relative: int) -> int:
        """The file's line for line ``relative`` of :attr:`text` (Jinja's ``lineno``)."""
        if self.key:  # a YAML value: its key's line (a folded scalar loses its own lines)
            return self.first_line
        return self.first_line + relative - 1


@dataclass(frozen=True)
class Attribute:
    """A ``href`` or ``src`` as written at ``file:line``, with the pattern it renders to."""

    name: str
    value: str
    file: str
    line: int
    pattern: re.Pattern[str]


@dataclass
class CampaignSources:
    """Everything a campaign's emails are written in."""

    content: list[Source]
    headers: list[Source]
    template_file: str
    ignored: dict[tuple[str, int], set[str]] = field(default_factory=dict)

    def is_ignored(self, rule: str, file: str, line: int | None) -> bool:
        """True when a ``mailsmith: ignore[rule]`` comment on ``line`` (or the line
        before it) switches ``rule`` off there."""
        if line is None:
            return False
        for at in (line, line - 1):
            if rule in self.ignored.get((file, at), ()):
                return True
        return False

    def attributes(self) -> list[Attribute]:
        """Every ``href``/``src`` written in the content files, in file order."""
        return [a for source in self.content for a in _attributes(source)]

    def locate(self, name: str, rendered: str) -> tuple[str, int | None]:
        """Where the ``name`` attribute that rendered as ``rendered`` is written
        (the template file, line unknown, when no written one matches)."""
        for attribute in self.attributes():
            if attribute.name == name and attribute.pattern.fullmatch(rendered):
                return attribute.file, attribute.line
        return self.template_file, None


def campaign_sources(campaign: Campaign, assembled: AssembledTemplate) -> CampaignSources:
    """The sources of ``campaign`` whose template assembled as ``assembled``."""
    content = list(_content_sources(assembled))
    headers = list(_header_sources(campaign))
    ignored: dict[tuple[str, int], set[str]] = {}
    files = {s.file: s for s in content}
    texts = [(f, Path(f).read_text(encoding="utf-8")) for f in files]
    if Path(campaign.file).is_file():
        texts.append((campaign.file, Path(campaign.file).read_text(encoding="utf-8")))
    for file, text in texts:
        for number, line in enumerate(text.splitlines(), start=1):
            for match in _IGNORE_RE.finditer(line):
                rules = {r.strip() for r in match.group(1).split(",") if r.strip()}
                ignored.setdefault((file, number), set()).update(rules)
    return CampaignSources(content, headers, assembled.file, ignored)


def _content_sources(assembled: AssembledTemplate) -> Iterator[Source]:
    """The template, its includes and its blocks, each once (front matter left out)."""
    blocks = {spec.file for spec in assembled.blocks.values()}
    seen: set[str] = set()
    for file in [assembled.file, *(t.file for t in assembled.tokens), *sorted(blocks)]:
        if file in seen or not Path(file).is_file():
            continue
        seen.add(file)
        text = Path(file).read_text(encoding="utf-8")
        if file in blocks:
            _, body, first_line = split_front_matter(text, file)
            yield Source(file, body, first_line)
        else:
            yield Source(file, text)


def _header_sources(campaign: Campaign) -> Iterator[Source]:
    """Subject, preheader and unsubscribe URL, and each experiment variant's own."""
    path = Path(campaign.file)
    data = load_yaml(path) if path.is_file() else None
    lines = data if isinstance(data, LineDict) else LineDict()
    for key in HEADER_KEYS:
        text, keys = getattr(campaign, key) or "", [key]
        if key == "unsubscribe_url" and campaign.unsubscribe is not None:  # signed links
            text, keys = unsubscribe_source(campaign) or "", ["unsubscribe", "url"]
        if text or key in lines:  # an empty one too: a finding about it needs its line
            yield Source(campaign.file, text, line_at(lines, keys) or 1, key)
    for e, experiment in enumerate(campaign.experiments):
        for v, variant in enumerate(experiment.get("variants") or []):
            if not isinstance(variant, dict):
                continue
            for key in ("subject", "preheader"):
                text = variant.get(key)
                if isinstance(text, str) and text:
                    at = line_at(lines, ["experiments", e, "variants", v, key])
                    yield Source(campaign.file, text, at or 1, key)


def _attributes(source: Source) -> Iterator[Attribute]:
    for match in _ATTRIBUTE_RE.finditer(source.text):
        value = match.group(2) if match.group(2) is not None else match.group(3)
        line = source.line(source.text.count("\n", 0, match.start()) + 1)
        yield Attribute(match.group(1), value, source.file, line, _pattern(value))


def _pattern(written: str) -> re.Pattern[str]:
    """A regular expression matching what ``written`` can render as: its literal text
    (entities decoded, as the rendered HTML is read) with anything for each Jinja tag."""
    parts: list[str] = []
    pos = 0
    for match in _JINJA_RE.finditer(written):
        parts.append(re.escape(html.unescape(written[pos : match.start()])))
        parts.append(".*?")
        pos = match.end()
    parts.append(re.escape(html.unescape(written[pos:])))
    return re.compile("".join(parts), re.DOTALL)


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The known name ``name`` was most likely meant to be (``frist_name``: ``first_name``)."""
    import difflib

    found = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.7)
    return found[0] if found else None
