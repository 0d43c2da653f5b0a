"""Profile values in href/src attributes: a scheme allow-list (issue 10, defect 4)."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from renderer import BuildOptions, build_campaign, load_campaign
from renderer.env import make_environment
from renderer.urls import is_safe_url

HOSTILE = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "  javascript:alert(1)",
    "\x01\x02javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "vbscript:msgbox(1)",
    "data:text/html,<script>alert(1)</script>",
    "DATA:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "file:///etc/passwd",
]
SAFE = [
    "https://shop.example.com/p?id=1&x=2",
    "http://example.com",
    "HTTPS://EXAMPLE.COM",
    "mailto:a@example.com",
    "tel:+123",
    "/relative/path",
    "page.html",
    "?q=1",
    "#top",
    "//cdn.example.com/x.png",
    "",
]
BODY = (
    '<mj-button href="{{ link }}">Go</mj-button>'
    '<mj-image src="{{ image }}" href="{{ link }}" />'
    '<mj-text><a href="{{ link }}">a</a> <a href=\'{{ link }}\'>b</a> <img src="{{ image }}"></mj-text>'
)
_ATTRIBUTE_RE = re.compile(r"""\b(href|src)=(?:"([^"]*)"|'([^']*)')""")


def scheme_as_a_browser_reads_it(value: str) -> str:
    """The scheme a browser would run (lower case), or '' for a relative URL."""
    text = re.sub(r"[\t\n\r]", "", html.unescape(value)).lstrip("".join(map(chr, range(33))))
    match = re.match(r"([a-zA-Z][a-zA-Z0-9+.\-]*):", text)
    return match.group(1).lower() if match else ""


def url_attributes(page: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2) or m.group(3) or "") for m in _ATTRIBUTE_RE.finditer(page)]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_profile_value_never_becomes_a_script_link(
    render_body: Callable[..., str], value: str
) -> None:
    page = render_body(BODY, link=value, image=value)
    found = url_attributes(page)
    assert len([k for k, _ in found if k == "href"]) >= 4 and any(k == "src" for k, _ in found)
    for kind, url in found:
        allowed = {"", "http", "https", "mailto", "tel"} | (
            {"cid", "about"} if kind == "src" else set()
        )
        assert scheme_as_a_browser_reads_it(url) in allowed, (kind, url)


@pytest.mark.parametrize("value", SAFE)
def test_allowed_urls_render_as_they_are(render_body: Callable[..., str], value: str) -> None:
    page = render_body(BODY, link=value, image=value)
    escaped = html.escape(value, quote=True)
    image = "about:blank" if value.startswith(("mailto:", "tel:")) else escaped  # links only
    for kind, url in url_attributes(page):
        assert url == (escaped if kind == "href" else image), kind


def test_entities_and_markup_marked_safe_are_decoded_before_the_check(
    render_body: Callable[..., str],
) -> None:
    page = render_body(
        '<mj-text><a href="{{ a | safe }}">a</a><a href="{{ b | safe }}">b</a></mj-text>',
        a="&#106;avascript:alert(1)",
        b="javascript&colon;alert(1)",
    )
    assert [url for _, url in url_attributes(page)] == ["#", "#"]


def test_images_may_be_inline_or_attached_but_not_html(render_body: Callable[..., str]) -> None:
    body = '<mj-image src="{{ image }}" /><mj-text><a href="{{ image }}">x</a></mj-text>'
    page = render_body(body, image="data:image/png;base64,iVBORw0KGgo=")
    assert url_attributes(page) == [("src", "data:image/png;base64,iVBORw0KGgo="), ("href", "#")]
    page = render_body(body, image="cid:logo@example.com")
    assert url_attributes(page) == [("src", "cid:logo@example.com"), ("href", "#")]


def test_a_scheme_split_over_two_expressions_is_caught(render_body: Callable[..., str]) -> None:
    page = render_body(
        '<mj-text><a href="{{ a }}{{ b }}">x</a><img src="{{ a }}/x.png"></mj-text>',
        a="javascript",
        b=":alert(1)",
    )
    assert url_attributes(page) == [("href", "#"), ("src", "javascript/x.png")]


def test_urls_the_designer_wrote_are_not_changed(render_body: Callable[..., str]) -> None:
    body = (
        '<mj-text><a href="javascript:void(0)">x</a>'
        '<a href="https://shop.example.com/?next={{ value }}">y</a></mj-text>'
    )
    page = render_body(body, value="javascript:alert(1)")
    assert url_attributes(page) == [
        ("href", "javascript:void(0)"),
        ("href", "https://shop.example.com/?next=javascript:alert(1)"),
    ]


def test_only_expressions_that_start_a_url_are_checked() -> None:
    env = make_environment()
    guarded = env.compile('<a href="{{ u }}" title="{{ u }}">{{ u }}</a>', raw=True)
    assert guarded.count("environment.url") == 1
    for source in ('<a href="https://x/{{ u }}">{{ u }}</a>', '<p title="{{ u }}">{{ u }}</p>'):
        assert "environment.url" not in env.compile(source, raw=True)
    assert "environment.url" not in make_environment(text=True).compile('href="{{ u }}"', raw=True)


@pytest.mark.parametrize("value", HOSTILE)
def test_the_check_reads_schemes_as_a_browser_does(value: str) -> None:
    assert not is_safe_url(html.escape(value), "href")
    assert not is_safe_url(html.escape(value), "src")


@pytest.mark.parametrize("value", SAFE)
def test_the_check_allows_the_listed_schemes_and_relative_urls(value: str) -> None:
    assert is_safe_url(html.escape(value), "href")


def campaign(folder: Path, unsafe_urls: str | None) -> Path:
    (folder / "templates").mkdir(parents=True)
    (folder / "blocks").mkdir()
    (folder / "templates" / "t.mjml").write_text(
        "<mjml><mj-body><mj-section><mj-column>\n"
        '<mj-button href="{{ website }}">Visit</mj-button>\n'
        "</mj-column></mj-section></mj-body></mjml>\n"
    )
    (folder / "profiles.csv").write_text(
        "id,email,website\n1,a@example.com,https://a.example.com\n"
        "2,b@example.com, JavaScript:alert(1)\n3,c@example.com,/local\n"
    )
    (folder / "campaign.yaml").write_text(
        "name: urls\ntemplate: t.mjml\nsubject: Hi\nprofiles: profiles.csv\n"
        "schema: {id: string, email: string, website: string}\n"
        "paths: {templates: [templates], blocks: [blocks]}\n"
        + (f"render: {{unsafe_urls: {unsafe_urls}}}\n" if unsafe_urls else "")
    )
    return folder / "campaign.yaml"


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_unsafe_url_is_replaced_with_a_manifest_warning(tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = build_campaign(load_campaign(campaign(tmp_path / "c", None)), BuildOptions(out=out))
    assert (summary["rendered"], summary["rejected"]) == (3, 0)
    entries = {e["id"]: e for e in jsonl(out / "manifest.jsonl")}
    assert entries["2"]["warnings"] == ["unsafe URL in a href attribute replaced"]
    assert entries["1"]["warnings"] == entries["3"]["warnings"] == []
    page = (out / entries["2"]["html"]).read_text()
    assert 'href="#"' in page and "alert" not in page


def test_the_campaign_can_reject_recipients_with_unsafe_urls(tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = campaign(tmp_path / "c", "reject")
    summary = build_campaign(load_campaign(config), BuildOptions(out=out))
    assert (summary["rendered"], summary["rejected_by_reason"]) == (2, {"unsafe_url": 1})
    [error] = jsonl(out / "errors.jsonl")
    assert (error["id"], error["reason"]) == ("2", "unsafe_url")
    assert error["detail"].startswith(f"{tmp_path / 'c' / 'templates' / 't.mjml'}:2: ")
    assert "JavaScript" not in error["detail"]  # the value is personal data
