"""Compile-once templates: tokens, fallbacks, blocks, shapes, safety, and equality with
the naive per-recipient pipeline."""

from __future__ import annotations

import math
import os
import pickle
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app
from renderer.env import NamedUndefinedError, make_environment
from segments.errors import MjmlError, RecipientError, TemplateError
from tests.conftest import Content, normalize_html, wrap


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


SECTION = "<mj-section><mj-column><mj-text>{}</mj-text></mj-column></mj-section>"


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({}, "Hi there!"),
        ({"first_name": None}, "Hi there!"),
        ({"first_name": ""}, "Hi there!"),
        ({"first_name": "   "}, "Hi there!"),
        ({"first_name": math.nan}, "Hi there!"),
        ({"first_name": "Ana"}, "Hi Ana!"),
        ({"first_name": 0}, "Hi 0!"),
        ({"first_name": False}, "Hi False!"),
    ],
)
def test_fallback_treats_missing_none_empty_nan_as_missing_but_keeps_0_and_false(
    render_body: Any, context: dict[str, Any], expected: str
) -> None:
    html = render_body(SECTION.format('Hi {{ first_name | fallback("there") }}!'), **context)
    assert expected in text_of(html)
    assert "nan" not in text_of(html).lower().replace("ana", "")
    assert "None" not in text_of(html)


def test_missing_token_without_fallback_rejects_naming_file_line_and_field(
    content: Content,
) -> None:
    body = "\n".join(
        [
            "<mjml><mj-body>",
            "<mj-section><mj-column>",
            "<mj-text>",
            "Hello {{ first_name }}",
            "</mj-text>",
            "</mj-column></mj-section></mj-body></mjml>",
        ]
    )
    compiled = content.compile(content.template("welcome.mjml", body))
    with pytest.raises(RecipientError) as caught:
        compiled.render({})
    assert caught.value.reason == "missing_field"
    assert caught.value.field == "first_name"
    assert caught.value.line == 4
    assert caught.value.file is not None and caught.value.file.endswith("welcome.mjml")
    assert "welcome.mjml:4" in caught.value.detail


def test_missing_token_in_a_block_points_at_the_block_file(content: Content) -> None:
    content.block(
        "greet",
        "\n<mj-section><mj-column><mj-text>{{ nickname }}</mj-text></mj-column></mj-section>",
        name="greet",
    )
    compiled = content.compile(content.template("t.mjml", wrap('<mj-block name="greet" />')))
    with pytest.raises(RecipientError) as caught:
        compiled.render({})
    assert caught.value.file is not None and caught.value.file.endswith("greet.mjml")
    assert caught.value.line == 5  # 3 front matter lines + the blank line + 1


LAYOUT = "\n".join(
    [
        "<mjml><mj-body>",
        "<mj-section>",
        "<mj-column><mj-text>a</mj-text></mj-column>",
        "{}<mj-column><mj-text>b</mj-text></mj-column>{}",
        "</mj-section></mj-body></mjml>",
    ]
)


@pytest.mark.parametrize(
    ("opening", "closing", "context", "reason", "field", "detail"),
    [
        (
            "{% if tier.level > 1 %}",
            "{% endif %}",
            {},
            "missing_field",
            "tier",
            "'tier' is undefined",
        ),
        (
            "{% for i in range(count) %}",
            "{% endfor %}",
            {"count": "3"},
            "render_error",
            None,
            "TypeError while rendering",
        ),
    ],
)
def test_a_layout_that_cannot_render_names_its_file_line_and_field(
    content: Content,
    opening: str,
    closing: str,
    context: dict[str, Any],
    reason: str,
    field: str | None,
    detail: str,
) -> None:
    compiled = content.compile(content.template("t.mjml", LAYOUT.format(opening, closing)))
    with pytest.raises(RecipientError) as caught:
        compiled.render(context)
    file = caught.value.file
    assert file is not None and file.endswith("t.mjml")
    assert (caught.value.reason, caught.value.field, caught.value.line) == (reason, field, 4)
    assert caught.value.detail == f"{file}:4: {detail}"


@pytest.mark.parametrize(
    ("source", "context", "name"),
    [
        ("{{ a }}", {}, "a"),
        ("{{ a.b }}", {"a": {}}, "b"),
        ("{{ a.b.c }}", {"a": {}}, "b"),
        ("{{ a['it\\'s'] }}", {"a": {}}, "it's"),
        ("{{ a[3] }}", {"a": []}, None),
        ("{% for x in a %}{{ loop.previtem }}{% endfor %}", {"a": [1]}, None),
    ],
)
def test_undefined_errors_carry_the_undefined_name(
    source: str, context: dict[str, Any], name: str | None
) -> None:
    with pytest.raises(NamedUndefinedError) as caught:
        make_environment().from_string(source).render(context)
    assert caught.value.name == name
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (copy.name, copy.message) == (name, caught.value.message)


def test_blank_policy_undefined_errors_carry_the_name_too() -> None:
    template = make_environment("blank").from_string("[{{ a }}]{{ b.c }}")
    with pytest.raises(NamedUndefinedError) as caught:
        template.render({})
    assert caught.value.name == "b"


def test_an_undefined_attribute_names_the_attribute(content: Content) -> None:
    body = LAYOUT.format("", "").replace("<mj-text>b", "<mj-text>{{ user.nickname }}")
    compiled = content.compile(content.template("t.mjml", body))
    with pytest.raises(RecipientError) as caught:
        compiled.render({"user": {}})
    assert caught.value.field == "nickname"
    assert caught.value.detail == f"{caught.value.file}:4: 'nickname' is undefined"


def test_blank_policy_prints_nothing_for_missing(content: Content) -> None:
    compiled = content.compile(
        content.template("t.mjml", wrap(SECTION.format("[{{ first_name }}]"))), "blank"
    )
    html, _ = compiled.render({})
    assert "[]" in text_of(html).replace(" ", "")


def test_if_on_missing_field_is_false_and_loop_over_missing_is_empty(render_body: Any) -> None:
    html = render_body(
        SECTION.format("{% if nickname %}A{% else %}B{% endif %}{% for i in items %}X{% endfor %}")
    )
    assert "B" in text_of(html) and "X" not in text_of(html)


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4])
def test_loop_over_columns_gets_the_widths_mjml_gives_that_many_columns(
    content: Content, count: int
) -> None:
    body = (
        "<mj-section>{% for p in products[:4] %}<mj-column><mj-text>{{ p.name }}</mj-text></mj-column>"
        "{% else %}<mj-column><mj-text>none</mj-text></mj-column>{% endfor %}</mj-section>"
    )
    name = content.template("t.mjml", wrap(body))
    context = {"products": [{"name": f"P{i}"} for i in range(count)]}
    html, _ = content.compile(name).render(context)
    naive = content.naive(name).render(context)
    assert normalize_html(html) == normalize_html(naive)
    width = {0: "100", 1: "100", 2: "50", 3: "33-333332", 4: "25"}[count]
    assert f"mj-column-per-{width}" in html


def test_column_behind_a_condition_changes_widths_like_the_naive_pipeline(content: Content) -> None:
    body = (
        "<mj-section><mj-column><mj-text>a</mj-text></mj-column>"
        "{% if in_segment('vip') %}<mj-column><mj-text>vip</mj-text></mj-column>{% endif %}</mj-section>"
    )
    name = content.template("t.mjml", wrap(body))
    compiled = content.compile(name)
    for segments in (frozenset(), frozenset({"vip"})):
        html, _ = compiled.render({"segments": segments})
        assert normalize_html(html) == normalize_html(
            content.naive(name).render({"segments": segments})
        )
    assert len(compiled.shapes) == 2


def test_blocks_show_if_and_fallback_chain(content: Content) -> None:
    content.block(
        "vip",
        SECTION.format("VIP {{ first_name }}"),
        name="vip",
        show_if="vip",
        fallback="generic",
        fields="[first_name]",
    )
    content.block("generic", SECTION.format("Generic"), name="generic")
    compiled = content.compile(content.template("t.mjml", wrap('<mj-block name="vip" />')))
    shown = {
        "vip with name": text_of(compiled.render({"segments": {"vip"}, "first_name": "Ana"})[0]),
        "vip without name": text_of(compiled.render({"segments": {"vip"}})[0]),
        "not vip": text_of(compiled.render({"segments": set(), "first_name": "Ana"})[0]),
    }
    assert "VIP Ana" in shown["vip with name"]
    assert "Generic" in shown["vip without name"] and "VIP" not in shown["vip without name"]
    assert "Generic" in shown["not vip"]


def test_block_without_fallback_shows_nothing_when_hidden(content: Content) -> None:
    content.block("promo", SECTION.format("Promo"), name="promo", show_if="vip")
    compiled = content.compile(
        content.template("t.mjml", wrap('<mj-block name="promo" />' + SECTION.format("end")))
    )
    assert "Promo" not in text_of(compiled.render({"segments": set()})[0])
    assert "Promo" in text_of(compiled.render({"segments": {"vip"}})[0])


def test_block_fallback_cycle_is_an_error(content: Content) -> None:
    content.block("a", SECTION.format("a"), name="a", show_if="x", fallback="b")
    content.block("b", SECTION.format("b"), name="b", show_if="y", fallback="a")
    with pytest.raises(TemplateError, match="cycle"):
        content.compile(content.template("t.mjml", wrap('<mj-block name="a" />')))


@pytest.mark.parametrize("name", ["../outside", "/etc/passwd", "a/../../b", "..\\x"])
def test_block_names_that_escape_the_folder_are_refused(content: Content, name: str) -> None:
    with pytest.raises(TemplateError) as caught:
        content.compile(content.template("t.mjml", wrap(f'<mj-block name="{name}" />')))
    assert caught.value.line == 1


@pytest.mark.parametrize("path", ["../secret.mjml", "/etc/passwd", "partials/../../secret.mjml"])
def test_includes_that_escape_the_template_folder_are_refused(content: Content, path: str) -> None:
    (content.root / "secret.mjml").write_text("<mj-section></mj-section>")
    with pytest.raises(TemplateError, match="escapes|outside"):
        content.compile(content.template("t.mjml", wrap(f"{{% include '{path}' %}}")))


def test_symlink_out_of_the_template_folder_is_refused(content: Content) -> None:
    (content.root / "secret.mjml").write_text(SECTION.format("secret"))
    os.symlink(content.root / "secret.mjml", content.templates / "link.mjml")
    with pytest.raises(TemplateError, match="outside"):
        content.compile(content.template("t.mjml", wrap("{% include 'link.mjml' %}")))


def test_include_inside_the_folder_works(content: Content) -> None:
    content.template("partials/footer.mjml", SECTION.format("Footer {{ shop | fallback('x') }}"))
    compiled = content.compile(
        content.template("t.mjml", wrap("{% include 'partials/footer.mjml' %}"))
    )
    assert "Footer Acme" in text_of(compiled.render({"shop": "Acme"})[0])


HOSTILE = [
    "<script>alert(1)</script>",
    '" onmouseover="alert(1)',
    'O\'Brien "Bob" & Sons',
    "{{ 7*7 }}",
    "{% for x in range(3) %}loop{% endfor %}",
    "MSJ0Z",
    "مرحبا بالعالم",
    "\u202eevil",
    "🎉" * 10,
    "x" * 5000,
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_profile_values_are_escaped_data(render_body: Any, value: str) -> None:
    body = (
        "<mj-section><mj-column><mj-text>Hi {{ name }}</mj-text>"
        '<mj-button href="https://x.test/?n={{ name | urlencode }}&amp;t={{ name }}">Go</mj-button>'
        "</mj-column></mj-section>"
    )
    html = render_body(body, name=value)
    assert "<script>" not in html
    assert 'onmouseover="alert' not in html
    assert "49" not in html.replace(value, "") or "49" in value
    assert "looploop" not in html
    assert html.count("<a ") == 1


@pytest.mark.parametrize(
    "expression",
    [
        "''.__class__.__mro__[1].__subclasses__()",
        "profile.__class__.__init__.__globals__",
        "cycler.__init__.__globals__",
        "(1).__class__.__base__",
    ],
)
def test_sandbox_refuses_attribute_access_tricks(render_body: Any, expression: str) -> None:
    with pytest.raises(TemplateError, match="sandbox|unsafe"):
        render_body(SECTION.format("{{ " + expression + " }}"), profile={})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '<mj-section {% if x %}background-color="red"{% endif %}><mj-column></mj-column></mj-section>',
            "attribute",
        ),
        ("{{ first_name }}", "would be dropped"),
        ("{% extends 'base.mjml' %}", "not supported"),
        (
            "<mj-section><mj-column>{% if x %}</mj-column>{% endif %}</mj-section>",
            "never closed|different",
        ),
    ],
)
def test_unsupported_constructs_fail_with_file_and_line(
    content: Content, body: str, message: str
) -> None:
    name = content.template("t.mjml", "<mjml>\n<mj-body>\n" + body + "\n</mj-body>\n</mjml>")
    with pytest.raises(TemplateError, match=message) as caught:
        content.compile(name)
    assert caught.value.file is not None and caught.value.file.endswith("t.mjml")
    assert caught.value.line == 3


def test_jinja_in_mj_style_is_refused(content: Content) -> None:
    name = content.template(
        "t.mjml", wrap(SECTION.format("x"), head="<mj-style>.a { color: {{ c }} }</mj-style>")
    )
    with pytest.raises(TemplateError, match="not supported inside <mj-style>"):
        content.compile(name)


def test_delimiters_inside_jinja_strings_split_as_jinja_splits_them(content: Content) -> None:
    column = (
        "<mj-section><mj-column>{% if sep == '%}' %}<mj-text>[{{ sep ~ \"}}\" }}]</mj-text>"
        "{% endif %}</mj-column></mj-section>"
    )
    name = content.template("t.mjml", wrap(column))
    html, _ = content.compile(name).render({"sep": "%}"})
    assert "[%}}}]" in text_of(html)
    assert normalize_html(html) == normalize_html(content.naive(name).render({"sep": "%}"}))


@pytest.mark.parametrize(
    ("jinja", "message"),
    [
        ("{{ name ( }}", "unexpected '}'"),
        ("{# never closed", "comment"),
        ("{{ name", "never closed"),
    ],
)
def test_malformed_jinja_in_a_block_names_the_block_file_and_line(
    content: Content, jinja: str, message: str
) -> None:
    content.block(
        "greet",
        "\n<mj-section><mj-column><mj-text>\nHi " + jinja + "\n</mj-text></mj-column></mj-section>",
        name="greet",
    )
    name = content.template("t.mjml", wrap('<mj-block name="greet" />'))
    with pytest.raises(TemplateError, match=message) as caught:
        content.compile(name)
    assert caught.value.file is not None and caught.value.file.endswith("greet.mjml")
    assert caught.value.line == 6  # 3 front matter lines, a blank line, the section, then it


def test_text_part_keeps_links_and_drops_markup(render_body: Any, content: Content) -> None:
    body = (
        "<mj-section><mj-column><mj-text><p>Hello <b>{{ name }}</b></p>"
        '<a href="https://shop.test/u?id={{ rid }}">Unsubscribe</a></mj-text></mj-column></mj-section>'
    )
    compiled = content.compile(
        content.template("t.mjml", wrap(body, head="<mj-preview>hidden preview</mj-preview>"))
    )
    _, text = compiled.render({"name": "Ana & <Bo>", "rid": "a1"})
    assert "Hello Ana & <Bo>" in text
    assert "Unsubscribe (https://shop.test/u?id=a1)" in text
    assert "<" not in text.replace("<Bo>", "")
    assert "hidden preview" not in text


def test_campaign_constants_are_folded_once_and_nothing_else(content: Content) -> None:
    from renderer.compile.optimize import optimize_tokens
    from renderer.content import assemble
    from renderer.env import make_environment

    body = SECTION.format(
        "{{ vars.shop }}|{{ vars.price | money }}|{{ vars.shop if in_segment('vip') else 'x' }}"
        "|{{ first_name | fallback(vars.shop) }}|{{ vars.items | random }}"
    )
    tokens = assemble(content.folders, content.template("t.mjml", wrap(body))).tokens
    env = make_environment()
    optimized = optimize_tokens(tokens, env, {"shop": "A&B", "price": 5, "items": [1, 2]})
    folded = [
        t.text for t in optimized if t.kind == "data" and "A&amp;B" in t.text or "$5.00" in t.text
    ]
    assert folded == ["A&amp;B", "$5.00"]
    remaining = [t.text for t in optimized if t.kind == "var"]
    assert len(remaining) == 3  # segment-dependent, profile-dependent, non-deterministic filter


def test_rebinding_vars_disables_folding(content: Content) -> None:
    from renderer.compile.optimize import optimize_tokens
    from renderer.content import assemble
    from renderer.env import make_environment

    body = SECTION.format("{% for vars in rows %}{{ vars.shop }}{% endfor %}")
    tokens = assemble(content.folders, content.template("t.mjml", wrap(body))).tokens
    optimized = optimize_tokens(tokens, make_environment(), {"shop": "A"})
    assert [t.kind for t in optimized] == [t.kind for t in tokens]


def test_text_part_separates_table_cells_and_labels_links_with_image_alt() -> None:
    from renderer.compile.text import html_to_text

    html = (
        "<table><tr><th>Item</th><th>Qty</th></tr><tr><td>"
        '<img src="g.jpg" alt="Gloves"></td><td>Gloves</td><td>1</td></tr></table>'
        '<a href="https://shop.test/p"><img src="p.jpg" alt="Socks"></a>'
    )
    text = html_to_text(html)
    assert "Item Qty" in text  # header cells apart
    assert "Gloves 1" in text and "Gloves Gloves" not in text  # a lone image adds nothing
    assert "Socks (https://shop.test/p)" in text  # a linked image's alt labels the link


MULTILINE_STYLES = [
    (
        '<mj-text css-class="x"><p style="color: red;\n   font-size: 12px">Hi {{ name }}</p></mj-text>',
        '<mj-text css-class="x"><p style="color: red; font-size: 12px">Hi {{ name }}</p></mj-text>',
    ),
    (
        '<mj-text><div style="\n  color:red;\n">Hi {{ name }}</div></mj-text>',
        '<mj-text><div style="color:red;">Hi {{ name }}</div></mj-text>',
    ),
    (
        '<mj-text><p style="color:red;\tfont-size:2px" class="a\n  b">{{ name }}</p></mj-text>',
        '<mj-text><p style="color:red; font-size:2px" class="a b">{{ name }}</p></mj-text>',
    ),
    (
        '<mj-button href="https://x.test/?a=1\n&amp;b={{ name }}">Go</mj-button>',
        '<mj-button href="https://x.test/?a=1&amp;b={{ name }}">Go</mj-button>',
    ),
]


@pytest.mark.parametrize(("several_lines", "one_line"), MULTILINE_STYLES)
def test_attributes_written_over_several_lines_build_like_one_line(
    content: Content, several_lines: str, one_line: str
) -> None:
    """Formatters wrap long style attributes; MJML would write the newlines as '\\n'."""
    raw = '<mj-raw><div style="\n  color:red;\n">raw</div></mj-raw>'
    wrapped = content.template(
        "a.mjml", wrap(SECTION.replace("<mj-text>{}</mj-text>", several_lines) + raw)
    )
    single = content.template(
        "b.mjml",
        wrap(
            SECTION.replace("<mj-text>{}</mj-text>", one_line)
            + raw.replace("\n  ", "").replace("\n", "")
        ),
    )
    context = {"name": "Ann"}
    html, text = content.compile(wrapped).render(context)
    assert (html, text) == content.compile(single).render(context)
    assert content.naive(wrapped).render(context) == content.naive(single).render(context)
    assert "\\n" not in html and "\\t" not in html


def test_a_style_the_inliner_cannot_read_is_a_located_mjml_error(content: Content) -> None:
    content.block(
        "bad",
        '\n<mj-section><mj-column><mj-text>\n<p>ok</p>\n<p style="color: {{ c }}; 12px">x</p>'
        "\n</mj-text></mj-column></mj-section>",
        name="bad",
    )
    name = content.template("t.mjml", wrap('<mj-block name="bad" />'))
    with pytest.raises(MjmlError) as caught:
        content.compile(name)
    assert caught.value.file is not None and caught.value.file.endswith("bad.mjml")
    assert caught.value.line == 7  # 3 front matter lines, a blank line, section, <p>ok</p>
    assert caught.value.hint and "style" in caught.value.hint
    with pytest.raises(MjmlError) as naive:
        content.naive(name).render({"c": "red"})
    assert naive.value.file is not None and naive.value.file.endswith("t.mjml")


def test_cli_build_reports_an_unreadable_style_without_a_traceback(tmp_path: Path) -> None:
    template = tmp_path / "t.mjml"
    template.write_text(
        wrap("\n" + SECTION.format('<p style="color">Hi {{ first_name }}</p>')), encoding="utf-8"
    )
    profiles = tmp_path / "p.csv"
    profiles.write_text("id,email,first_name\n1,a@example.com,Ann\n", encoding="utf-8")
    command = ["build", "--template", str(template), "--profiles", str(profiles)]
    result = CliRunner().invoke(app, [*command, "--out", str(tmp_path / "o"), "--quiet"])
    assert result.exit_code == 4, result.output
    assert f"{template}:2: CSS inlining failed" in result.stderr
    assert "hint:" in result.stderr
    assert isinstance(result.exception, SystemExit)  # the CLI's error boundary, no traceback
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("kind", ["template", "block", "include"])
def test_a_source_file_that_is_not_utf8_is_a_located_error(content: Content, kind: str) -> None:
    bad = b"<mj-section><mj-column>\n<mj-text>caf\xe9</mj-text>\n</mj-column></mj-section>"
    if kind == "block":
        (content.blocks / "b.mjml").write_bytes(bad)
        content.template("t.mjml", wrap('<mj-block name="b" />'))
        where = content.blocks / "b.mjml"
    elif kind == "include":
        (content.templates / "part.mjml").write_bytes(bad)
        content.template("t.mjml", wrap("{% include 'part.mjml' %}"))
        where = content.templates / "part.mjml"
    else:
        where = content.templates / "t.mjml"
        where.write_bytes(b"<mjml><mj-body>\n" + bad + b"\n</mj-body></mjml>")
    with pytest.raises(TemplateError, match="not UTF-8") as caught:
        content.compile("t.mjml")
    assert caught.value.file == str(where)
    assert caught.value.line == (3 if kind == "template" else 2)
