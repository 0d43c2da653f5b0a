"""The one-pass render (renderer.compile.fused) gives what the two-pass render gives:
the same HTML and text, the same escaping, the same errors and warnings."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from markupsafe import escape

from renderer.compile import CompiledTemplate
from segments.errors import MailsmithError, RecipientError, TemplateError
from tests.conftest import HOSTILE_NAME, Content, wrap
from tests.test_equivalence import load_demo

HOSTILE_URL = "javascript:alert(1)//"


def render_both(compiled: CompiledTemplate, context: dict[str, Any]) -> list[Any]:
    """[(html, text, warnings) in one pass, the same in two], or the errors raised."""
    results: list[Any] = []
    for fused in (True, False):
        compiled.fused_enabled = fused
        guard = compiled.env.guard  # type: ignore[attr-defined]
        guard.start()
        try:
            html, text = compiled.render(context)
            results.append((html, text, list(guard.warnings)))
        except MailsmithError as exc:
            results.append((type(exc), str(exc), exc.line))
        finally:
            guard.stop()
    compiled.fused_enabled = True
    return results


def fused_layouts(compiled: CompiledTemplate) -> list[bool]:
    return [shape.fused is not None for shape in compiled.shapes.values()]


TEMPLATE = wrap(
    """<mj-section><mj-column>
<mj-text>Hi {{ name | fallback('there') }}, {% if vip %}VIP {{ name }}{% else %}{{ city }}{% endif %}
<a href="{{ url }}">{{ name }}</a></mj-text>
<mj-image src="{{ image }}" alt="{{ name }}" href="{{ url }}" />
{% set ns = namespace(total=0) %}
<mj-text>{% for item in items %}<p>{{ item.name }}: {{ item.price | money }}</p>
{% set ns.total = ns.total + item.price %}{% endfor %}
Total {{ ns.total | money }} {{ items | length }} {{ item_tag ~ '!' }}</mj-text>
<mj-button href="{{ url }}?x={{ name | urlencode }}">{{ name | upper }}</mj-button>
</mj-column></mj-section>""",
    head="<mj-title>{{ name }}</mj-title>",
)


def context_of(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "Ann",
        "vip": False,
        "city": "Oslo",
        "url": "https://shop.example.com/a?b=1&c=2",
        "image": "https://shop.example.com/i.png",
        "items": [{"name": "Scarf", "price": 12.5}, {"name": "Hat", "price": 20}],
        "item_tag": "<i>",
    }
    return {**base, **values}


def test_a_layout_renders_in_one_pass_as_in_two(content: Content) -> None:
    compiled = content.compile(content.template("t.mjml", TEMPLATE))
    fused, two_pass = render_both(compiled, context_of())
    assert fused_layouts(compiled) == [True]
    assert fused == two_pass
    assert "Scarf: $12.50" in fused[1] and "Total $32.50" in fused[1]


@pytest.mark.parametrize(
    "values",
    [
        {"name": HOSTILE_NAME, "vip": True},
        {"name": HOSTILE_NAME, "city": "{{ 7 * 7 }}{% raw %}", "item_tag": HOSTILE_NAME},
        {"url": HOSTILE_URL, "image": "data:text/html,<script>x</script>"},
        {
            "items": [
                {"name": HOSTILE_NAME, "price": 1},
                {"__class__": "x", "name": "y", "price": 2},
            ]
        },
        {"name": "  ", "vip": True, "items": []},
    ],
)
def test_hostile_values_are_escaped_in_one_pass_exactly_as_in_two(
    content: Content, values: dict[str, Any]
) -> None:
    compiled = content.compile(content.template("t.mjml", TEMPLATE))
    fused, two_pass = render_both(compiled, context_of(**values))
    assert fused == two_pass
    html = fused[0]
    assert "<script>" not in html and "<b>bold" not in html and "javascript:" not in html


def test_an_unsafe_url_warns_once_in_one_pass(content: Content) -> None:
    compiled = content.compile(content.template("t.mjml", TEMPLATE))
    fused, two_pass = render_both(compiled, context_of(url=HOSTILE_URL))
    assert fused[2] == two_pass[2] == ["unsafe URL in a href attribute replaced"] * 3


@pytest.mark.parametrize(
    "expression",
    ["name.__class__.__mro__", "name.format.__globals__", "items.__class__", "url.__len__()"],
)
def test_the_sandbox_still_refuses_unsafe_code_in_one_pass(
    content: Content, expression: str
) -> None:
    body = f"<mj-section><mj-column><mj-text>{{{{ {expression} }}}} {{{{ name }}}}</mj-text>"
    body += "</mj-column></mj-section>"
    compiled = content.compile(content.template("t.mjml", wrap(body)))
    fused, two_pass = render_both(compiled, context_of())
    assert fused == two_pass
    assert fused[0] is TemplateError and "sandbox" in fused[1]


def test_a_missing_field_is_reported_at_its_line_as_in_two_passes(content: Content) -> None:
    compiled = content.compile(content.template("t.mjml", TEMPLATE))
    context = context_of()
    del context["city"]
    fused, two_pass = render_both(compiled, context)
    assert fused == two_pass
    assert fused[0] is RecipientError and "'city' is undefined" in fused[1]
    assert fused[2] == 2  # the line of {{ city }} in t.mjml


@pytest.mark.parametrize(
    "tags",
    [
        "{% macro m(x) %}<b>{{ x }}</b>{% endmacro %}{{ m(name) }}",
        "{% set block %}[{{ name }}]{% endset %}{{ block }}",
        "{%- if vip %} v {% endif -%}",
        "{% filter upper %}{{ name }}{% endfilter %}",
        "{% autoescape false %}{{ name }}{% endautoescape %}",
    ],
)
def test_a_template_that_cannot_be_fused_renders_in_two_passes(content: Content, tags: str) -> None:
    body = f"<mj-section><mj-column><mj-text>x {tags} y</mj-text></mj-column></mj-section>"
    compiled = content.compile(content.template("t.mjml", wrap(body)))
    fused, two_pass = render_both(compiled, context_of(name=HOSTILE_NAME, vip=True))
    assert fused_layouts(compiled) == [False]
    assert fused == two_pass


def test_every_demo_recipient_renders_in_one_pass_as_in_two() -> None:
    runtime, _, rows = load_demo()
    template = runtime.template
    for record, segments in rows[:400]:
        variants: dict[str, str | None] = {"offer_test": "free_shipping"}
        rendered = []
        for fused in (True, False):
            template.fused_enabled = fused
            try:
                rendered.append(runtime.render_one(0, record, segments, variants))
            except RecipientError as exc:
                rendered.append((str(exc), exc.line))
        template.fused_enabled = True
        assert rendered[0] == rendered[1]
    assert fused_layouts(template) and all(fused_layouts(template))


def test_date_methods_run_the_same_in_loops_and_with_keywords(content: Content) -> None:
    body = (
        "<mj-section><mj-column><mj-text>{% for d in dates %}"
        "<p>{{ d.strftime('%B %Y') }} {{ d.replace(year=2000).isoformat() }}</p>{% endfor %}"
        "{{ when.strftime('%d %b') }}</mj-text></mj-column></mj-section>"
    )
    compiled = content.compile(content.template("t.mjml", wrap(body)))
    dates = [datetime(2026, 11, 20, tzinfo=UTC), date(2025, 1, 2)]
    fused, two_pass = render_both(compiled, context_of(dates=dates, when=dates[0]))
    assert fused_layouts(compiled) == [True]
    assert fused == two_pass
    assert "November 2026 2000-11-20T00:00:00+00:00" in fused[1]
    assert "January 2025 2000-01-02" in fused[1] and "20 Nov" in fused[1]


@pytest.mark.parametrize(
    "items",
    [["a<b>", "b", "c"], ("x", "y"), {"k1": 1, "k2": 2}, "ab", range(3), [], None],
)
def test_columns_unrolled_per_shape_render_the_same_in_one_pass(
    content: Content, items: Any
) -> None:
    body = (
        "<mj-section>{% for p in items %}<mj-column><mj-text>{{ p }} {{ loop.index }}</mj-text>"
        "</mj-column>{% endfor %}</mj-section>"
        "<mj-section>{% for p in items %}<mj-column><mj-text>[{{ p }}]</mj-text></mj-column>"
        "{% endfor %}</mj-section>"
    )
    compiled = content.compile(content.template("t.mjml", wrap(body)))
    fused, two_pass = render_both(compiled, context_of(items=items))
    assert fused == two_pass
    if items:
        assert all(fused_layouts(compiled))
        assert f"[{escape(str(list(items)[-1]))}]" in fused[0]
