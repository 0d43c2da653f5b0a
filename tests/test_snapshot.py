"""``mailsmith snapshot``: fixtures, the snapshot round trip, the HTML normalizer, visual
snapshots in Chromium, and the pytest plugin in a temporary project (pytester)."""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import shutil
import textwrap
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from renderer import ConfigError, SnapshotOptions, load_campaign, load_fixtures, snapshot
from renderer.campaign import demo_campaign_path, shipped_dir
from renderer.fixtures import FixtureSet, prepare_fixtures
from renderer.snapshots.cases import fixture_cases
from renderer.snapshots.normalize import normalize_html
from renderer.snapshots.runner import SNAPSHOTS_DIFFER
from renderer.specs import audience_spec, schema_of
from segments.audience.prepass import prepare_audience

pytest_plugins = ["pytester"]
runner = CliRunner()
DEMO_FILES = (
    "campaign.yaml",
    "fixtures.yaml",
    "segments.yaml",
    "profiles.csv",
    "events.csv",
    "suppression.csv",
    "autumn-retail-2026.clusters.json",
    "coupons.csv",
    "catalog.csv",
)
TINY_TEMPLATE = """<mjml>
  <mj-body>
    <mj-section><mj-column>
      <mj-text font-size="18px" line-height="1.5">Hello {{ first_name | fallback('there') }}, the autumn sale starts today.</mj-text>
      <mj-button href="https://shop.example.com/sale">Shop the sale</mj-button>
      <mj-text><a href="{{ unsubscribe_url }}">Unsubscribe</a></mj-text>
    </mj-column></mj-section>
  </mj-body>
</mjml>
"""
TINY_CAMPAIGN = """name: tiny
template: tiny.mjml
as_of: "2026-11-20T09:00:00Z"
subject: "Hi {{ first_name | fallback('there') }}"
preheader: "The autumn sale starts today."
unsubscribe_url: "https://shop.example.com/u?rid={{ recipient_id }}"
profiles: profiles.csv
fixtures: fixtures.yaml
schema:
  id: {type: string, required: true}
  email: {type: string, required: true}
  first_name: string
"""
TINY_FIXTURES = """ada:
  profile: {first_name: Ada}
anonymous:
  description: no first name (the fallback)
  profile: {}
"""


def demo_copy(folder: Path) -> Path:
    """The demo campaign's files in ``folder`` (its template still the shipped one)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in DEMO_FILES:
        shutil.copy(demo_campaign_path().parent / name, folder / name)
    shutil.copytree(demo_campaign_path().parent / "locales", folder / "locales")
    return folder / "campaign.yaml"


def tiny_campaign(folder: Path) -> Path:
    """A one-template campaign with two personas and no experiments."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny.mjml").write_text(TINY_TEMPLATE, encoding="utf-8")
    (folder / "campaign.yaml").write_text(TINY_CAMPAIGN, encoding="utf-8")
    (folder / "fixtures.yaml").write_text(TINY_FIXTURES, encoding="utf-8")
    (folder / "profiles.csv").write_text("id,email,first_name\ncust-x,a@example.com,A\n")
    return folder / "campaign.yaml"


def digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# --- fixtures ---------------------------------------------------------------------------


@functools.cache
def demo_fixtures() -> FixtureSet:
    """The demo's personas, prepared once for the tests that only read them."""
    return prepare_fixtures(load_campaign(demo_campaign_path()))


def test_demo_personas_show_every_block_and_its_fallback() -> None:
    campaign = load_campaign(demo_campaign_path())
    assert [f.name for f in load_fixtures(campaign)][:2] == ["vip_new_york", "vip_without_name"]
    cases = list(fixture_cases(demo_fixtures()))
    blocks = {b.block for b in cases[0].blocks}
    shown = {b.block for case in cases for b in case.blocks if b.shown}
    assert (
        shown
        == blocks
        == {
            "cart_reminder",
            "vip_offer",
            "generic_offer",
            "free_shipping_offer",
            "winback",
            "onboarding",
            "store_event",
        }
    )
    # every persona in every arm of both experiments
    assert len(cases) == len(load_fixtures(campaign)) * 4
    nameless = next(c for c in cases if c.name == "vip_without_name")
    states = {b.block: b for b in nameless.blocks}
    assert states["vip_offer"].why == "no value for first_name"
    assert states["generic_offer"].shown and states["generic_offer"].why.endswith(
        "fallback of vip_offer"
    )
    derived = next(c for c in cases if c.name == "cart_from_events")
    assert "cart_abandoner" in derived.rendered.segments  # from the persona's events


def test_personas_use_the_real_audience_thresholds() -> None:
    campaign = load_campaign(demo_campaign_path())
    fixtures = demo_fixtures()
    real = fixtures.runtime.audience.definitions["engaged"]["value"]
    schema = schema_of(campaign)
    assert schema is not None
    expected = prepare_audience(audience_spec(campaign, schema), campaign.reference_time())
    assert real == expected.definitions["engaged"]["value"]
    assert isinstance(real, float)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("total_spent", "lots", "profile.total_spent"),
        ("no_such_field", "xyzzy", "is not a field of the schema"),
        ("email", "not-an-address", "profile.email"),
    ],
)
def test_a_bad_persona_is_located(tmp_path: Path, field: str, value: str, message: str) -> None:
    path = demo_copy(tmp_path)
    fixtures = tmp_path / "fixtures.yaml"
    fixtures.write_text(
        "ok:\n  profile:\n    first_name: Ok\n    email_opt_in: true\n"
        f"broken:\n  profile:\n    email_opt_in: true\n    {field}: {value}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_fixtures(load_campaign(path))
    error = caught.value
    assert error.file == str(fixtures) and error.line == 8 and error.field == field
    assert "persona 'broken'" in error.message and message in error.message
    assert value not in error.message  # messages name fields, never values


def test_fixtures_may_be_json(tmp_path: Path) -> None:
    path = tiny_campaign(tmp_path)
    path.write_text(TINY_CAMPAIGN.replace("fixtures.yaml", "fixtures.json"), encoding="utf-8")
    personas = {"ada": {"profile": {"first_name": "Ada"}}, "bad": {"profile": {"nope": 1}}}
    text = json.dumps(personas, indent=2)
    (tmp_path / "fixtures.json").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="persona 'bad': profile.nope") as caught:
        load_fixtures(load_campaign(path))
    assert caught.value.line == text.splitlines().index('      "nope": 1') + 1
    del personas["bad"]
    (tmp_path / "fixtures.json").write_text(json.dumps(personas), encoding="utf-8")
    assert [f.name for f in load_fixtures(load_campaign(path))] == ["ada"]


def test_persona_events_need_an_events_source(tmp_path: Path) -> None:
    path = tiny_campaign(tmp_path)
    (tmp_path / "fixtures.yaml").write_text(
        "ada:\n  profile: {first_name: Ada}\n  events:\n"
        '    - {type: open, timestamp: "2026-11-01T10:00:00Z"}\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="no events source") as caught:
        prepare_fixtures(load_campaign(path))
    assert caught.value.line == 3


def test_a_campaign_without_fixtures_has_no_personas(tmp_path: Path) -> None:
    path = tiny_campaign(tmp_path)
    path.write_text(TINY_CAMPAIGN.replace("fixtures: fixtures.yaml\n", ""), encoding="utf-8")
    campaign = load_campaign(path)
    assert load_fixtures(campaign) == [] and prepare_fixtures(campaign).names() == []
    report = snapshot(campaign)
    assert report.cases == [] and not report.differs
    assert report.warnings == ["nothing to snapshot: add `fixtures:` to the campaign"]


def test_a_hostile_persona_stays_escaped_in_every_file(tmp_path: Path) -> None:
    path = tiny_campaign(tmp_path)
    hostile = "<script>alert('x')</script> {{ 7*7 }} \u202eevil\u202c \U0001f389 " + "long" * 300
    (tmp_path / "fixtures.yaml").write_text(
        f"hostile:\n  profile: {{first_name: {json.dumps(hostile, ensure_ascii=False)}}}\n",
        encoding="utf-8",
    )
    report = snapshot(load_campaign(path), SnapshotOptions(update=True))
    html = (report.folder / "hostile" / "default.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert "{{ 7*7 }}" in html and "49" not in html  # data is never a template
    assert "\U0001f389" in html and "\u202eevil" in html
    summary = json.loads((report.folder / "hostile" / "default.json").read_text(encoding="utf-8"))
    assert summary["subject"].startswith("Hi <script>")  # the subject is text, not HTML
    again = snapshot(load_campaign(path))
    assert not again.differs


def test_cli_reports_a_bad_persona_as_an_error(tmp_path: Path) -> None:
    path = tiny_campaign(tmp_path)
    (tmp_path / "fixtures.yaml").write_text("ada:\n  profile: {first_name: Ada}\n  age: 3\n")
    result = runner.invoke(app, ["snapshot", str(path)])
    assert result.exit_code == 2 and result.stdout == ""
    assert "fixtures.yaml:3: persona 'ada': unknown key 'age'" in result.stderr


# --- the normalizer ---------------------------------------------------------------------


def test_normalized_html_ignores_cosmetic_changes_only() -> None:
    a = '<div class="x" style="color:red;padding:0"><p>Hi &amp; bye</p><br></div>'
    b = '<div  style="color: red; padding: 0"\n class="x">\n  <p>Hi &#38;   bye</p>\n<br>\n</div>'
    assert (
        normalize_html(a)
        == normalize_html(b)
        == (
            '<div class="x" style="color: red; padding: 0">\n'
            "  <p>\n    Hi &amp; bye\n  </p>\n  <br>\n</div>\n"
        )
    )
    assert normalize_html(a.replace("bye", "bye!")) != normalize_html(a)
    assert normalize_html(a.replace("red", "blue")) != normalize_html(a)


def test_preformatted_text_keeps_its_whitespace() -> None:
    source = "<pre>a  b\n  c</pre>"
    assert normalize_html(source) == "<pre>\na  b\n  c\n</pre>\n"
    assert normalize_html(source.replace("a  b", "a b")) != normalize_html(source)


def test_conditional_comments_are_laid_out_too() -> None:
    source = "<!--[if mso | IE]><table><tr><td><![endif]--><p>x</p>"
    assert normalize_html(source).splitlines() == [
        "<!--[if mso | IE]>",
        "  <table>",
        "    <tr>",
        "      <td>",
        "<![endif]-->",
        "<p>",
        "  x",
        "</p>",
    ]


# --- the round trip ---------------------------------------------------------------------


@pytest.mark.slow  # seven runs over the demo's audience (events, clusters): about 40 s
def test_snapshot_round_trip(tmp_path: Path) -> None:
    path = demo_copy(tmp_path / "demo")
    folder = tmp_path / "demo" / "__snapshots__" / "autumn-retail-2026"
    personas = (tmp_path / "demo" / "fixtures.yaml").read_text(encoding="utf-8")
    two = (
        personas[: personas.index("\nvip_without_name:")] + personas[personas.index("\nregular:") :]
    )
    (tmp_path / "demo" / "fixtures.yaml").write_text(two, encoding="utf-8")  # 8 emails

    first = runner.invoke(app, ["snapshot", str(path)])
    assert first.exit_code == SNAPSHOTS_DIFFER and "24 new" in first.stdout

    written = runner.invoke(app, ["snapshot", str(path), "--update"])
    assert written.exit_code == 0, written.output
    stored = digest(folder)
    assert len(stored) == 24 and "vip_new_york/subject_test=A,offer_test=control.json" in stored

    again = runner.invoke(app, ["snapshot", str(path), "--update"])
    assert again.exit_code == 0 and digest(folder) == stored  # same inputs, same bytes
    unchanged = runner.invoke(app, ["snapshot", str(path)])
    assert unchanged.exit_code == 0, unchanged.stdout
    assert "0 new, 0 changed, 0 orphaned" in unchanged.stdout

    shipped = (shipped_dir("templates") / "retail_weekly.mjml").read_text(encoding="utf-8")
    edited = tmp_path / "demo" / "retail_weekly.mjml"  # found before the shipped one
    edited.write_text(shipped.replace("Shop the Autumn Edit", "Shop the Winter Edit"))
    changed = runner.invoke(app, ["snapshot", str(path)])
    assert changed.exit_code == SNAPSHOTS_DIFFER
    out = changed.stdout
    assert "changed: regular/subject_test=A,offer_test=control.html" in out
    assert "changed: regular/subject_test=A,offer_test=control.txt" in out
    assert "-                                            Shop the Autumn Edit" in out
    assert "+                                            Shop the Winter Edit" in out
    assert "+Shop the Winter Edit (https://shop.example.com/c/autumn-edit" in out
    assert digest(folder) == stored  # comparing writes nothing

    edited.unlink()
    (folder / "ghost").mkdir()
    (folder / "ghost" / "default.html").write_text("<p>gone</p>\n")
    orphaned = runner.invoke(app, ["snapshot", str(path)])
    assert (
        orphaned.exit_code == SNAPSHOTS_DIFFER and "orphaned: ghost/default.html" in orphaned.stdout
    )
    pruned = runner.invoke(app, ["snapshot", str(path), "--prune"])
    assert pruned.exit_code == 0 and "removed: ghost/default.html" in pruned.stdout
    assert digest(folder) == stored and not (folder / "ghost").exists()


def test_real_profiles_join_the_personas(tmp_path: Path) -> None:
    path = tiny_campaign(tmp_path)
    report = snapshot(load_campaign(path), SnapshotOptions(update=True, profiles=("cust-x",)))
    assert report.cases[:2] == ["ada/default", "anonymous/default"]
    assert len(report.cases) == 3 and report.cases[2].startswith("profile-")
    assert "cust-x" not in report.cases[2]  # never the raw id in a path
    summary = (report.folder / f"{report.cases[2]}.json").read_text()
    assert '"subject": "Hi A"' in summary and "a@example.com" not in summary


# --- visual -----------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.slow  # Chromium started four times: about 30 s on a busy machine
def test_visual_change_detected_and_sub_pixel_change_ignored(tmp_path: Path) -> None:
    pytest.importorskip("playwright")
    pytest.importorskip("PIL")
    if not Path("/usr/bin/chromium").is_file():
        pytest.skip("no /usr/bin/chromium")
    path = tiny_campaign(tmp_path)
    template = tmp_path / "tiny.mjml"
    campaign = load_campaign(path)
    options = SnapshotOptions(visual=True)

    first = snapshot(campaign, SnapshotOptions(visual=True, update=True))
    shots = sorted(p.name for p in first.folder.rglob("*.png"))
    assert shots == ["default.375.png"] * 2 + ["default.600.png"] * 2
    assert snapshot(campaign, options).differs is False

    # a sub-pixel change: the text moves by a fraction of a pixel, within the allowance
    template.write_text(TINY_TEMPLATE.replace('line-height="1.5"', 'line-height="1.502"'))
    subpixel = snapshot(campaign, options)
    assert subpixel.changed and subpixel.visual == [] and subpixel.visual_report is None

    template.write_text(TINY_TEMPLATE.replace("autumn sale", "winter sale"))
    changed = snapshot(campaign, options)
    assert changed.differs
    assert {v.path for v in changed.visual} >= {"ada/default.600.png", "ada/default.375.png"}
    assert all(v.pixels > 0 and not v.new for v in changed.visual)
    report = changed.visual_report
    assert report is not None and report.is_file()
    page = report.read_text()
    assert "ada/default.600.png" in page and "1-stored.png" in page and "1-diff.png" in page
    assert (report.parent / "1-diff.png").is_file()


# --- the pytest plugin ------------------------------------------------------------------


def test_the_plugin_is_registered_for_pytest() -> None:
    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    module = pyproject["project"]["entry-points"]["pytest11"]["mailsmith"]
    plugin = importlib.import_module(module)
    assert callable(plugin.pytest_addoption) and callable(plugin.pytest_collection_modifyitems)


def plugin_project(pytester: pytest.Pytester) -> Path:
    tiny_campaign(pytester.path / "emails")
    pytester.makepyprojecttoml('[tool.mailsmith]\ncampaigns = ["emails/campaign.yaml"]\n')
    pytester.makepyfile(
        test_hand_written=textwrap.dedent(
            """
            from renderer import load_campaign
            from renderer.fixtures import FixtureSet, prepare_fixtures

            def test_ada(email_snapshot):
                fixtures = prepare_fixtures(load_campaign("emails/campaign.yaml"))
                assert fixtures.render("ada") == email_snapshot
            """
        )
    )
    return pytester.path / "emails" / "__snapshots__" / "tiny"


def run_plugin(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "renderer.pytest_plugin", "-p", "syrupy", "-v", *args)


def test_pytest_plugin_in_a_project(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the plugin and syrupy named explicitly (run_plugin): the same run whether or not
    # the installed mailsmith has registered its entry point yet
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    folder = plugin_project(pytester)
    first = run_plugin(pytester)
    first.assert_outcomes(failed=3, passed=2, errors=0)  # nothing stored yet; check clean
    run_plugin(pytester, "--snapshot-update").assert_outcomes(passed=5)
    assert sorted(p.name for p in (folder / "ada").iterdir()) == [
        "default.html",
        "default.json",
        "default.txt",
    ]
    assert next(pytester.path.rglob("__snapshots__/test_hand_written/test_ada.html"))

    passed = run_plugin(pytester)
    passed.assert_outcomes(passed=5)
    passed.stdout.fnmatch_lines(["mailsmith::emails/campaign.yaml::ada?default? PASSED*"])
    passed.stdout.fnmatch_lines(["mailsmith::emails/campaign.yaml::check PASSED*"])

    template = pytester.path / "emails" / "tiny.mjml"
    template.write_text(TINY_TEMPLATE.replace("autumn sale", "winter sale"))
    failed = run_plugin(pytester)
    failed.assert_outcomes(failed=3, passed=2)  # two personas and the hand-written test
    failed.stdout.fnmatch_lines(
        [
            "*email snapshot of persona 'ada', variant default*",
            "-*Hello Ada, the autumn sale starts today.",
            "+*Hello Ada, the winter sale starts today.",
        ]
    )
    assert run_plugin(pytester, "-m", "not mailsmith").ret == 1  # only the syrupy test runs
    template.write_text(TINY_TEMPLATE)
    run_plugin(pytester).assert_outcomes(passed=5)
    # a misspelled field: one failing item for the check error, at its file and line
    template.write_text(
        TINY_TEMPLATE.replace("</mj-column>", "<mj-text>{{ frist_name }}</mj-text></mj-column>")
    )
    misspelled = run_plugin(pytester)
    misspelled.stdout.fnmatch_lines(
        ["*mailsmith::emails/campaign.yaml::check?unknown-name:tiny.mjml:* FAILED*"]
    )
    misspelled.stdout.fnmatch_lines(["*tiny.mjml:*: unknown-name: *frist_name*"])
