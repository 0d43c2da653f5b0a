"""``--format eml`` and ``mbox``: RFC 5322 messages that two parsers read back as the
``files`` build's emails, with signed List-Unsubscribe links; and the tokens themselves."""

from __future__ import annotations

import csv
import hashlib
import json
import mailbox
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser, Parser
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import mailparser
import pytest
from typer.testing import CliRunner

from cli import app
from renderer import BuildOptions, ConfigError, build_campaign, load_campaign
from renderer.build.mime import MAX_NAME, Envelope, build_message, message_bytes
from renderer.campaign import Campaign
from renderer.runtime import Rendered
from renderer.unsubscribe import sign_token, verify_token
from segments.profiles import DEFAULT_NA_VALUES
from tests.conftest import AS_OF, UNSUBSCRIBE_SECRET, copy_demo_campaign

runner = CliRunner()
FORMATS = ("files", "eml", "mbox")
PARSER = BytesParser(policy=policy.default)


def small_campaign(folder: Path) -> Campaign:
    """40 demo profiles (and two hostile ones) in chunks of 15 rows, mbox shards of 10."""
    demo = load_campaign(copy_demo_campaign(folder, rows=40))
    return demo.model_copy(
        update={
            "profiles": demo.profiles.model_copy(update={"chunk_size": 15}),
            "output": demo.output.model_copy(update={"shard_size": 10}),
        }
    )


def build(campaign: Campaign, out: Path, format: str, workers: int = 1) -> dict[str, Any]:
    options = BuildOptions(out=out, as_of=AS_OF, format=format, workers=workers)
    return build_campaign(campaign, options)


def manifest(out: Path) -> list[dict[str, Any]]:
    lines = (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [entry for entry in map(json.loads, lines) if not entry["holdout"]]


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under root but summary.json (its timing differs)."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != "summary.json"
    }


def names(campaign_file: Path) -> dict[str, str]:
    """Each profile's expected To display name (the demo's ``to_name:``)."""
    with (campaign_file.parent / "profiles.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))

    def value(text: str) -> str:  # "null", "n/a"... are missing: the fallback, ""
        return "" if text.strip().lower() in DEFAULT_NA_VALUES else text

    full = {r["id"]: f"{value(r['first_name'])} {value(r['last_name'])}" for r in rows}
    return {i: " ".join(name.split())[:MAX_NAME] for i, name in full.items()}  # cut as built


def messages(out: Path, format: str) -> dict[str, EmailMessage]:
    """Each recipient's message, parsed by the standard library, by recipient id."""
    found = {}
    for entry in manifest(out):
        if format == "eml":
            data = (out / entry["eml"]).read_bytes()
        else:
            shard = mailbox.mbox(out / entry["shard"])
            data = shard.get_bytes(shard.keys()[entry["shard_row"]])
            shard.close()
        found[entry["id"]] = PARSER.parsebytes(data)
    return found


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The small campaign built once in each format, one process."""
    root = tmp_path_factory.mktemp("eml")
    campaign = small_campaign(root / "campaign")
    built: dict[str, Any] = {f: build(campaign, root / f, f) for f in FORMATS}
    built["root"], built["campaign"] = root, campaign
    return built


def decoded(part: EmailMessage | str) -> str:
    """A text part's content with LF line ends (a .eml file's parts decode with the CRLF
    of the wire)."""
    content = part if isinstance(part, str) else part.get_content()
    return content.replace("\r\n", "\n")


def as_part(path: Path) -> str:
    """A file's text, as a part must decode to (no line break added at the end)."""
    return path.read_text(encoding="utf-8")


def check_message(message: EmailMessage, entry: dict[str, Any], files: Path, name: str) -> None:
    """A parsed message against the files build's manifest entry and files."""
    assert message["Subject"] == entry["subject"]
    (to,) = message["To"].addresses
    assert (to.addr_spec, to.display_name) == (entry["email"], name)
    assert message["From"] == "Juniper & Pine <news@shop.example.com>"
    assert message["Reply-To"] == "help@shop.example.com"
    assert message["Date"] == format_datetime(AS_OF) == "Fri, 20 Nov 2026 09:00:00 +0000"
    assert message["Message-ID"].endswith("@shop.example.com>")
    assert message["List-Id"] == "<autumn-retail-2026.shop.example.com>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    variants = ".".join(f"{k}={v}" for k, v in entry["variants"].items() if v is not None)
    assert message["Feedback-ID"] == f"autumn-retail-2026:{variants}:shop.example.com"
    assert message.get_content_type() == "multipart/alternative"
    assert message.get_boundary() == f"=_{entry['key']}"
    text, html = message.iter_parts()
    assert [p.get_content_type() for p in (text, html)] == ["text/plain", "text/html"]
    for part in (text, html):
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert decoded(text) == as_part(files / entry["text"])
    assert decoded(html) == as_part(files / entry["html"])


@pytest.mark.slow  # three builds (the module's fixture)
@pytest.mark.parametrize("format", ["eml", "mbox"])
def test_messages_read_back_as_the_files_build(builds: dict[str, Any], format: str) -> None:
    files_out = builds["root"] / "files"
    expected = {e["id"]: e for e in manifest(files_out)}
    parsed = messages(builds["root"] / format, format)
    assert parsed.keys() == expected.keys() and len(parsed) > 25
    display = names(builds["root"] / "campaign" / "campaign.yaml")
    for recipient_id, message in parsed.items():
        check_message(message, expected[recipient_id], files_out, display[recipient_id])
    lines = {e["id"]: e for e in manifest(builds["root"] / format)}
    assert {i: e["message_id"] for i, e in lines.items()} == {
        i: m["Message-ID"] for i, m in parsed.items()
    }


@pytest.mark.slow  # three builds (the module's fixture)
def test_list_unsubscribe_carries_the_signed_token(builds: dict[str, Any]) -> None:
    files_out, eml_out = builds["root"] / "files", builds["root"] / "eml"
    html = {
        e["id"]: (files_out / e["html"]).read_text(encoding="utf-8") for e in manifest(files_out)
    }
    for recipient_id, message in messages(eml_out, "eml").items():
        url, mailto = (t.strip().strip("<>") for t in message["List-Unsubscribe"].split(","))
        (token,) = parse_qs(urlsplit(url).query)["token"]
        assert verify_token(token, UNSUBSCRIBE_SECRET, "autumn-retail-2026") == recipient_id
        assert recipient_id not in url  # the id only base64-encoded, inside the signed token
        assert mailto == f"mailto:unsubscribe@shop.example.com?subject=unsubscribe-{token}"
        assert f'href="{url}"' in html[recipient_id]  # the link in the email itself


@pytest.mark.slow  # three builds (the module's fixture)
def test_non_ascii_names_are_encoded_words(builds: dict[str, Any]) -> None:
    """To display names that are not ASCII are RFC 2047 encoded; the hostile one (markup,
    quotes) is quoted and reads back as written."""
    out = builds["root"] / "eml"
    raw = {e["id"]: (out / e["eml"]).read_bytes() for e in manifest(out)}
    assert b"To: =?utf-8?q?James_M=C3=BCller?= <James.Muller@mail.example.com>" in raw["C000001"]
    assert all(data.isascii() and b"\r\n\r\n" in data for data in raw.values())


@pytest.mark.slow  # three builds (the module's fixture)
def test_second_parser_reads_the_same(builds: dict[str, Any]) -> None:
    """mail-parser (its own header decoding on the compat32 parser) agrees."""
    files_out, eml_out = builds["root"] / "files", builds["root"] / "eml"
    display = names(builds["root"] / "campaign" / "campaign.yaml")
    for entry in manifest(eml_out):
        parsed = mailparser.parse_from_file(str(eml_out / entry["eml"]))
        assert parsed.subject == entry["subject"]
        assert parsed.to == [(display[entry["id"]], entry["email"])]
        assert parsed.from_ == [("Juniper & Pine", "news@shop.example.com")]
        assert parsed.message_id == entry["message_id"]
        assert parsed.date.isoformat() == "2026-11-20T09:00:00+00:00"
        headers = {k: " ".join(v.split()) for k, v in parsed.headers.items() if isinstance(v, str)}
        assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "token=" in headers["List-Unsubscribe"] and "mailto:" in headers["List-Unsubscribe"]
        assert headers["Feedback-ID"].startswith("autumn-retail-2026:")
    files = {e["id"]: e for e in manifest(files_out)}
    for entry in manifest(eml_out):
        parsed = mailparser.parse_from_file(str(eml_out / entry["eml"]))
        expected = files[entry["id"]]
        text, html = (files_out / expected[k] for k in ("text", "html"))
        assert [decoded(p) for p in parsed.text_plain] == [as_part(text)]
        assert [decoded(p) for p in parsed.text_html] == [as_part(html)]


@pytest.mark.slow  # three builds (the module's fixture)
def test_mbox_shards_hold_each_message_once(builds: dict[str, Any]) -> None:
    """From lines dated as_of, no body line mistaken for one, and the same message as eml
    (LF line ends)."""
    eml_out, mbox_out = builds["root"] / "eml", builds["root"] / "mbox"
    eml = {e["id"]: (eml_out / e["eml"]).read_bytes() for e in manifest(eml_out)}
    entries = manifest(mbox_out)
    shards = sorted({e["shard"] for e in entries})
    assert shards[0] == "emails/emails-00000.mbox" and len(shards) >= 4
    for shard in shards:
        box = mailbox.mbox(mbox_out / shard)
        rows = [e for e in entries if e["shard"] == shard]
        assert len(box) == len(rows) == [e["shard_row"] for e in rows][-1] + 1
        for key, entry in zip(box.keys(), rows, strict=True):
            assert (
                box.get_message(key).get_from() == "news@shop.example.com Fri Nov 20 09:00:00 2026"
            )
            assert box.get_bytes(key).rstrip(b"\n") == eml[entry["id"]].replace(
                b"\r\n", b"\n"
            ).rstrip(b"\n")
        box.close()


@pytest.mark.slow  # three builds (the module's fixture)
@pytest.mark.parametrize("format", ["eml", "mbox"])
def test_a_rebuild_gives_the_same_bytes(builds: dict[str, Any], format: str) -> None:
    """Built again into the same folder (an eml or mbox build is replaceable)."""
    campaign, root = builds["campaign"], builds["root"]
    before = tree_digest(root / format)
    build(campaign, root / format, format)
    assert tree_digest(root / format) == before


@pytest.mark.slow
def test_two_workers_give_the_same_bytes(builds: dict[str, Any]) -> None:
    campaign, root = builds["campaign"], builds["root"]
    for format in ("eml", "mbox"):
        build(campaign, root / f"{format}-2", format, workers=2)
        assert tree_digest(root / f"{format}-2") == tree_digest(root / format)


def rendered(**changes: Any) -> Rendered:
    fields: dict[str, Any] = {
        "row": 1,
        "id": "C1",
        "email": "ana@example.com",
        "key": "0123456789abcdef01234567",
        "segments": (),
        "variants": {"subject_test": "A", "offer_test": None},
        "subject": "Ünïcode subject, long enough to be folded by the generator somewhere around here",
        "preheader": "",
        "html": "<p>From here on</p>\n<p>no final line break</p>",
        "text": "From here on\n",
        "unsubscribe_url": "https://x.example.com/u?token=abc",
        "unsubscribe_token": "abc",
        "to_name": "Ana",
    }
    return Rendered(**{**fields, **changes})


def envelope(**changes: Any) -> Envelope:
    fields: dict[str, Any] = {
        "campaign": "c",
        "from_address": "news@example.com",
        "from_name": "News",
        "reply_to": None,
        "domain": "example.com",
        "mailto": "u@example.com",
        "as_of": AS_OF,
        "text": True,
    }
    return Envelope(**{**fields, **changes})


def test_a_url_cannot_inject_a_header() -> None:
    """An unsubscribe URL built from profile data with a line break and spaces stays one
    header; an encoded-word subject reads back; no body line starts with From."""
    item = rendered(unsubscribe_url="https://x.example.com/u?n=a\r\nBcc: x@evil.example <b>")
    data = message_bytes(build_message(item, envelope()))
    message = PARSER.parsebytes(data)
    assert message["Bcc"] is None
    assert message["List-Unsubscribe"].startswith("<https://x.example.com/u?n=a%0D%0ABcc:%20x@evil")
    assert message["Subject"] == item.subject
    assert message["Feedback-ID"] == "c:subject_test=A:example.com"
    assert b"\nFrom " not in data and b"=46rom here on" in data
    assert [decoded(p) for p in message.iter_parts()] == [item.text, item.html]


def test_display_names_read_back_whole() -> None:
    """Long, quoted and non-ASCII names: one encoded word each, never folded apart (the
    standard library's parser would add a space at the fold)."""
    for name in ('Zoë "Z" Müller, Jr. ' * 4, 'Plain "quoted" name, Jr.', "a\r\nBcc: x@e.example"):
        message = PARSER.parsebytes(
            message_bytes(build_message(rendered(to_name=name), envelope()))
        )
        (to,) = message["To"].addresses
        assert (to.display_name, to.addr_spec) == (" ".join(name.split()), "ana@example.com")
        assert message["Bcc"] is None


def test_an_internationalized_address_is_written_as_utf8() -> None:
    """An address email-validator accepts (SMTPUTF8): the header is UTF-8 (RFC 6532)."""
    item = rendered(email="zoë@exämple.com", to_name="Zoë")
    data = message_bytes(build_message(item, envelope()))
    assert "To: =?utf-8?q?Zo=C3=AB?= <zoë@exämple.com>\r\n".encode() in data
    (to,) = Parser(policy=policy.default).parsestr(data.decode("utf-8"))["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Zoë", "zoë@exämple.com")


def test_html_only_without_text_and_no_one_click_without_https() -> None:
    item = rendered(unsubscribe_url="http://x.example.com/u", unsubscribe_token="")
    message = PARSER.parsebytes(message_bytes(build_message(item, envelope(text=False))))
    assert message.get_content_type() == "text/html"
    assert decoded(message) == item.html
    assert message["List-Unsubscribe"] == "<http://x.example.com/u>"
    assert message["List-Unsubscribe-Post"] is None


def test_token_round_trip() -> None:
    token = sign_token("C000042", "s3cret", "autumn")
    assert verify_token(token, "s3cret", "autumn") == "C000042"
    assert verify_token(token, b"s3cret", "autumn") == "C000042"
    assert token.replace("-", "").replace("_", "").replace(".", "").isalnum()
    odd = sign_token("ïd with spaces/and.dots", "s3cret", "autumn")
    assert verify_token(odd, "s3cret", "autumn") == "ïd with spaces/and.dots"


def test_tampered_tokens_are_refused() -> None:
    token = sign_token("C000042", "s3cret", "autumn")
    encoded_id, _, mac = token.partition(".")
    other_id = sign_token("C000043", "s3cret", "autumn").partition(".")[0]
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    for forged in (
        f"{other_id}.{mac}",  # another recipient's id with this signature
        f"{encoded_id}.{flipped}",
        f"{encoded_id}.{mac[:-4]}",
        f"{encoded_id}.",
        encoded_id,
        "",
        "..",
        f"{encoded_id}.{mac}=",
        f"{encoded_id}.{mac}.x",
        f"{encoded_id}!.{mac}",
    ):
        assert verify_token(forged, "s3cret", "autumn") is None, forged


def test_another_campaign_or_secret_is_refused() -> None:
    token = sign_token("C000042", "s3cret", "autumn")
    assert verify_token(token, "s3cret", "winter") is None
    assert verify_token(token, "other", "autumn") is None


def without_demo_secret(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    kept = [line for line in text.splitlines() if "demo_secret:" not in line]
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")


def test_a_build_without_the_secret_stops_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = copy_demo_campaign(tmp_path / "campaign", rows=5)
    without_demo_secret(path)
    monkeypatch.delenv("MAILSMITH_UNSUBSCRIBE_SECRET")
    result = runner.invoke(app, ["build", str(path), "--out", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 2, result.output
    assert "MAILSMITH_UNSUBSCRIBE_SECRET" in result.stderr
    assert "export MAILSMITH_UNSUBSCRIBE_SECRET=" in result.stderr
    assert not (tmp_path / "out").exists()
    monkeypatch.setenv("MAILSMITH_UNSUBSCRIBE_SECRET", "set now")
    result = runner.invoke(app, ["build", str(path), "--out", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 0, result.output
    assert "demo_secret" not in result.stderr


def test_the_demo_secret_is_used_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's first command works on a fresh machine."""
    monkeypatch.delenv("MAILSMITH_UNSUBSCRIBE_SECRET")
    path = copy_demo_campaign(tmp_path / "campaign", rows=5)
    out = tmp_path / "out"
    result = runner.invoke(app, ["build", str(path), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert "signed with the campaign's demo_secret" in result.stderr
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert any("MAILSMITH_UNSUBSCRIBE_SECRET" in w for w in summary["warnings"])


def test_eml_needs_a_sender(tmp_path: Path) -> None:
    campaign = small_campaign(tmp_path / "campaign").model_copy(update={"sender": None})
    with pytest.raises(ConfigError, match="need a sender") as caught:
        build(campaign, tmp_path / "out", "eml")
    assert caught.value.field == "sender"
    assert not (tmp_path / "out").exists()


def test_unsubscribe_settings_are_checked(tmp_path: Path) -> None:
    path = copy_demo_campaign(tmp_path / "campaign", rows=5)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("?token={token}", "?rid=1", 1), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unsubscribe\.url: .*\{token\}"):
        load_campaign(path)
    path.write_text(text + 'unsubscribe_url: "https://x.example.com"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="not both"):
        load_campaign(path)


@pytest.mark.slow
def test_every_demo_message_reads_back(
    demo_build: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """The whole demo as eml: each message equals the files build's email."""
    files_out, _ = demo_build
    demo = load_campaign(Path(__file__).resolve().parent.parent / "demo" / "campaign.yaml")
    out = tmp_path / "eml"
    build_campaign(demo, BuildOptions(out=out, format="eml"))
    expected = {e["id"]: e for e in manifest(files_out)}
    display = names(Path(__file__).resolve().parent.parent / "demo" / "campaign.yaml")
    parsed = messages(out, "eml")
    assert parsed.keys() == expected.keys()
    for recipient_id, message in parsed.items():
        check_message(message, expected[recipient_id], files_out, display[recipient_id])
