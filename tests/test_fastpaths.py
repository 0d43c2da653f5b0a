"""The render fast paths keep the semantics of the plain Jinja/sandbox paths they replace.

ASCII template HTML, one context shared by a recipient's renders, the shape key
rendered with the headers, mailsmith's own calls outside the generic sandbox
checks, and fewer garbage collections during a build.
"""

from __future__ import annotations

import gc
import html
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from renderer import BuildOptions, build_campaign
from renderer.build.output import dumps, dumps_line
from renderer.campaign import adhoc_campaign
from renderer.compile.ascii import ascii_html
from renderer.env import make_environment, render_shared, with_globals
from segments.profiles.schema import parse_json
from tests.conftest import Content, examples, normalize_html, wrap


def test_ascii_html_uses_references_outside_style_only() -> None:
    source = '<style>p::before { content: "·"; }</style><p title="café">a · b\u200a</p>'
    converted = ascii_html(source)
    assert '<style>p::before { content: "·"; }</style>' in converted
    assert '<p title="caf&#233;">a &#183; b&#8202;</p>' in converted
    assert html.unescape(converted) == html.unescape(source)
    assert ascii_html("plain") == "plain"


def test_template_text_becomes_references_and_profile_values_stay_escaped_text(
    content: Content,
) -> None:
    name = content.template(
        "t.mjml",
        wrap("<mj-section><mj-column><mj-text>Café · {{ who }}</mj-text></mj-column></mj-section>"),
    )
    compiled = content.compile(name)
    out, text = compiled.render({"who": "Zoë & <b>"})
    assert "Caf&#233; &#183; Zoë &amp; &lt;b&gt;" in out
    assert "Café · Zoë & <b>" in text
    assert normalize_html(out) == normalize_html(content.naive(name).render({"who": "Zoë & <b>"}))


def test_shared_context_is_not_changed_by_a_render_and_context_values_beat_globals() -> None:
    env = make_environment()
    template = env.from_string("{% set x = 1 %}{{ x }} {{ range }}|{{ namespace is defined }}")
    context = with_globals(env, {"range": "mine"})
    before = dict(context)
    assert render_shared(template, context) == "1 mine|True"
    assert context == before
    plain = with_globals(env, {"a": 1})
    assert with_globals(env, plain) is plain  # already holds the globals: no copy


def test_namespace_and_context_functions_work_in_and_outside_loops(content: Content) -> None:
    body = (
        "<mj-section><mj-column><mj-text>"
        "{% set ns = namespace(total=0) %}{% for i in items %}{% set ns.total = ns.total + i %}"
        "{% set inner = namespace(n=i) %}[{{ inner.n }}{% if in_segment('vip') %}v{% endif %}"
        "{{ variant('t') }}]{% endfor %}={{ ns.total }} {{ has_fields('items') }} {{ ns.missing | fallback('-') }}"
        "</mj-text></mj-column></mj-section>"
    )
    name = content.template("t.mjml", wrap(body))
    context = {"items": [1, 2], "segments": frozenset({"vip"}), "variants": {"t": "B"}}
    out, _ = content.compile(name).render(context)
    assert "[1vB][2vB]=3 True -" in out
    assert normalize_html(out) == normalize_html(content.naive(name).render(context))


@pytest.mark.parametrize("call", ["cycler.__init__", "namespace.__init__", "lipsum.__globals__"])
def test_attribute_tricks_on_the_fast_path_globals_are_still_refused(
    render_body: Any, call: str
) -> None:
    from segments.errors import TemplateError

    with pytest.raises(TemplateError):
        render_body(
            f"<mj-section><mj-column><mj-text>{{{{ {call} }}}}</mj-text></mj-column></mj-section>"
        )


def _build(tmp_path: Path, template: str, rows: list[dict[str, Any]], subject: str) -> Path:
    (tmp_path / "t.mjml").write_text(template, encoding="utf-8")
    profiles = tmp_path / "p.jsonl"
    profiles.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out"
    campaign = adhoc_campaign(tmp_path / "t.mjml", profiles, subject=subject)
    # check=False: these templates read names the data lacks on purpose (the rejection
    # path); the build's static check would refuse them before any row is rendered
    build_campaign(campaign, BuildOptions(out=out, check=False))
    return out


COLUMNS = (
    "<mjml><mj-body><mj-section><mj-column><mj-text>a</mj-text></mj-column>"
    "{% if {condition} %}<mj-column><mj-text>b</mj-text></mj-column>{% endif %}"
    "</mj-section></mj-body></mjml>"
)


def test_a_field_missing_in_the_layout_rejects_the_recipient(tmp_path: Path) -> None:
    template = COLUMNS.replace("{condition}", "tier.level > 1")
    rows = [
        {"id": 1, "email": "a@example.com", "tier": {"level": 2}},
        {"id": 2, "email": "b@example.com", "name": "no tier"},
    ]
    out = _build(tmp_path, template, rows, subject="Hi")
    manifest = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    errors = [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()]
    assert [m["id"] for m in manifest] == ["1"]
    assert "mj-column-per-50" in (out / manifest[0]["html"]).read_text()
    assert [(e["id"], e["reason"]) for e in errors] == [("2", "missing_field")]


def test_a_field_missing_in_the_subject_names_the_campaign_key(tmp_path: Path) -> None:
    template = COLUMNS.replace("{condition}", "tier")
    rows = [{"id": 1, "email": "a@example.com"}]
    out = _build(tmp_path, template, rows, subject="Hi {{ nickname }}")
    errors = [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()]
    assert [(e["field"], e["reason"]) for e in errors] == [("nickname", "missing_field")]
    assert errors[0]["detail"].endswith(": subject: 'nickname' is undefined")


def test_layout_that_reads_the_subject_sees_the_rendered_subject(tmp_path: Path) -> None:
    template = COLUMNS.replace("{condition}", "'Sale' in subject")
    rows = [
        {"id": 1, "email": "a@example.com", "deal": "Sale"},
        {"id": 2, "email": "b@example.com", "deal": "News"},
    ]
    out = _build(tmp_path, template, rows, subject="{{ deal }} today")
    manifest = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    widths = [(out / m["html"]).read_text().count("mj-column-per-50") > 0 for m in manifest]
    assert widths == [True, False]


def test_a_build_restores_the_garbage_collector(tmp_path: Path) -> None:
    thresholds = gc.get_threshold()
    _build(tmp_path, COLUMNS.replace("{condition}", "x"), [{"id": 1, "email": "a@example.com"}], "")
    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == 0


def test_money_is_exact_decimal_rounding_and_the_cache_changes_nothing() -> None:
    from renderer.env import money

    for _ in range(2):  # the second round comes from the cache
        assert money(2.675) == "$2.68"  # the number as written, not its binary double
        assert money(1) == money(1.0) == "$1.00"
        assert money(1234.5, "€", 0) == "€1,234"
        assert money(float("nan")) == money(None) == ""
        assert money("n/a") == "n/a"


_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.text()
)
_VALUES = st.recursive(
    _LEAF,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=examples(400), deadline=None)
@given(st.dictionaries(st.text(max_size=8), _VALUES, max_size=6))
def test_manifest_lines_are_the_bytes_json_dumps_writes(entry: dict[str, Any]) -> None:
    assert dumps_line(entry) == (dumps(entry) + "\n").encode("utf-8")


@settings(max_examples=examples(400), deadline=None)
@given(
    st.one_of(
        _VALUES.map(json.dumps),
        st.sampled_from(
            ["NaN", "[Infinity]", "1e400", str(2**80), '{"a": 1, "a": 2}', "[1,]", "{", ""]
        ),
        st.text(max_size=12),
    )
)
def test_profile_json_parses_as_json_loads_does(text: str) -> None:
    try:
        expected: Any = json.loads(text)
    except json.JSONDecodeError:
        with pytest.raises(json.JSONDecodeError):
            parse_json(text)
        return
    got = parse_json(text)
    assert json.dumps(got) == json.dumps(expected)  # NaN-safe equality, same types and order
