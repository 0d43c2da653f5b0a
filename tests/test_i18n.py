"""Localized content (renderer/i18n/): Babel-backed filters in the recipient's locale,
``<html lang dir>``, gettext catalogs with a fallback chain, ``{% trans %}`` escaped."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from babel.dates import format_date, format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal, format_percent

from renderer import load_campaign
from renderer.compile import CompiledTemplate, compile_template
from renderer.content import assemble
from renderer.env import format_date as english_date
from renderer.env import make_environment, money
from renderer.i18n import Localizer, fallback_chain
from renderer.runtime import CampaignRuntime
from renderer.specs import schema_of
from segments.errors import ConfigError, RecipientError
from tests.conftest import Content, normalize_html, wrap

AS_OF = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
LOCALES = ["en_US", "fr_FR", "de_DE", "ar"]
FR_PO = """
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\\n"
"Plural-Forms: nplurals=2; plural=(n > 1);\\n"

msgid "Hello %(name)s"
msgstr "Bonjour %(name)s"

msgid "Your cart"
msgstr "Votre panier"

msgid "%(num)s item"
msgid_plural "%(num)s items"
msgstr[0] "%(num)s article"
msgstr[1] "%(num)s articles"

msgid "Sale"
msgstr "<script>alert(1)</script>Soldes"
"""
FR_CA_PO = """
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\\n"

msgid "Your cart"
msgstr "Votre chariot"
"""


def write_catalog(root: Path, locale: str, po: str) -> None:
    """``po`` compiled with Babel into ``root/<locale>/LC_MESSAGES/messages.mo``."""
    folder = root / locale / "LC_MESSAGES"
    folder.mkdir(parents=True)
    catalog = read_po(io.StringIO(po), locale=locale)
    with (folder / "messages.mo").open("wb") as handle:
        write_mo(handle, catalog)


@pytest.fixture
def catalogs(tmp_path: Path) -> Path:
    root = tmp_path / "locales"
    write_catalog(root, "fr", FR_PO)
    write_catalog(root, "fr_CA", FR_CA_PO)
    return root


def compiled(content: Content, body: str, localizer: Localizer | None) -> CompiledTemplate:
    content.template("t.mjml", wrap(f"<mj-section><mj-column>{body}</mj-column></mj-section>"))
    return compile_template(
        assemble(content.folders, "t.mjml"),
        make_environment(localizer=localizer),
        make_environment(text=True, localizer=localizer),
        None,
        localizer is not None,
    )


def render(
    template: CompiledTemplate, localizer: Localizer, locale: Any, **values: Any
) -> tuple[str, str]:
    context = {"as_of": AS_OF, **values}
    context.update(localizer.context_values({"locale": locale}, []))
    return template.render(context)


def body_of(html: str) -> str:
    start = html.index("<!--START-->") + len("<!--START-->")
    return html[start : html.index("<!--END-->")]


def text(tokens: str) -> str:
    return f"<mj-text><!--START-->{tokens}<!--END--></mj-text>"


@pytest.mark.parametrize("locale", LOCALES)
def test_filters_write_numbers_money_percent_and_dates_as_babel_does(
    content: Content, locale: str
) -> None:
    localizer = Localizer()
    template = compiled(
        content,
        text(
            "{{ n | number }}|{{ total | money('EUR') }}|{{ share | percent }}|"
            "{{ day | date }}|{{ day | date('long') }}|{{ due | timedelta }}"
        ),
        localizer,
    )
    values = {"n": 1234567.891, "total": 1234.5, "share": 0.256, "day": date(2026, 1, 5)}
    html, _ = render(template, localizer, locale, due=date(2026, 12, 6), **values)
    expected = [
        format_decimal(Decimal("1234567.891"), locale=locale),
        format_currency(Decimal("1234.5"), "EUR", locale=locale),
        format_percent(0.256, locale=locale),
        format_date(date(2026, 1, 5), "medium", locale=locale),
        format_date(date(2026, 1, 5), "long", locale=locale),
        format_timedelta(timedelta(days=3), add_direction=True, locale=locale),
    ]
    assert body_of(html).split("|") == expected
    if locale == "en_US":
        assert expected[1:3] == ["\u20ac1,234.50", "26%"] and expected[5] == "in 3 days"
    if locale == "fr_FR":
        assert expected[1] == "1\u202f234,50\u00a0\u20ac" and expected[5] == "dans 3 jours"
    if locale == "de_DE":
        assert expected[1] == "1.234,50\u00a0\u20ac"


def test_timedelta_counts_from_as_of_never_the_clock(content: Content) -> None:
    localizer = Localizer()
    template = compiled(content, text("{{ d | timedelta }}|{{ s | timedelta('hour') }}"), localizer)
    later = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
    html, _ = render(template, localizer, "de", d=later, s=7200)
    assert body_of(html) == "in 3 Stunden|2 Stunden"


def test_html_gets_lang_and_dir_of_the_recipients_locale(content: Content) -> None:
    localizer = Localizer()
    template = compiled(content, text("hi"), localizer)
    shape = template.shape("")
    assert 'lang="{{ lang }}"' in shape.html_source.replace("{#\n#}", "")
    for locale, tag, direction in [
        ("ar", "ar", "rtl"),
        ("he-IL", "he-IL", "rtl"),
        ("fa", "fa", "rtl"),
        ("ur", "ur", "rtl"),
        ("fr-FR", "fr-FR", "ltr"),
        (None, "en-US", "ltr"),
    ]:
        html, _ = render(template, localizer, locale)
        assert html.count(f'<html lang="{tag}" dir="{direction}" xmlns=') == 1, locale


def test_without_i18n_the_english_filters_and_mjml_html_tag_stay(content: Content) -> None:
    env = make_environment()
    assert env.filters["money"] is money and env.filters["date"] is english_date
    assert "trans" not in env.extensions and "gettext" not in env.globals
    template = compiled(content, text("{{ 1234.5 | money }}"), None)
    html, _ = template.render({})
    assert '<html lang="und" dir="auto"' in html and body_of(html) == "$1,234.50"


def test_fallback_chain_goes_region_language_default() -> None:
    assert fallback_chain("fr_CA", "en_US") == ["fr_CA", "fr", "en_US", "en"]
    assert fallback_chain("de", "de_DE") == ["de", "de_DE"]


def test_catalogs_chain_message_by_message(content: Content, catalogs: Path) -> None:
    localizer = Localizer(catalogs=catalogs)
    template = compiled(
        content,
        text("{% trans %}Your cart{% endtrans %}|{% trans name=n %}Hello {{ name }}{% endtrans %}"),
        localizer,
    )
    found = {
        locale: body_of(render(template, localizer, locale, n="Ann")[0])
        for locale in ["fr-CA", "fr-FR", "fr", "de", "en"]
    }
    assert found["fr-CA"] == "Votre chariot|Bonjour Ann"  # fr_CA, then fr
    assert found["fr-FR"] == found["fr"] == "Votre panier|Bonjour Ann"
    assert found["de"] == found["en"] == "Your cart|Hello Ann"  # untranslated


def test_trans_plurals_follow_the_locales_plural_rule(content: Content, catalogs: Path) -> None:
    localizer = Localizer(catalogs=catalogs)
    template = compiled(
        content,
        text("{% trans num=k %}{{ num }} item{% pluralize %}{{ num }} items{% endtrans %}"),
        localizer,
    )
    got = [
        body_of(render(template, localizer, lc, k=k)[0]) for lc in ("fr", "en") for k in (0, 1, 2)
    ]
    assert got == ["0 article", "1 article", "2 articles", "0 items", "1 item", "2 items"]


def test_translations_are_escaped_like_any_value(content: Content, catalogs: Path) -> None:
    hostile = "<img src=x onerror=alert(1)>"
    localizer = Localizer(catalogs=catalogs)
    body = "{% trans %}Sale{% endtrans %}|{% trans name=n %}Hello {{ name }}{% endtrans %}"
    template = compiled(content, text(body), localizer)
    html, plain = render(template, localizer, "fr", n=hostile)
    assert body_of(html) == (
        "&lt;script&gt;alert(1)&lt;/script&gt;Soldes|Bonjour &lt;img src=x onerror=alert(1)&gt;"
    )
    assert "<script>alert(1)</script>Soldes" in plain  # the text part is not HTML
    trusted = Localizer(catalogs=catalogs, trusted=True)
    template = compiled(content, text(body), trusted)
    html, _ = render(template, trusted, "fr", n=hostile)
    assert body_of(html).startswith("<script>alert(1)</script>Soldes|Bonjour &lt;img")


def test_a_bad_default_locale_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        Localizer("xx-!!")
    assert caught.value.field == "i18n.default"


def test_an_invalid_locale_rejects_the_row_or_falls_back(tmp_path: Path) -> None:
    (tmp_path / "t.mjml").write_text(wrap(text("{{ 2.5 | money('EUR') }}")), encoding="utf-8")
    (tmp_path / "p.csv").write_text(
        "id,email,lang_code\n1,a@example.com,de\n2,b@example.com,no-such!\n3,c@example.com,\n",
        encoding="utf-8",
    )
    base = (
        "name: t\ntemplate: t.mjml\nsubject: Hi\nprofiles: p.csv\npaths: {templates: ['.']}\n"
        "schema: {id: string, email: string, lang_code: string}\n"
    )
    results = {}
    for invalid in ("reject", "default"):
        (tmp_path / "campaign.yaml").write_text(
            base + f"i18n: {{field: lang_code, invalid: {invalid}}}\n", encoding="utf-8"
        )
        campaign = load_campaign(tmp_path / "campaign.yaml")
        runtime = CampaignRuntime(campaign, schema_of(campaign), AS_OF)  # type: ignore[arg-type]
        records = [{"id": "1", "email": "a@example.com", "lang_code": "de"}]
        records += [{"id": "2", "email": "b@example.com", "lang_code": "no-such!"}]
        records += [{"id": "3", "email": "c@example.com", "lang_code": None}]
        rendered = []
        for row, record in enumerate(records, 1):
            try:
                rendered.append(runtime.render_one(row, record, (), {}))
            except RecipientError as exc:
                rendered.append(exc)
        results[invalid] = rendered
    de, bad, missing = results["reject"]
    assert body_of(de.html) == "2,50\u00a0\u20ac" and '<html lang="de" dir="ltr"' in de.html
    assert isinstance(bad, RecipientError)
    assert (bad.reason, bad.field) == ("invalid_value", "lang_code")
    assert "no-such" not in str(bad)  # messages name fields, never values
    assert body_of(missing.html) == "\u20ac2.50"  # no value: the default, en_US
    fallback = results["default"][1]
    assert body_of(fallback.html) == "\u20ac2.50"
    assert fallback.warnings == ("field 'lang_code' is not a valid locale: the default was used",)


def small_campaign(folder: Path, subject: str = "{% trans %}Your picks{% endtrans %}") -> Path:
    """A campaign whose template and subject hold messages, with ``i18n:``."""
    body = text(
        "{% trans name=first_name %}Hello {{ name }}{% endtrans %}|"
        "{% trans num=n %}{{ num }} item{% pluralize %}{{ num }} items{% endtrans %}"
    )
    (folder / "t.mjml").write_text(wrap(body), encoding="utf-8")
    (folder / "p.csv").write_text(
        "id,email,first_name,n,locale\n1,a@example.com,Ann,2,fr-CA\n2,b@example.com,Bo,1,de\n",
        encoding="utf-8",
    )
    (folder / "campaign.yaml").write_text(
        f'name: t\ntemplate: t.mjml\nsubject: "{subject}"\nprofiles: p.csv\n'
        "schema: {id: string, email: string, first_name: string, n: int, locale: string}\n"
        "paths: {templates: ['.']}\ni18n: {default: en_US}\n",
        encoding="utf-8",
    )
    return folder / "campaign.yaml"


def test_extract_init_update_compile_round_trip(tmp_path: Path) -> None:
    from babel.messages.pofile import write_po

    from renderer import compile_catalogs, extract_messages, init_catalog, update_catalogs

    campaign = load_campaign(small_campaign(tmp_path))
    pot = extract_messages(campaign)
    assert pot.path == tmp_path / "locales" / "messages.pot" and pot.messages == 3
    with pot.path.open("rb") as handle:
        template = read_po(handle)
    assert {m.id for m in template if m.id} == {
        "Hello %(name)s",
        ("%(num)s item", "%(num)s items"),
        "Your picks",
    }
    locations = {loc for m in template if m.id for loc in m.locations}
    assert ("campaign.yaml", 3) in locations and any(f == "t.mjml" for f, _ in locations)
    po = init_catalog(campaign, "fr")
    assert po.path == tmp_path / "locales" / "fr" / "LC_MESSAGES" / "messages.po"
    with pytest.raises(ConfigError):
        init_catalog(campaign, "fr")  # kept: update merges into it
    with po.path.open("rb") as handle:
        catalog = read_po(handle)
    for message in catalog:
        if message.id == "Your picks":
            message.string = "Vos choix"
        elif message.id == "Hello %(name)s":
            message.string = "Bonjour <b>%(name)s</b>"
    with po.path.open("wb") as handle:
        write_po(handle, catalog)
    small_campaign(tmp_path, "{% trans %}Your picks{% endtrans %} {% trans %}New{% endtrans %}")
    campaign = load_campaign(tmp_path / "campaign.yaml")
    extract_messages(campaign)
    [updated] = update_catalogs(campaign)
    assert (updated.messages, updated.translated) == (4, 2)
    [mo] = compile_catalogs(campaign)
    assert mo.path.suffix == ".mo" and mo.path.is_file()
    runtime = CampaignRuntime(campaign, schema_of(campaign), AS_OF)  # type: ignore[arg-type]
    record = {"id": "1", "email": "a@example.com", "first_name": "Ann", "n": 2, "locale": "fr-CA"}
    fr = runtime.render_one(1, record, (), {})
    assert fr.subject == "Vos choix New"  # fr_CA -> fr; "New" untranslated
    assert body_of(fr.html).startswith("Bonjour &lt;b&gt;Ann&lt;/b&gt;|2 items")
    assert '<html lang="fr-CA" dir="ltr"' in fr.html


def test_i18n_commands_print_what_they_wrote(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    import cli

    file = str(small_campaign(tmp_path))
    runner = CliRunner()
    for args in (["extract", file], ["init", "de", file], ["update", file], ["compile", file]):
        result = runner.invoke(cli.app, ["i18n", *args])
        assert result.exit_code == 0, result.output
    assert "messages.mo (de: 3 messages, 0 translated)" in result.output
    failed = runner.invoke(cli.app, ["i18n", "init", "xx-!!", file])
    assert failed.exit_code != 0 and "is not a known locale" in failed.output


def test_compile_refuses_a_translation_with_other_placeholders(tmp_path: Path) -> None:
    from renderer import compile_catalogs

    campaign = load_campaign(small_campaign(tmp_path))
    po = FR_PO.replace('msgstr "Bonjour %(name)s"', 'msgstr "Bonjour %(nom)s"')
    folder = tmp_path / "locales" / "fr" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    (folder / "messages.po").write_text(po, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        compile_catalogs(campaign)
    assert caught.value.file == str(folder / "messages.po") and caught.value.line == 7
    assert "'nom'" in str(caught.value) and not (folder / "messages.mo").exists()


def test_the_one_pass_render_equals_the_two_pass_one(content: Content, catalogs: Path) -> None:
    localizer = Localizer(catalogs=catalogs)
    body = "{{ _('Your cart') }}|{{ total | money('EUR') }}|{{ ngettext('%(num)s item', '%(num)s items', k) }}"
    template = compiled(content, text(body), localizer)
    assert template.shape("").fused is not None  # ({% trans %} blocks render in two passes)
    for locale in ("fr-CA", "de", "ar"):
        template.fused_enabled = True
        one_pass = render(template, localizer, locale, total=12.5, k=2)
        template.fused_enabled = False
        assert render(template, localizer, locale, total=12.5, k=2) == one_pass


def test_check_knows_trans_and_the_locale_names(tmp_path: Path) -> None:
    from renderer import check_campaign

    path = small_campaign(tmp_path)
    template = tmp_path / "t.mjml"
    template.write_text(
        template.read_text(encoding="utf-8").replace(
            "<!--START-->", "<!--START-->{{ lang }}{{ text_dir }}{{ locale_id }}"
        ),
        encoding="utf-8",
    )
    report = check_campaign(load_campaign(path), as_of=AS_OF)
    rules = {finding.rule for finding in report.findings}
    assert "unknown-name" not in rules and "syntax-error" not in rules, rules


def test_the_compiled_email_equals_the_naive_pipelines(content: Content, catalogs: Path) -> None:
    from renderer.naive import NaivePipeline

    localizer = Localizer(catalogs=catalogs)
    body = text("{{ _('Your cart') }} {{ total | money('EUR') }} {{ day | date('long') }}")
    template = compiled(content, body, localizer)
    env = make_environment(localizer=localizer)
    naive = NaivePipeline(assemble(content.folders, "t.mjml"), env, localized=True)
    for locale in ("fr-CA", "de", "ar", None):
        context: dict[str, Any] = {"as_of": AS_OF, "total": 3.5, "day": date(2026, 1, 5)}
        context.update(localizer.context_values({"locale": locale}, []))
        html, _ = template.render(context)
        assert normalize_html(html) == normalize_html(naive.render(context)), locale


LOCALIZED_DEMO = Path(__file__).resolve().parent.parent / "demo" / "localized" / "campaign.yaml"


def test_the_localized_demo_speaks_english_french_german_and_arabic(tmp_path: Path) -> None:
    import json

    from renderer import BuildOptions
    from renderer.build.driver import build_campaign

    build_campaign(load_campaign(LOCALIZED_DEMO), BuildOptions(out=tmp_path / "out"))
    manifest = (tmp_path / "out" / "manifest.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in manifest.splitlines()]
    subjects = {row["id"]: row["subject"] for row in rows}
    assert subjects["L001"] == subjects["L008"] == "Your autumn picks are here"
    assert subjects["L003"] == subjects["L004"] == "Vos sélections d’automne sont là"  # fr_CA -> fr
    assert subjects["L005"] == subjects["L006"] == "Ihre Herbstauswahl ist da"
    html = {row["id"]: (tmp_path / "out" / row["html"]).read_text("utf-8") for row in rows}
    assert '<html lang="ar" dir="rtl"' in html["L007"]
    assert '<html lang="de-DE" dir="ltr"' in html["L005"] and "310,00\u00a0€" in html["L005"]
    assert "Vous avez laissé 2 articles" in html["L003"] and "€1,234.50" in html["L002"]
