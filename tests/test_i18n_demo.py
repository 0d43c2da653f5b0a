"""The demo in three locales: its catalogs match its texts, are complete and compiled,
and French and German recipients read their language, money and dates (issue 14)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from renderer import extract_messages, load_campaign
from renderer.campaign import demo_campaign_path
from tests.conftest import copy_demo_campaign

LOCALES = demo_campaign_path().parent / "locales"


def message_ids(path: Path) -> set[Any]:
    with path.open("rb") as handle:
        return {m.id for m in read_po(handle) if m.id}


def test_the_demo_catalog_template_holds_every_message_of_its_texts(tmp_path: Path) -> None:
    copy = load_campaign(copy_demo_campaign(tmp_path / "demo", rows=1))
    pot = extract_messages(copy)
    assert message_ids(pot.path) == message_ids(LOCALES / "messages.pot")
    # the experiment's subject line B is a message too, at its line of the campaign
    with pot.path.open("rb") as handle:
        found = {m.id: m.locations for m in read_po(handle) if m.id}
    [(file, line)] = found["%(name)s, 3 picks we think you'll love"]
    lines = (tmp_path / "demo" / "campaign.yaml").read_text(encoding="utf-8").splitlines()
    assert file == "campaign.yaml" and "3 picks" in lines[line - 1]
    # blocks beside the campaign's folder are named relative to it, never absolutely
    assert ("blocks/winback.mjml", 10) in found["%(pct)s off your next order"]


def test_the_french_and_german_catalogs_are_complete_and_compiled() -> None:
    template = message_ids(LOCALES / "messages.pot")
    for locale in ("fr", "de"):
        po = LOCALES / locale / "LC_MESSAGES" / "messages.po"
        with po.open("rb") as handle:
            catalog = read_po(handle)
        messages = [m for m in catalog if m.id]
        assert {m.id for m in messages} == template
        assert not [m.id for m in messages if m.fuzzy or not all(m.string)]
        assert not [m.id for m, errors in catalog.check() if errors]
        compiled = io.BytesIO()
        write_mo(compiled, catalog)  # what `mailsmith i18n compile` writes, byte for byte
        assert (po.with_suffix(".mo")).read_bytes() == compiled.getvalue()


def test_demo_recipients_read_their_locale(demo_build: tuple[Path, dict[str, Any]]) -> None:
    out, _summary = demo_build
    import csv

    with (demo_campaign_path().parent / "profiles.csv").open(encoding="utf-8") as handle:
        locales = {row["id"]: row["locale"] for row in csv.DictReader(handle)}
    seen: dict[str, str] = {}
    for line in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        locale = locales[record["id"]]
        if "html" in record and locale in ("fr-FR", "de-DE", "en-US") and locale not in seen:
            seen[locale] = (out / record["text"]).read_text(encoding="utf-8")
    assert "Se désabonner" in seen["fr-FR"] and "Abmelden" in seen["de-DE"]
    assert "Unsubscribe" in seen["en-US"]
    # USD as each locale writes it: "75,00 $US", "75,00 $", "$75.00"
    assert "75,00\u00a0$US" in seen["fr-FR"] and "75,00\u00a0$" in seen["de-DE"]
    assert "$75.00" in seen["en-US"]


def test_gettext_keeps_jinjas_newstyle_semantics() -> None:
    """The localizer's own gettext and ngettext (no Jinja wrappers) format as Jinja's
    newstyle ones do: values escaped into HTML, numbers kept for %d, %% undone."""
    from markupsafe import Markup

    from renderer.env import make_environment
    from renderer.i18n import Localizer

    source = (
        "{{ _('%(a)s got %(n)d, %(f).1f%% %(m)s', a=x, n=3, f=2.25, m=y) }}|"
        "{{ _('100%% wool') }}|{{ ngettext('%(num)d item', '%(num)d items', 2) }}|"
        "{% for i in [1] %}{{ _('in a loop %(i)s', i=i) }}{% endfor %}"
    )
    values = {"x": "<b>", "y": Markup("<i>ok</i>"), "locale_id": "fr_FR"}
    html = make_environment(localizer=Localizer()).from_string(source).render(values)
    assert html == "&lt;b&gt; got 3, 2.2% <i>ok</i>|100% wool|2 items|in a loop 1"
    text = make_environment(text=True, localizer=Localizer()).from_string(source)
    assert text.render(values).startswith("<b> got 3, 2.2% <i>ok</i>|")


def test_date_only_patterns_give_babels_text_for_any_moment() -> None:
    from datetime import UTC, datetime

    from babel.dates import format_datetime

    from renderer.env import make_environment
    from renderer.i18n import Localizer

    env = make_environment(localizer=Localizer())
    template = env.from_string("{{ d | date('MMMM y') }}|{{ d | date('EEEE d MMMM HH:mm') }}")
    for moment in (datetime(2024, 4, 30, 23, 59, tzinfo=UTC), datetime(2026, 1, 1, 0, 0)):
        for locale in ("fr_FR", "de_DE", "en_US"):
            expected = [
                format_datetime(moment, p, locale=locale) for p in ("MMMM y", "EEEE d MMMM HH:mm")
            ]
            assert template.render(d=moment, locale_id=locale) == "|".join(expected)
