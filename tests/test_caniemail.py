"""The caniemail lint: what the designer writes, against the vendored caniemail data,
through real MJML compilation, located at the line of the template or block."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import tomllib
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from renderer.campaign import shipped_dir
from renderer.check.caniemail import (
    DEFAULT_CLIENTS,
    Client,
    caniemail_data,
    caniemail_license,
    feature_index,
    lint_template,
    resolve_clients,
)
from renderer.check.findings import Finding, Severity
from renderer.check.usage import markup_uses
from renderer.content import ContentFolders, assemble
from segments.errors import ConfigError, TemplateError
from tests.conftest import Content, examples

ROOT = Path(__file__).resolve().parent.parent
OUTLOOK = resolve_clients(["outlook.windows"])
APPLE = resolve_clients(["apple-mail.macos"])

FLEX_TEMPLATE = """<mjml>
  <mj-head>
    <mj-style>
      .row { padding: 4px; }
      .cards {
        display: flex;
      }
    </mj-style>
  </mj-head>
  <mj-body>
    <mj-section css-class="cards">
      <mj-column><mj-text>Hi</mj-text></mj-column>
    </mj-section>
  </mj-body>
</mjml>
"""

ROUNDED_TEMPLATE = """<mjml>
  <mj-body>
    <mj-section
      background-color="#ffffff"
      border-radius="8px"
    >
      <mj-column><mj-text>Hi</mj-text></mj-column>
    </mj-section>
    <mj-block name="promo" />
  </mj-body>
</mjml>
"""

PROMO_BLOCK = """<mj-section>
  <mj-column>
    <mj-text>
      <p>Our <span style="color: #b5562b;
        white-space: nowrap">best</span> offer</p>
    </mj-text>
  </mj-column>
</mj-section>
"""


def lint(content: Content, name: str, clients: tuple[Client, ...]) -> list[Finding]:
    return lint_template(assemble(content.folders, name), clients)


def by_rule(findings: list[Finding], rule: str) -> list[Finding]:
    return [f for f in findings if f.rule == rule]


def test_an_mj_style_property_unsupported_by_the_set_is_a_warning_at_its_line(
    content: Content,
) -> None:
    name = content.template("flex.mjml", FLEX_TEMPLATE)
    unsupported = by_rule(lint(content, name, OUTLOOK), "css-unsupported")
    flex = [f for f in unsupported if "display:flex" in f.message]
    assert len(flex) == 1
    assert flex[0].file == str(content.templates / "flex.mjml")
    assert flex[0].line == 6  # the declaration, not the rule or the <mj-style>
    assert flex[0].severity is Severity.WARNING
    assert "Outlook Windows" in flex[0].message
    assert "caniemail.com/features/css-display-flex" in flex[0].hint


def test_silent_when_the_client_set_supports_it(content: Content) -> None:
    name = content.template("flex.mjml", FLEX_TEMPLATE)
    findings = lint(content, name, APPLE)
    assert not [f for f in findings if "flex" in f.message]
    assert not by_rule(findings, "css-unsupported")


def test_an_mjml_attribute_is_reported_as_the_css_it_produces_at_its_line(
    content: Content,
) -> None:
    content.block("promo", PROMO_BLOCK)
    name = content.template("rounded.mjml", ROUNDED_TEMPLATE)
    findings = by_rule(lint(content, name, OUTLOOK), "css-unsupported")
    radius = [f for f in findings if "border-radius" in f.message]
    assert [(f.file, f.line) for f in radius] == [(str(content.templates / name), 5)]
    assert lint(content, name, resolve_clients(["gmail.desktop-webmail"])) == []


def test_an_inline_style_in_a_block_is_located_in_the_block_file(content: Content) -> None:
    content.block("promo", PROMO_BLOCK)
    name = content.template("rounded.mjml", ROUNDED_TEMPLATE)
    samsung = resolve_clients(["samsung-email.android", "outlook.windows"])
    nowrap = [f for f in lint(content, name, samsung) if f.message.startswith("white-space")]
    assert [(f.file, f.line, f.rule) for f in nowrap] == [
        (str(content.blocks / "promo.mjml"), 5, "css-unsupported")
    ]
    assert "Outlook Windows" in nowrap[0].message and "Samsung Email" in nowrap[0].message


def test_what_mjml_generates_of_its_own_accord_gives_no_finding(content: Content) -> None:
    # MJML writes border-radius, @media, display, widths, role and cellpadding attributes
    # and Outlook conditional comments for these: none is the designer's to change.
    body = (
        "<mj-section><mj-column><mj-image src='https://x.test/a.png' alt='' />"
        "<mj-button href='https://x.test'>Go</mj-button><mj-divider />"
        "<mj-text>Hello</mj-text></mj-column><mj-column><mj-text>Two</mj-text>"
        "</mj-column></mj-section>"
    )
    name = content.template("plain.mjml", f"<mjml><mj-body>{body}</mj-body></mjml>")
    everyone = resolve_clients(["gmail", "outlook", "yahoo", "samsung-email", "apple-mail"])
    assert lint(content, name, everyone) == []


def test_values_caniemail_tells_apart_are_reported_apart(content: Content) -> None:
    template = FLEX_TEMPLATE.replace("display: flex", "display: block")
    name = content.template("block.mjml", template)
    findings = lint(content, name, OUTLOOK)
    assert not [f for f in findings if "flex" in f.message]
    assert [f.line for f in findings if f.message.startswith("display ")] == [6]


def test_partial_support_is_an_info_with_caniemails_notes(content: Content) -> None:
    name = content.template("flex.mjml", FLEX_TEMPLATE)
    partial = by_rule(lint(content, name, resolve_clients(["gmail.android"])), "css-partial")
    flex = [f for f in partial if "display:flex" in f.message]
    assert len(flex) == 1 and flex[0].severity is Severity.INFO
    note = caniemail_data()["features"]["css-display-flex"]["notes"]["1"]
    assert note in flex[0].message and "Gmail Android" in flex[0].message


def demo_findings(clients: tuple[Client, ...] | None = None) -> list[Finding]:
    folders = ContentFolders([shipped_dir("templates")], [shipped_dir("blocks")])
    return lint_template(assemble(folders, "retail_weekly.mjml"), clients)


def test_the_demo_has_no_errors_and_only_the_documented_warnings() -> None:
    findings = demo_findings()
    assert not [f for f in findings if f.severity is Severity.ERROR]
    warned = {
        (Path(f.file).name, f.message.split(" ")[0]) for f in by_rule(findings, "css-unsupported")
    }
    # docs/ci.md, "caniemail lint", says why each of these is there on purpose
    assert warned == {
        ("retail_weekly.mjml", "@media"),
        ("retail_weekly.mjml", "border-radius"),
        ("retail_weekly.mjml", "height"),
        ("cart_reminder.mjml", "border-radius"),
        ("cart_reminder.mjml", "white-space"),
        ("generic_offer.mjml", "border-radius"),
        ("store_event.mjml", "border-radius"),
    }


def test_default_clients_cover_the_main_families() -> None:
    clients = resolve_clients(None)
    assert [c.name for c in clients] == list(DEFAULT_CLIENTS)
    assert {c.family for c in clients} == {
        "gmail",
        "apple-mail",
        "outlook",
        "yahoo",
        "samsung-email",
    }
    assert {c.label for c in clients} >= {"Outlook Windows", "Outlook.com", "Gmail iOS"}


def test_client_names_accept_families_and_wildcards() -> None:
    outlook = resolve_clients(["outlook"])
    assert Client("outlook", "windows") in outlook and Client("outlook", "ios") in outlook
    assert resolve_clients(["outlook.*"]) == outlook
    ios = resolve_clients(["*.ios"])
    assert {c.platform for c in ios} == {"ios"} and len(ios) > 3
    assert resolve_clients(["Gmail.iOS", "gmail.ios"]) == (Client("gmail", "ios"),)
    assert resolve_clients("gmail.ios") == (Client("gmail", "ios"),)


def test_an_unknown_client_is_a_config_error_listing_the_valid_names() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_clients(["gmail.ios", "gmial"], file="campaign.yaml", line=12)
    error = caught.value
    assert (error.file, error.line) == ("campaign.yaml", 12)
    assert "'gmial'" in error.message and "did you mean 'gmail'" in error.message
    assert error.hint is not None
    assert "outlook.windows" in error.hint and "samsung-email.android" in error.hint
    for names in (["*"], ["outlook.linux"], ["nomail.ios"], []):
        with pytest.raises(ConfigError):
            resolve_clients(names)


def test_the_vendored_data_loads_with_its_provenance() -> None:
    data = caniemail_data()
    assert data["source"] == "https://github.com/hteumeuleu/caniemail"
    assert len(data["source_commit"]) == 40
    features = data["features"]
    assert len(features) > 250
    radius = features["css-border-radius"]
    assert radius["title"] == "border-radius"
    assert radius["stats"]["outlook"]["windows"].startswith("n")
    # the latest test of a client is the last caniemail lists, not the greatest name:
    # Outlook for Mac "16.80" (2023) came after "2016"
    assert features["css-at-media"]["stats"]["outlook"]["macos"].startswith("a")


def test_the_mit_attribution_ships_beside_the_data() -> None:
    licence = caniemail_license()
    assert licence.startswith("MIT License") and "Rémi Parmentier" in licence
    assert "caniemail.LICENSE" in caniemail_data()["license"]
    notice = (ROOT / "NOTICE").read_text(encoding="utf-8")
    assert "caniemail" in notice and "MIT" in notice


def test_the_wheel_config_takes_the_data_along() -> None:
    # hatch puts every file of a listed package in the wheel but what git ignores
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    wheel = config["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert "renderer" in wheel["packages"] and "exclude" not in wheel
    data = ["renderer/check/data/caniemail.json", "renderer/check/data/caniemail.LICENSE"]
    ignored = subprocess.run(["git", "check-ignore", *data], cwd=ROOT, capture_output=True)
    assert ignored.stdout == b""


def test_the_wheel_carries_the_data_and_its_licence(tmp_path: Path) -> None:
    hatchling = pytest.importorskip("hatchling.builders.wheel")
    (wheel,) = hatchling.WheelBuilder(str(ROOT)).build(
        directory=str(tmp_path), versions=["standard"]
    )
    names = zipfile.ZipFile(wheel).namelist()
    assert "renderer/check/data/caniemail.json" in names
    assert "renderer/check/data/caniemail.LICENSE" in names


def refresh_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "refresh_caniemail", ROOT / "scripts" / "refresh_caniemail.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FEATURE_MD = """---
title: "border-radius"
category: css
keywords: rounded corners
stats: {
\toutlook: {
\t\tmacos: {
\t\t\t"2016": "y",
\t\t\t"16.80": "a #2",
\t\t},
\t\twindows: {
\t\t\t"2019": "n #1"
\t\t}
\t}
}
notes_by_num: {
\t"1": "Use VML.",
\t"2": "No elliptical corners.",
\t"3": "Not cited."
}
---
"""


def test_the_refresh_script_reads_a_checkout(tmp_path: Path) -> None:
    checkout = tmp_path / "caniemail"
    (checkout / "_features").mkdir(parents=True)
    (checkout / "_data").mkdir()
    (checkout / "_features" / "css-border-radius.md").write_text(FEATURE_MD, encoding="utf-8")
    (checkout / "_features" / "_template.md").write_text(FEATURE_MD, encoding="utf-8")
    nicenames = "family:\n  outlook: Outlook\nplatform:\n  macos: macOS\n  windows: Windows\n"
    (checkout / "_data" / "nicenames.yml").write_text(nicenames, encoding="utf-8")
    (checkout / "LICENSE").write_text("MIT License\n", encoding="utf-8")
    out = tmp_path / "out"
    refresh_script().main([str(checkout), "--commit", "abc", "--out", str(out)])
    data = json.loads((out / "caniemail.json").read_text(encoding="utf-8"))
    assert list(data["features"]) == ["css-border-radius"]
    feature = data["features"]["css-border-radius"]
    assert feature["stats"] == {"outlook": {"macos": "a #2", "windows": "n #1"}}
    assert feature["notes"] == {"1": "Use VML.", "2": "No elliptical corners."}
    assert data["source_commit"] == "abc" and data["platforms"]["macos"] == "macOS"
    assert (out / "caniemail.LICENSE").read_text(encoding="utf-8") == "MIT License\n"


BROKEN = [
    "<mj-style>.a { color: red; </mj-style>",
    "<mj-style>}}} .a {{ b: c }</mj-style>",
    "<mj-style>.a { content: '}' ; background: url(data:image/png;base64,AA==) }</mj-style>",
    "<mj-style>@media { .a { .b { color: red } } } @import url(x.css)</mj-style>",
    '<mj-style>.a { color: "unclosed }</mj-style>',
    "<mj-style>@keyframes spin { from { opacity: 0 } to { opacity: 1 } }</mj-style>",
    '<p style="color:;;: ;display:">x</p><td width height=3 "bad">',
    "<mj-section border-radius=4px padding>x</mj-section><!-- <mj-style> -->",
    "<input type=checkbox><button><video src=a.webm></video>",
]


@pytest.mark.parametrize("text", BROKEN)
def test_broken_markup_and_css_never_raise(text: str) -> None:
    uses = list(markup_uses(text, feature_index()))
    assert all(0 <= use.offset < len(text) for use in uses)


@settings(max_examples=examples(300))
@given(st.text(alphabet="<>{}:;='\"/@!#.*-() \nabmjstylepx%", max_size=80))
def test_any_text_scans_with_offsets_inside_it(text: str) -> None:
    uses = list(
        markup_uses(f"<mj-style>{text}</mj-style><p style='{text}'>{text}", feature_index())
    )
    assert all(use.offset >= 0 for use in uses)


def test_each_kind_of_feature_is_recognized() -> None:
    css = (
        "@media (prefers-color-scheme: dark) { .a > b + i ~ u, #x[href]:hover::before "
        "{ display: grid; width: calc(100% - 2rem) !important; --gap: 4px; } } "
        "@font-face { font-family: X; src: url(x.woff2) }"
    )
    html = (
        f"<mj-style>{css}</mj-style><mj-image src='a.webp' /><ul><li>x</li></ul>"
        "<a href='mailto:x@y.test'>m</a><img srcset='a.png 2x' loading='lazy'>"
        "<input type='radio'><mj-section background-url='b.gif' direction='rtl' />"
    )
    slugs = {use.slug for use in markup_uses(html, feature_index())}
    assert slugs >= {
        "css-at-media",
        "css-at-media-prefers-color-scheme",
        "css-selector-child",
        "css-selector-adjacent-sibling",
        "css-selector-general-sibling",
        "css-selector-grouping",
        "css-selector-id",
        "css-selector-attribute",
        "css-selector-chaining",
        "css-pseudo-class-hover",
        "css-pseudo-element-before",
        "css-display-grid",
        "css-unit-calc",
        "css-unit-rem",
        "css-important",
        "css-variables",
        "css-at-font-face",
        "image-webp",
        "image-gif",
        "html-lists",
        "html-mailto-links",
        "html-srcset",
        "html-loading-attribute",
        "html-input-radio",
        "css-background-image",
        "css-direction",
    }
    assert "css-display" not in slugs and "css-display-flex" not in slugs


def test_mj_font_is_reported_as_the_import_it_produces(content: Content) -> None:
    template = (
        "<mjml>\n<mj-head>\n"
        '<mj-font name="Raleway" href="https://fonts.example.test/raleway.css" />\n'
        '</mj-head>\n<mj-body><mj-section><mj-column><mj-text font-family="Raleway, Arial">'
        "Hi</mj-text></mj-column></mj-section></mj-body>\n</mjml>\n"
    )
    name = content.template("font.mjml", template)
    gmail = resolve_clients(["gmail.desktop-webmail"])
    imports = [f for f in lint(content, name, gmail) if "@import" in f.message]
    assert [(f.line, f.rule) for f in imports] == [(3, "css-unsupported")]
    assert "Gmail Desktop Webmail" in imports[0].message


def test_signs_inside_attribute_selectors_and_spaced_styles_are_read_right() -> None:
    html = "<mj-style>a[rel~=x] { color: red }</mj-style>\n<p style = 'display:flex'>x</p>"
    uses = {use.slug: use.offset for use in markup_uses(html, feature_index())}
    assert "css-selector-attribute" in uses and "css-selector-general-sibling" not in uses
    assert html[uses["css-display-flex"] :].startswith("display:flex")


def test_a_template_the_build_refuses_is_refused_as_the_build_does(content: Content) -> None:
    template = (
        "<mjml><mj-head><mj-style>\n"
        "{% if dark %}.a { color: red }{% endif %}\n"
        "</mj-style></mj-head><mj-body></mj-body></mjml>"
    )
    name = content.template("jinja.mjml", template)
    with pytest.raises(TemplateError) as caught:
        lint(content, name, OUTLOOK)
    assert (caught.value.file, caught.value.line) == (str(content.templates / name), 2)
