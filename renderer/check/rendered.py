"""Rendered checks: the emails of a few representative recipients, as the build makes them.

One recipient stands for each reachable combination of exclusive-group label,
variant and block visibility, chosen in file order from the real profiles and
rendered by the build's own stages (:func:`~segments.batch.segment_chunk`, then
:func:`~renderer.runtime.render_batch`), so the whole audience is never rendered.
Each email is then checked: size (Gmail clips at 102 KB), images without ``alt``,
links that go nowhere, are unsafe or kept template syntax, an unsubscribe link,
subject and preheader, and links the plain-text part lacks. Findings are located
at the ``href``/``src`` the designer wrote, where one matches.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from datetime import datetime
from html.parser import HTMLParser

from renderer.campaign import Campaign
from renderer.check.findings import Finding, Severity
from renderer.check.sources import CampaignSources
from renderer.env import is_missing
from renderer.preview import validated_chunks
from renderer.runtime import CampaignRuntime, Rendered, render_batch
from segments.batch import SegmentedBatch, segment_chunk

CLIP_BYTES = 102 * 1024  # Gmail clips a message body over about 102 KB
NEAR_CLIP_BYTES = 90 * 1024
MAX_SUBJECT = 78  # RFC 5322's recommended line length; longer subjects are cut in inboxes


def representatives(
    campaign: Campaign, as_of: datetime | None = None
) -> tuple[CampaignRuntime | None, list[Rendered]]:
    """The runtime and one rendered email per reachable combination of group label,
    variant and block visibility (a rejected recipient is replaced by the next one)."""
    chosen: dict[Hashable, Rendered] = {}
    runtime: CampaignRuntime | None = None
    for runtime, chunk in validated_chunks(campaign, as_of):
        batch = segment_chunk(chunk, runtime.segment_plan())
        candidates: dict[Hashable, int] = {}
        for index in range(len(batch)):
            if batch.held_out[index]:
                continue
            key = _combination(runtime, batch, index)
            if key not in chosen and key not in candidates:
                candidates[key] = index
        if not candidates:
            continue
        result = render_batch(runtime, batch.take(list(candidates.values())))
        by_row = {email.row: email for email in result.rendered}
        for key, index in candidates.items():
            email = by_row.get(batch.rows[index])
            if email is not None:
                chosen[key] = email
    return runtime, list(chosen.values())


def _combination(runtime: CampaignRuntime, batch: SegmentedBatch, index: int) -> Hashable:
    segments = batch.segments[index]
    record = batch.records[index]
    labels = tuple(group.label_of(segments) for group in runtime.segments.groups)
    variants = tuple(sorted((k, str(v)) for k, v in batch.variants[index].items()))
    shown = tuple(
        (block.segment_name is None or block.segment_name in segments)
        and not any(is_missing(record.get(name)) for name in block.fields)
        for block in runtime.assembled.blocks.values()
    )
    return labels, variants, shown


class _Links(HTMLParser):
    """The ``<a href>`` (with their text) and ``<img>`` attributes of an email."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []
        self.images: list[dict[str, str | None]] = []
        self._open: list[list[str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values)
        elif tag == "a" and "href" in values:
            self._open.append([values["href"] or ""])

    def handle_data(self, data: str) -> None:
        for link in self._open:
            link.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open:
            href, *text = self._open.pop()
            self.links.append((href, "".join(text)))


def _parse(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    parser.close()
    return parser


def rendered_findings(
    emails: list[Rendered], sources: CampaignSources, campaign: Campaign
) -> list[Finding]:
    """Every rendered-email finding over the representatives, each once."""
    found: dict[tuple[str, str, int | None, str], Finding] = {}
    checks = (_link_findings, _image_findings, _unsubscribe_findings, _text_findings)
    for email in emails:
        parsed = _parse(email.html)
        for check in checks:
            for finding in check(parsed, email, sources):
                found.setdefault(
                    (finding.rule, finding.file, finding.line, finding.message), finding
                )
        for finding in _header_findings(email, sources, campaign):
            found.setdefault((finding.rule, finding.file, finding.line, finding.message), finding)
    return [*found.values(), *_size_findings(emails, sources)]


def _link_problem(href: str) -> tuple[str, Severity, str, str] | None:
    """(rule, severity, message, hint) for a link that goes nowhere or nowhere safe."""
    value = href.strip()
    if "{{" in value or "{%" in value:
        return (
            "link-unrendered",
            Severity.ERROR,
            "a link keeps template syntax after rendering",
            "template syntax in vars or profile values is not rendered: build the URL in the "
            "template",
        )
    if value in ("", "#"):
        return (
            "link-empty",
            Severity.ERROR,
            f"a link goes nowhere (href={value!r})",
            "give it a URL",
        )
    if value.lower().startswith("javascript:"):
        return (
            "link-javascript",
            Severity.ERROR,
            "a javascript: link (email clients refuse them)",
            "link to a page",
        )
    if value.lower().startswith("http:"):
        return "link-insecure", Severity.WARNING, "a plain http: link", "use https:"
    return None


def _link_findings(parsed: _Links, email: Rendered, sources: CampaignSources) -> Iterator[Finding]:
    for href, _ in parsed.links:
        problem = _link_problem(href)
        if problem is not None:
            rule, severity, message, hint = problem
            file, line = sources.locate("href", href)
            yield Finding(file, line, rule, severity, message, hint)


def _image_findings(parsed: _Links, email: Rendered, sources: CampaignSources) -> Iterator[Finding]:
    for image in parsed.images:
        if "alt" not in image:
            file, line = sources.locate("src", image.get("src") or "")
            yield Finding(
                file,
                line,
                "img-alt",
                Severity.WARNING,
                "an image has no alt text",
                'describe it with alt="...", or write alt="" for a decorative image',
            )


def _unsubscribe_findings(
    parsed: _Links, email: Rendered, sources: CampaignSources
) -> Iterator[Finding]:
    if not any("unsubscribe" in f"{href} {text}".lower() for href, text in parsed.links):
        yield Finding(
            sources.template_file,
            None,
            "no-unsubscribe",
            Severity.ERROR,
            "the email has no unsubscribe link",
            'add <a href="{{ unsubscribe_url }}">Unsubscribe</a> and set unsubscribe_url',
        )


def _text_findings(parsed: _Links, email: Rendered, sources: CampaignSources) -> Iterator[Finding]:
    for href, _ in parsed.links:
        wanted = href.strip()
        if wanted.startswith(("http:", "https:")) and wanted not in email.text:
            file, line = sources.locate("href", href)
            yield Finding(
                file,
                line,
                "text-missing-link",
                Severity.WARNING,
                "a link of the HTML part is missing from the plain-text part",
                "give the link visible text (an image link needs alt text)",
            )


def _header_line(sources: CampaignSources, key: str) -> int | None:
    return next((s.first_line for s in sources.headers if s.key == key), None)


def _header_findings(
    email: Rendered, sources: CampaignSources, campaign: Campaign
) -> Iterator[Finding]:
    line = _header_line(sources, "subject")
    if not email.subject:
        yield Finding(
            campaign.file, line, "subject-empty", Severity.ERROR, "the subject is empty",
            "write a subject, or a fallback for the fields it reads",
        )  # fmt: skip
    elif len(email.subject) > MAX_SUBJECT:
        yield Finding(
            campaign.file, line, "subject-long", Severity.WARNING,
            f"the subject is over {MAX_SUBJECT} characters for some recipients",
            "inboxes cut long subjects: put the point first",
        )  # fmt: skip
    if not email.preheader:
        yield Finding(
            campaign.file, _header_line(sources, "preheader"), "preheader-missing",
            Severity.WARNING, "the preheader is empty",
            "set `preheader:` (inboxes show body text in its place)",
        )  # fmt: skip


def subject_source_findings(sources: CampaignSources) -> Iterator[Finding]:
    """A subject written over several lines (headers are one line: it would be joined)."""
    for source in sources.headers:
        if source.key == "subject" and "\n" in source.text.strip():
            yield Finding(
                source.file, source.first_line, "subject-multiline", Severity.WARNING,
                "the subject is written over several lines", "write it on one line",
            )  # fmt: skip


def _size_findings(emails: list[Rendered], sources: CampaignSources) -> Iterator[Finding]:
    """Per variant, the largest email, when it is near or over Gmail's clipping size."""
    largest: dict[str, Rendered] = {}
    for email in emails:
        variant = ", ".join(f"{k}={v}" for k, v in sorted(email.variants.items())) or "default"
        size = len(email.html.encode())
        if variant not in largest or size > len(largest[variant].html.encode()):
            largest[variant] = email
    for variant, email in sorted(largest.items()):
        size = len(email.html.encode())
        if size <= NEAR_CLIP_BYTES:
            continue
        over = size > CLIP_BYTES
        yield Finding(
            sources.template_file,
            None,
            "size-clipped" if over else "size-near-clip",
            Severity.ERROR if over else Severity.WARNING,
            f"the email is {size / 1024:.0f} KB for variant {variant} (largest: recipient "
            f"{email.id}); Gmail clips emails over 102 KB",
            "move content to the web, shorten loops, or drop unused CSS",
        )
