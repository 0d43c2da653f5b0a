"""Tracked links: UTM parameters added once at compile time, as renderer/tracking.py says."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from renderer import load_campaign
from renderer.compile import CompiledTemplate, compile_template
from renderer.compile.links import LinkDecorator
from renderer.content import assemble
from renderer.env import make_environment
from renderer.runtime import CampaignRuntime
from renderer.specs import schema_of
from renderer.tracking import TrackingSpec, track_url, with_query
from segments.errors import TemplateError
from tests.conftest import AS_OF, Content, examples, wrap

SPEC = TrackingSpec.model_validate(
    {
        "utm": {"source": "email", "medium": "email", "campaign": "fall 26"},
        "exclude": ["partner.com"],
    }
)
QUERY = "utm_source=email&amp;utm_medium=email&amp;utm_campaign=fall%2026"


def compiled(content: Content, body: str, spec: TrackingSpec = SPEC) -> CompiledTemplate:
    content.template("t.mjml", wrap(f"<mj-section><mj-column>{body}</mj-column></mj-section>"))
    return compile_template(
        assemble(content.folders, "t.mjml"),
        make_environment(),
        make_environment(text=True),
        LinkDecorator(spec, "campaign.yaml"),
    )


def hrefs(source: str) -> list[str]:
    return re.findall(r'href="([^"]*)"', source)


def text_of(body: str) -> str:
    return f"<mj-text>{body}</mj-text>"


def test_literal_links_keep_their_query_and_fragment_in_the_compiled_source(
    content: Content,
) -> None:
    shape = compiled(
        content,
        text_of(
            '<a href="https://shop.example.com/p?x=1&amp;y=2#top">a</a>'
            '<a href="https://shop.example.com/sale">b</a>'
            '<a href="https://shop.example.com/q?">c</a>'
        ),
    ).shape("")
    assert hrefs(shape.html_source) == [
        f"https://shop.example.com/p?x=1&amp;y=2&amp;{QUERY}#top",
        f"https://shop.example.com/sale?{QUERY}",
        f"https://shop.example.com/q?{QUERY}",
    ]
    # the text part shows the same links, decorated in its compiled source too
    plain = QUERY.replace("&amp;", "&")
    assert f"(https://shop.example.com/p?x=1&y=2&{plain}#top)" in shape.text_source
    assert "track_url" not in shape.html_source  # nothing is added per recipient


def test_an_existing_utm_parameter_wins(content: Content) -> None:
    shape = compiled(content, text_of('<a href="https://s.example.com/?utm_source=own">a</a>'))
    assert hrefs(shape.shape("").html_source) == [
        "https://s.example.com/?utm_source=own&amp;utm_medium=email&amp;utm_campaign=fall%2026"
    ]


def test_mailto_tel_relative_unsubscribe_and_excluded_domains_are_left_alone(
    content: Content,
) -> None:
    links = [
        "mailto:help@example.com",
        "tel:+15551234",
        "#top",
        "/relative/path",
        "https://partner.com/x",
        "https://cdn.partner.com/x?a=1",
        "https://shop.example.com/account/unsubscribe?id=1",
    ]
    body = "".join(f'<a href="{link}">l</a>' for link in links)
    body += '<a href="{{ unsubscribe_url }}">Unsubscribe</a>'
    shape = compiled(content, text_of(body)).shape("")
    assert hrefs(shape.html_source)[: len(links)] == links
    assert re.search(r'href="\{#\n#\}\{\{ unsubscribe_url \}\}"', shape.html_source)
    # a lookalike domain is not a subdomain
    assert hrefs(
        compiled(content, text_of('<a href="https://notpartner.com/">x</a>')).shape("").html_source
    ) == [f"https://notpartner.com/?{QUERY}"]


def test_buttons_and_images_links_are_decorated(content: Content) -> None:
    body = (
        '<mj-button href="https://shop.example.com/sale">Sale</mj-button>'
        '<mj-image src="https://shop.example.com/i.png" href="https://shop.example.com/i" />'
    )
    source = compiled(content, body).shape("").html_source
    assert f"https://shop.example.com/sale?{QUERY}" in hrefs(source)
    assert f"https://shop.example.com/i?{QUERY}" in hrefs(source)
    assert 'src="https://shop.example.com/i.png"' in source  # images are not links


def test_jinja_utm_value_per_variant(content: Content) -> None:
    spec = TrackingSpec.model_validate(
        {"utm": {"source": "email", "content": "hero-{{ variant('hero') }}"}}
    )
    template = compiled(content, text_of('<a href="https://s.example.com/">a</a>'), spec)
    source = template.shape("").html_source
    # the compiled URL reads the value, evaluated once per recipient for all its links
    assert "utm_content={#\n#}{{ _mailsmith_utm_content }}" in source
    for name, expected in [("B side", "hero-B%20side"), (None, "hero-")]:
        html, text = template.render({"variants": {"hero": name}})
        assert hrefs(html) == [
            f"https://s.example.com/?utm_source=email&amp;utm_content={expected}"
        ]
        assert f"utm_content={expected})" in text


def test_links_that_are_expressions_are_decorated_at_render(content: Content) -> None:
    template = compiled(
        content,
        text_of('<a href="{{ url }}">a</a><a href="https://s.example.com/p/{{ sku }}#r">b</a>'),
    )
    source = template.shape("").html_source
    assert source.count("| track_url(") == 2
    cases: list[tuple[Any, str]] = [
        ("https://x.example.org/a?b=1#f", f"https://x.example.org/a?b=1&amp;{QUERY}#f"),
        ("https://x.example.org/", f"https://x.example.org/?{QUERY}"),
        ("https://www.partner.com/", "https://www.partner.com/"),
        ("mailto:a@example.com", "mailto:a@example.com"),
        ("javascript:alert(1)", "#"),  # still checked by the URL guard
    ]
    for url, expected in cases:
        html, _ = template.render({"url": url, "sku": "A1"})
        assert hrefs(html) == [expected, f"https://s.example.com/p/A1?{QUERY}#r"]


def test_no_tracking_leaves_the_compiled_source_as_it_was(content: Content) -> None:
    body = text_of('<a href="https://s.example.com/?a=1">a</a><a href="{{ url }}">b</a>')
    content.template("t.mjml", wrap(f"<mj-section><mj-column>{body}</mj-column></mj-section>"))
    plain = content.compile("t.mjml").shape("")
    empty = compiled(content, body, TrackingSpec()).shape("")
    assert plain.html_source == empty.html_source and "utm_" not in plain.html_source


def test_helpers() -> None:
    assert with_query("https://a/p#x", "u=1") == "https://a/p?u=1#x"
    assert with_query("https://a/p?q=1", "u=1") == "https://a/p?q=1&u=1"
    assert with_query("https://a/p?q=1&", "u=1") == "https://a/p?q=1&u=1"
    assert track_url("https://a.example/?utm_medium=x", (("utm_medium", ("email",)),)) == (
        "https://a.example/?utm_medium=x"
    )
    with pytest.raises(ValidationError):
        TrackingSpec.model_validate({"utm": {"content": "{% if x %}a{% endif %}"}})


def test_a_bad_utm_value_is_reported_at_its_campaign_line(tmp_path: Path) -> None:
    link = text_of('<a href="https://s.example.com/">a</a>')
    (tmp_path / "t.mjml").write_text(
        wrap(f"<mj-section><mj-column>{link}</mj-column></mj-section>"), encoding="utf-8"
    )
    (tmp_path / "p.csv").write_text("id,email\n1,a@example.com\n", encoding="utf-8")
    (tmp_path / "campaign.yaml").write_text(
        "name: t\ntemplate: t.mjml\nsubject: Hi\nprofiles: p.csv\n"
        "schema: {id: string, email: string}\npaths: {templates: ['.']}\n"
        'tracking:\n  utm:\n    source: email\n    content: "{{ variant( }}"\n',
        encoding="utf-8",
    )
    campaign = load_campaign(tmp_path / "campaign.yaml")
    with pytest.raises(TemplateError) as caught:
        CampaignRuntime(campaign, schema_of(campaign), AS_OF)  # type: ignore[arg-type]
    assert caught.value.file == str(tmp_path / "campaign.yaml") and caught.value.line == 10


def test_excluded_domains_match_in_idna_and_any_case() -> None:
    spec = TrackingSpec.model_validate({"utm": {"source": "e"}, "exclude": ["B\u00fccher.Example"]})
    parameters = (("utm_source", ("e",)),)
    for url in ["https://xn--bcher-kva.example/", "https://www.b\u00fccher.example/x"]:
        assert track_url(url, parameters, spec.exclude) == url
    assert track_url(" https://other.example/ ", parameters, spec.exclude) == (
        "https://other.example/?utm_source=e"
    )


@settings(max_examples=examples(300), deadline=None)
@given(
    path=st.text(alphabet="abc/-._~%", max_size=12),
    query=st.lists(
        st.tuples(st.sampled_from(["a", "b", "utm_source", "utm_x"]), st.text("xyz12", max_size=3)),
        max_size=4,
    ),
    fragment=st.one_of(st.none(), st.text(alphabet="abc-#?&=", max_size=6)),
)
def test_decoration_keeps_every_query_parameter_and_the_fragment(
    path: str, query: list[tuple[str, str]], fragment: str | None
) -> None:
    url = "https://shop.example.com/" + path.lstrip("/")
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query)
    if fragment is not None:
        url += "#" + fragment
    parameters = (("utm_source", ("email",)), ("utm_medium", ("e m",)))
    tracked = urlsplit(track_url(url, parameters))
    original = urlsplit(url)
    pairs = parse_qsl(tracked.query, keep_blank_values=True)
    assert pairs[: len(query)] == parse_qsl(original.query, keep_blank_values=True)
    keys = {k for k, _ in query}
    added = [(k, v) for k, v in [("utm_source", "email"), ("utm_medium", "e m")] if k not in keys]
    assert pairs[len(query) :] == added
    assert tracked.fragment == original.fragment and tracked.path == original.path


def test_a_utm_value_from_a_field_is_each_recipients_own(content: Content) -> None:
    spec = TrackingSpec.model_validate({"utm": {"content": "{{ tier }}-{{ variant('hero') }}"}})
    link = '<a href="https://s.example.com/">a</a><a href="{{ url }}">b</a>'
    template = compiled(content, text_of(link), spec)
    for tier, hero in [("gold", "A"), ("silver", "A"), ("gold", "B")]:
        context = {"tier": tier, "url": "https://s.example.com/x", "variants": {"hero": hero}}
        html, _ = template.render(context)
        assert hrefs(html) == [
            f"https://s.example.com/?utm_content={tier}-{hero}",
            f"https://s.example.com/x?utm_content={tier}-{hero}",
        ]
