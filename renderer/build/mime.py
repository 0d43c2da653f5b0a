"""``--format eml`` and ``mbox``: each email as an RFC 5322 message, ready to send.

A message is built with Python's :mod:`email` package (``EmailMessage``): a
``multipart/alternative`` of the text part, then the HTML part (just the HTML with
``output.text: false``), both UTF-8 and quoted-printable; From and Reply-To from the
campaign's ``sender:``; To with the ``to_name:`` display name (RFC 2047 encoded when not
ASCII); Subject; and the delivery headers:

- ``Message-ID``: a hash of campaign and recipient id at the sender's domain;
- ``Date``: the build's ``as_of``;
- ``List-Unsubscribe``: the recipient's unsubscribe URL and, with ``unsubscribe.mailto``,
  a ``mailto:`` whose subject carries the signed token; ``List-Unsubscribe-Post:
  List-Unsubscribe=One-Click`` (RFC 8058) when the URL is https;
- ``List-Id`` (``<campaign.domain>``) and ``Feedback-ID``
  (``campaign:variants:domain``, the variants as ``key=name`` joined by ``.``).

Nothing in a message depends on the clock, the process or chance: the MIME boundary is
``=_`` plus the recipient key (``=_`` never occurs in quoted-printable text), so a build
run again, with any number of workers, gives the same bytes.

``eml`` writes ``eml/<k>/<key>.eml`` per recipient, CRLF line ends (the manifest's
``eml`` key); ``mbox`` writes shards like the bundle formats, ``emails/emails-00000.mbox``,
LF line ends, each message after a ``From `` line dated ``as_of`` and with body lines
that start with ``From `` escaped as ``>From `` (the manifest's ``shard`` and
``shard_row``). Body lines never start with ``From ``: quoted-printable writes them
``=46rom `` (the same text, decoded), so the messages of an mbox shard read back exactly;
any other line would be escaped ``>From ``.
"""

from __future__ import annotations

import binascii
import hashlib
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from io import BytesIO
from typing import Any, Literal
from urllib.parse import quote

from renderer.build.output import EmailFiles, dumps_line, manifest_head, write_failed
from renderer.campaign import Campaign
from renderer.delivery import demo_secret_warning
from renderer.runtime import Rendered
from segments.errors import ConfigError

MimeFormat = Literal["eml", "mbox"]
MIME_FORMATS: tuple[MimeFormat, ...] = ("eml", "mbox")
FOLDER = "emails"  # mbox shards sit where the bundle formats' shards do

# CRLF, as messages travel; headers set raw (URLs, ids) are written as given: refolding
# a long URL would make it an RFC 2047 encoded word, which List-Unsubscribe forbids
_EML_POLICY = policy.SMTP.clone(refold_source="none")
_MBOX_POLICY = policy.default  # LF, as mbox files are written
MAX_NAME = 100  # characters of a From or To display name
_FEEDBACK_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]")
_NEWLINE = re.compile(r"\r\n|\r|\n")  # as the generator splits lines
_FROM_LINE = re.compile(r"^From ", re.MULTILINE)
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~-._"


@dataclass(frozen=True)
class Envelope:
    """What every message of a build shares (picklable: workers build messages too)."""

    campaign: str
    from_address: str
    from_name: str
    reply_to: str | None
    domain: str
    mailto: str | None
    as_of: datetime
    text: bool

    @classmethod
    def of(cls, campaign: Campaign, as_of: datetime) -> Envelope:
        """The campaign's envelope; a :class:`ConfigError` without ``sender:``."""
        sender = campaign.sender
        if sender is None:
            raise ConfigError(
                "email messages (--format eml or mbox) need a sender",
                file=campaign.file,
                field="sender",
                hint='add `sender: {from: news@example.com, name: "Example", reply_to: '
                "help@example.com}` to the campaign",
            )
        return cls(
            campaign=campaign.name,
            from_address=sender.from_,
            from_name=sender.name or "",
            reply_to=sender.reply_to,
            domain=sender.domain,
            mailto=campaign.unsubscribe.mailto if campaign.unsubscribe else None,
            as_of=as_of.astimezone(UTC),
            text=campaign.output.text,
        )


def message_id(campaign: str, recipient_id: str, domain: str) -> str:
    """``<hash@domain>``: the same for a recipient in every build of the campaign."""
    digest = hashlib.sha256(f"mailsmith\0{campaign}\0{recipient_id}".encode()).hexdigest()
    return f"<{digest[:32]}@{domain}>"


def feedback_id(envelope: Envelope, variants: dict[str, str | None]) -> str:
    """``campaign:variants:domain`` (Gmail's Feedback-ID: identifiers, then the sender)."""
    chosen = ".".join(f"{key}={name}" for key, name in variants.items() if name is not None)
    parts = (envelope.campaign, chosen or "none", envelope.domain)
    return ":".join(_FEEDBACK_UNSAFE.sub("-", part) for part in parts)


def build_message(item: Rendered, envelope: Envelope) -> EmailMessage:
    """One recipient's message (see the module docstring for its headers and parts)."""
    smtputf8 = not item.email.isascii()  # an internationalized address needs SMTPUTF8
    message = EmailMessage(policy=_EML_POLICY.clone(utf8=True) if smtputf8 else _EML_POLICY)
    message.set_raw("From", _mailbox(envelope.from_name, envelope.from_address))
    message.set_raw("To", _mailbox(item.to_name, item.email))
    # set_raw: values made here, ASCII and one line, need no parse (a parse per header
    # took a third of a message's time); the subject is the one parsed and encoded
    if envelope.reply_to:
        message.set_raw("Reply-To", envelope.reply_to)
    message["Subject"] = item.subject
    message.set_raw("Date", format_datetime(envelope.as_of))
    message.set_raw("Message-ID", message_id(envelope.campaign, item.id, envelope.domain))
    message.set_raw("List-Id", f"<{envelope.campaign}.{envelope.domain}>")
    unsubscribe = _list_unsubscribe(item, envelope)
    if unsubscribe:
        message.set_raw("List-Unsubscribe", unsubscribe)
        if item.unsubscribe_url.startswith("https://"):
            message.set_raw("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    message.set_raw("Feedback-ID", feedback_id(envelope, dict(item.variants)))
    message.set_raw("MIME-Version", "1.0")
    if envelope.text:
        message.set_raw("Content-Type", f'multipart/alternative; boundary="=_{item.key}"')
        message.set_payload([_text_part("plain", item.text), _text_part("html", item.html)])
    else:
        _set_text(message, "html", item.html)
    return message


def _text_part(subtype: str, content: str) -> EmailMessage:
    part = EmailMessage(policy=_EML_POLICY)
    _set_text(part, subtype, content)
    return part


def _set_text(part: EmailMessage, subtype: str, content: str) -> None:
    """UTF-8, quoted-printable by :func:`binascii.b2a_qp` (C; the ``email`` package's own
    encoder, in Python, took 90 ms for one demo email's HTML). No final line break is
    added: the part decodes to ``content`` exactly, but for its line breaks (CRLF in a
    .eml file, LF in mbox; a lone CR is a line break too, as in the ``email`` package).

    A line that starts with ``From `` is written ``=46rom `` (the same text): an mbox
    reader would otherwise see a new message there, and the usual ``>From `` escape
    changes the text for good with most readers."""
    encoded = binascii.b2a_qp(content.encode("utf-8"), istext=True).decode("ascii")
    part.set_raw("Content-Type", f'text/{subtype}; charset="utf-8"')
    part.set_raw("Content-Transfer-Encoding", "quoted-printable")
    part.set_payload(_FROM_LINE.sub("=46rom ", encoded) if "From " in encoded else encoded)


def _mailbox(name: str, address: str) -> str:
    """``Name <address>``, the name quoted when needed and, when not ASCII, one RFC 2047
    encoded word: the standard library's parser reads a name folded into several encoded
    words with a space added at each fold. Names are cut to :data:`MAX_NAME` characters
    (the line stays far below SMTP's 998) and never hold a line break."""
    name = " ".join(name.split())[:MAX_NAME]
    if not name:
        return address
    # formataddr takes ASCII addresses only; an internationalized one is written as UTF-8
    shown = formataddr((name, "_@_"), charset="utf-8").removesuffix(" <_@_>")
    return f"{shown} <{address}>"


def _list_unsubscribe(item: Rendered, envelope: Envelope) -> str:
    """``<https://...>, <mailto:...?subject=unsubscribe-TOKEN>``: what the recipient has,
    one target a line. The URL comes from a template: whatever is not a URL character
    (spaces, line breaks, non-ASCII, angle brackets) is percent-encoded, so it can
    neither end the header nor start another."""
    targets = []
    if item.unsubscribe_url:
        targets.append(f"<{quote(item.unsubscribe_url, safe=_URL_SAFE)}>")
    if envelope.mailto and item.unsubscribe_token:
        targets.append(f"<mailto:{envelope.mailto}?subject=unsubscribe-{item.unsubscribe_token}>")
    return ",\n ".join(targets)


class _BodyGenerator(BytesGenerator):
    """:class:`BytesGenerator` writing a body's lines in one call, not two per line (the
    same bytes; a third of a message's time went to those calls)."""

    def _write_lines(self, lines: str) -> None:
        if lines:
            self.write(self._NL.join(_NEWLINE.split(lines)))  # type: ignore[attr-defined]


def message_bytes(message: EmailMessage, *, mbox: bool = False) -> bytes:
    """The message as bytes: CRLF for a .eml file, LF and ``>From `` escaped for mbox."""
    buffer = BytesIO()
    line_policy = message.policy.clone(linesep="\n") if mbox else message.policy
    _BodyGenerator(buffer, mangle_from_=mbox, policy=line_policy).flatten(message)
    return buffer.getvalue()


def _entry(item: Rendered, envelope: Envelope, **where: Any) -> dict[str, Any]:
    """A message's manifest line, as a ``files`` build's but for the file keys."""
    html, text = item.html.encode("utf-8"), item.text.encode("utf-8")
    entry = manifest_head(item)
    entry |= {
        **where,
        "message_id": message_id(envelope.campaign, item.id, envelope.domain),
        "html_bytes": len(html),
        "html_sha256": hashlib.sha256(html).hexdigest(),
    }
    if envelope.text:
        entry["text_bytes"], entry["text_sha256"] = len(text), hashlib.sha256(text).hexdigest()
    entry["warnings"] = list(item.warnings)
    return entry


class EmlFiles(EmailFiles):
    """Writes one ``.eml`` file per recipient (``eml/<k>/<key>.eml``); picklable."""

    def __init__(self, root: str | os.PathLike[str], envelope: Envelope) -> None:
        super().__init__(root, text=envelope.text)
        self.envelope = envelope

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "envelope": self.envelope}

    def write(self, item: Rendered) -> bytes:
        """Write the recipient's message; its manifest line."""
        path = f"eml/{item.key[:2]}/{item.key}.eml"
        data = message_bytes(build_message(item, self.envelope))
        size, sha256 = self._bytes(path, data)
        return dumps_line(_entry(item, self.envelope, eml=path, eml_bytes=size, eml_sha256=sha256))


class MboxFiles:
    """Opens the mbox shards of a build: one :class:`MboxWriter` per part; picklable."""

    def __init__(self, root: str | os.PathLike[str], envelope: Envelope, shard_size: int) -> None:
        self.root = str(root)
        self.envelope = envelope
        self.shard_size = shard_size

    def open(self, shard: int) -> MboxWriter:
        """The writer of shard number ``shard``; nothing is written before its first email."""
        return MboxWriter(self, shard)


class MboxWriter:
    """Collects one shard's messages and writes the shard when closed."""

    def __init__(self, files: MboxFiles, shard: int) -> None:
        self.files = files
        self.path = f"{FOLDER}/emails-{shard:05d}.mbox"
        self.chunks: list[bytes] = []
        when = files.envelope.as_of.strftime("%a %b %d %H:%M:%S %Y")
        self._from_line = f"From {files.envelope.from_address} {when}\n".encode("ascii")

    def write(self, item: Rendered) -> bytes:
        """Add the recipient's message to the shard; its manifest line."""
        data = message_bytes(build_message(item, self.files.envelope), mbox=True)
        row = len(self.chunks)
        # a blank line ends each message, so the next From line starts a line of its own
        self.chunks.append(self._from_line + data + (b"\n" if data.endswith(b"\n") else b"\n\n"))
        where = {"shard": self.path, "shard_row": row}
        return dumps_line(_entry(item, self.files.envelope, **where))

    def close(self) -> None:
        """Write the shard (when it holds a message)."""
        if not self.chunks:
            return
        path = f"{self.files.root}/{self.path}"
        try:
            os.makedirs(f"{self.files.root}/{FOLDER}", exist_ok=True)  # processes may race
            with open(path, "wb") as handle:
                handle.writelines(self.chunks)
        except OSError as exc:
            raise write_failed(exc, path) from None
        self.chunks = []


def mime_output(
    root: str | os.PathLike[str], format: MimeFormat, campaign: Campaign, as_of: datetime
) -> EmlFiles | MboxFiles:
    """Where a build's messages go in ``format``."""
    envelope = Envelope.of(campaign, as_of)
    if format == "eml":
        return EmlFiles(root, envelope)
    return MboxFiles(root, envelope, campaign.output.shard_size)


def delivery_warnings(campaign: Campaign, format: str, as_of: datetime) -> list[str]:
    """Check, before a build reads anything, what its delivery settings need: the
    unsubscribe secret (a :class:`ConfigError` naming its variable) and, for eml and
    mbox, a sender. The warnings to add to the build's summary."""
    warning = demo_secret_warning(campaign)
    if format in MIME_FORMATS:
        Envelope.of(campaign, as_of)
    return [warning] if warning else []
