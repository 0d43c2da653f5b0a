"""``mailsmith check``: each rule fires at the designer's file and line on a campaign
written to break it, and stays silent on the demo; formats, ignore settings, and
``build`` refusing to start on the static errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import cli
from renderer import (
    BuildOptions,
    CheckFailedError,
    Finding,
    Severity,
    build,
    check_campaign,
    format_findings,
    load_campaign,
)
from renderer.check.runner import static_findings

PROFILES = """id,email,first_name,city,total_spent
1,a@example.com,Ann,Paris,900
2,b@example.com,,Lyon,10
3,c@example.com, ,,20
4,d@example.com,Dan,,30
5,e@example.com,,Nice,700
6,f@example.com,Eve,Rome,5
"""

SEGMENTS = """segments:
  vip: {field: total_spent, op: gte, value: 500}
exclusive:
  journey: {segments: [vip], otherwise: regular}
"""

CLEAN_BODY = """<mj-section><mj-column>
<mj-text>Hi {{ first_name | fallback('there') }}</mj-text>
<mj-text><a href="{{ unsubscribe_url }}">Unsubscribe</a></mj-text>
</mj-column></mj-section>"""


def mjml(body: str) -> str:
    return (
        "<mjml>\n<mj-head><mj-title>{{ subject }}</mj-title></mj-head>\n<mj-body>\n"
        + body
        + "\n</mj-body>\n</mjml>\n"
    )


def make_campaign(root: Path, body: str, **extra: Any) -> Path:
    """A campaign in ``root`` whose template holds ``body`` from line 4 on."""
    (root / "templates").mkdir(exist_ok=True)
    (root / "blocks").mkdir(exist_ok=True)
    (root / "templates" / "t.mjml").write_text(mjml(body), encoding="utf-8")
    (root / "profiles.csv").write_text(PROFILES, encoding="utf-8")
    (root / "segments.yaml").write_text(SEGMENTS, encoding="utf-8")
    data: dict[str, Any] = {
        "name": "t",
        "template": "t.mjml",
        "subject": "{{ first_name | fallback('Hi') }}, news",
        "preheader": "This week's news.",
        "profiles": "profiles.csv",
        "schema": {
            "id": {"type": "string", "required": True},
            "email": {"type": "string", "required": True},
            "first_name": "string",
            "city": "string",
            "total_spent": {"type": "float", "default": 0},
        },
        "segments": "segments.yaml",
        "unsubscribe_url": "https://x.example.com/u?rid={{ recipient_id }}",
        "vars": {"shop_name": "Shop", "items": [{"name": "Mug", "url": "https://x.example.com"}]},
        "paths": {"templates": ["templates"], "blocks": ["blocks"]},
        **extra,
    }
    path = root / "campaign.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def template_file(root: Path) -> str:
    return str(root / "templates" / "t.mjml")


def at(findings: list[Finding], rule: str) -> list[tuple[str, int | None]]:
    return [(Path(f.file).name, f.line) for f in findings if f.rule == rule]


def test_the_demo_passes_clean(demo_campaign: Any) -> None:
    report = check_campaign(demo_campaign)
    # the caniemail warnings the demo accepts (listed and explained in docs/ci.md, locked
    # by tests/test_caniemail.py); nothing else
    warned = [f for f in report.findings if f.severity is not Severity.INFO]
    assert {f.rule for f in warned} <= {"css-unsupported"}
    assert all(f.severity is Severity.WARNING for f in warned)
    assert report.representatives > 1
    assert report.exit_code() == 0


def test_a_clean_campaign_has_no_findings(tmp_path: Path) -> None:
    report = check_campaign(load_campaign(make_campaign(tmp_path, CLEAN_BODY)))
    assert report.findings == []
    # one representative per journey label (vip, regular)
    assert report.representatives == 2


def test_unknown_names_at_their_line_with_did_you_mean(tmp_path: Path) -> None:
    body = """<mj-section><mj-column>
<mj-text>Hi {{ frist_name | fallback('there') }}</mj-text>
<mj-text>{% if in_segment('vipp') %}VIP{% endif %} {{ vars.shop_nme }}</mj-text>
<mj-text>{{ city | titel }} {{ variant('nope') }}</mj-text>
<mj-text>{% for item in vars.items %}{{ item.nmae }}{% endfor %} {{ journey }}</mj-text>
<mj-text><a href="{{ unsubscribe_url }}">Unsubscribe</a></mj-text>
</mj-column></mj-section>"""
    path = make_campaign(tmp_path, body, subject="{{ frist_name }}: news")
    findings = static_findings(load_campaign(path))
    by_rule = {(f.rule, f.line): f for f in findings}
    assert at(findings, "unknown-name") == [("campaign.yaml", 3), ("t.mjml", 5), ("t.mjml", 8)]
    assert by_rule["unknown-name", 5].hint == "did you mean 'first_name'?"
    assert by_rule["unknown-name", 5].file == template_file(tmp_path)
    assert by_rule["unknown-name", 8].message == "'item.nmae' is not defined"
    assert at(findings, "unknown-segment") == [("t.mjml", 6)]
    assert by_rule["unknown-segment", 6].hint == "did you mean 'vip'?"
    assert at(findings, "unknown-var") == [("t.mjml", 6)]
    assert by_rule["unknown-var", 6].hint == "did you mean 'shop_name'?"
    assert at(findings, "unknown-filter") == [("t.mjml", 7)]
    assert by_rule["unknown-filter", 7].hint == "did you mean 'title'?"
    assert at(findings, "unknown-experiment") == [("t.mjml", 7)]
    assert all(f.severity is Severity.ERROR for f in findings)


def test_block_show_if_and_fallback_cycles(tmp_path: Path) -> None:
    body = CLEAN_BODY + '\n<mj-block name="offer" />\n<mj-block name="a" />'
    path = make_campaign(tmp_path, body)
    blocks = tmp_path / "blocks"
    offer = "---\nname: offer\nshow_if: vips\n---\n<mj-section><mj-column><mj-text>x</mj-text></mj-column></mj-section>\n"
    (blocks / "offer.mjml").write_text(offer, encoding="utf-8")
    (blocks / "a.mjml").write_text("---\nshow_if: vip\nfallback: b\n---\n", encoding="utf-8")
    (blocks / "b.mjml").write_text("---\nshow_if: vip\nfallback: a\n---\n", encoding="utf-8")
    findings = static_findings(load_campaign(path))
    assert at(findings, "fallback-cycle") == [("a.mjml", 3)]
    assert "a -> b -> a" in findings[0].message
    (blocks / "b.mjml").write_text("---\nshow_if: vip\n---\n", encoding="utf-8")
    findings = static_findings(load_campaign(path))
    assert at(findings, "unknown-segment") == [("offer.mjml", 3)]
    assert findings[0].hint == "did you mean 'vip'?"


def test_data_audit_counts_missing_profiles_as_pandas_does(tmp_path: Path) -> None:
    body = CLEAN_BODY.replace("</mj-column>", "<mj-text>{{ first_name }}</mj-text>\n</mj-column>")
    path = make_campaign(tmp_path, body)
    report = check_campaign(load_campaign(path))
    frame = pd.read_csv(tmp_path / "profiles.csv", dtype=str)
    missing = int((frame.first_name.isna() | frame.first_name.str.strip().eq("")).sum())
    assert missing == 3
    [finding] = [f for f in report.findings if f.rule == "missing-data"]
    assert (Path(finding.file).name, finding.line) == ("t.mjml", 7)
    share = f"{missing / len(frame):.0%}"
    assert finding.message == (
        f"first_name is missing for {missing} profiles ({share}): they would be rejected"
    )
    assert finding.severity is Severity.WARNING


def test_guarded_and_defaulted_tokens_are_not_audited(tmp_path: Path) -> None:
    body = CLEAN_BODY.replace(
        "</mj-column>",
        "<mj-text>{% if city %}{{ city }}{% endif %} {{ total_spent }}</mj-text>\n</mj-column>",
    )
    report = check_campaign(load_campaign(make_campaign(tmp_path, body)))
    assert report.findings == []


RENDERED_BODY = """<mj-section><mj-column>
<mj-image src="https://x.example.com/a.png" />
<mj-button href="javascript:alert(1)">Go</mj-button>
<mj-text><a href="#">nowhere</a> <a href="http://x.example.com/p">plain</a></mj-text>
<mj-text><a href="{{ vars.raw }}/x">raw</a></mj-text>
<mj-image src="https://x.example.com/b.png" href="https://x.example.com/img" />
<mj-text><div style="display:none"><a href="https://x.example.com/hidden">h</a></div></mj-text>
</mj-column></mj-section>"""


def test_rendered_checks_at_the_written_line(tmp_path: Path) -> None:
    vars_ = {"raw": "{{ shop }}", "shop_name": "Shop"}
    path = make_campaign(
        tmp_path, RENDERED_BODY, subject="A" * 80, preheader="", unsubscribe_url=None, vars=vars_
    )
    report = check_campaign(load_campaign(path))
    findings = report.findings
    assert sorted(at(findings, "img-alt")) == [("t.mjml", 5), ("t.mjml", 9)]
    assert at(findings, "link-javascript") == [("t.mjml", 6)]
    assert at(findings, "link-empty") == [("t.mjml", 7)]
    assert at(findings, "link-insecure") == [("t.mjml", 7)]
    assert at(findings, "link-unrendered") == [("t.mjml", 8)]
    assert at(findings, "text-missing-link") == [("t.mjml", 10)]
    assert at(findings, "no-unsubscribe") == [("t.mjml", None)]
    assert at(findings, "subject-long") == [("campaign.yaml", 3)]
    assert at(findings, "preheader-missing") == [("campaign.yaml", 4)]
    assert report.exit_code() == 8


def test_size_over_gmail_clipping_is_an_error(tmp_path: Path) -> None:
    body = CLEAN_BODY.replace("</mj-column>", f"<mj-text>{'word ' * 22000}</mj-text></mj-column>")
    report = check_campaign(load_campaign(make_campaign(tmp_path, body)))
    [finding] = [f for f in report.findings if f.rule.startswith("size")]
    assert finding.rule == "size-clipped"
    assert finding.severity is Severity.ERROR
    assert finding.file == template_file(tmp_path)


def test_subject_written_over_several_lines(tmp_path: Path) -> None:
    path = make_campaign(tmp_path, CLEAN_BODY, subject="Hello\nthere")
    assert at(static_findings(load_campaign(path)), "subject-multiline") == [("campaign.yaml", 3)]


def test_ignore_settings(tmp_path: Path) -> None:
    body = RENDERED_BODY.replace(
        '<mj-image src="https://x.example.com/a.png" />',
        '{# mailsmith: ignore[img-alt] #}\n<mj-image src="https://x.example.com/a.png" />',
    )
    check = {"ignore": ["link-insecure", "no-unsubscribe"]}
    path = make_campaign(tmp_path, body, vars={"raw": "x", "shop_name": "S"}, check=check)
    report = check_campaign(load_campaign(path))
    assert at(report.findings, "img-alt") == [("t.mjml", 10)]
    assert at(report.findings, "link-insecure") == []
    assert at(report.findings, "no-unsubscribe") == []
    assert report.ignored == 3


def test_formats() -> None:
    findings = [
        Finding("t.mjml", 3, "unknown-name", Severity.ERROR, "a, b: 100%", "did you mean 'x'?"),
        Finding("c.yaml", None, "subject-long", Severity.WARNING, "long\nsubject"),
    ]
    rows = json.loads(format_findings(findings, "json"))
    assert rows[0] == {
        "file": "t.mjml",
        "line": 3,
        "rule": "unknown-name",
        "severity": "error",
        "message": "a, b: 100%",
        "hint": "did you mean 'x'?",
    }
    assert format_findings(findings, "github").splitlines() == [
        "::error file=t.mjml,line=3,title=unknown-name::a, b: 100%25 (hint: did you mean 'x'?)",
        "::warning file=c.yaml,title=subject-long::long%0Asubject",
    ]


def test_cli_check_exit_codes_and_formats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = CLEAN_BODY.replace("fallback('there')", "frist_name | fallback('there')")
    path = make_campaign(tmp_path, body.replace("first_name | frist_name", "frist_name"))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli.app, ["check", str(path), "--format", "github"])
    assert result.exit_code == 8, result.output
    assert result.stdout.startswith("::error file=templates/t.mjml,line=5,title=unknown-name::")
    result = runner.invoke(cli.app, ["check", str(path), "--format", "json"])
    assert result.exit_code == 8
    assert json.loads(result.stdout)[0]["hint"] == "did you mean 'first_name'?"
    result = runner.invoke(cli.app, ["check", str(path)])
    assert result.exit_code == 8
    assert "templates/t.mjml" in result.stdout and "unknown-name" in result.stdout


def test_cli_check_strict_fails_on_warnings(tmp_path: Path) -> None:
    path = make_campaign(tmp_path, CLEAN_BODY, preheader="")
    runner = CliRunner()
    assert runner.invoke(cli.app, ["check", str(path)]).exit_code == 0
    assert runner.invoke(cli.app, ["check", str(path), "--strict"]).exit_code == 8


def test_build_refuses_to_start_on_static_errors(tmp_path: Path) -> None:
    body = CLEAN_BODY.replace("first_name | fallback", "frist_name | fallback")
    campaign = load_campaign(make_campaign(tmp_path, body))
    out = tmp_path / "out"
    with pytest.raises(CheckFailedError) as caught:
        build(campaign, BuildOptions(out=out))
    assert caught.value.exit_code == 8
    assert "frist_name" in caught.value.message
    assert not out.exists()
    # --no-check: the misspelt field greets everyone with the fallback, as before
    summary = build(campaign, BuildOptions(out=out, check=False))
    assert summary["rendered"] == 6


def test_cli_build_refuses_and_no_check_skips(tmp_path: Path) -> None:
    body = CLEAN_BODY.replace("first_name | fallback", "frist_name | fallback")
    path = make_campaign(tmp_path, body)
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(cli.app, ["build", str(path), "--out", str(out), "-q"])
    assert result.exit_code == 8
    assert "unknown-name" in result.stderr and not out.exists()
    result = runner.invoke(cli.app, ["build", str(path), "--out", str(out), "-q", "--no-check"])
    assert result.exit_code == 0, result.output


def test_cli_check_ad_hoc(tmp_path: Path) -> None:
    body = CLEAN_BODY.replace("first_name | fallback", "frist_name | fallback")
    make_campaign(tmp_path, body)
    template, profiles = tmp_path / "templates" / "t.mjml", tmp_path / "profiles.csv"
    args = ["check", "--template", str(template), "--profiles", str(profiles)]
    result = CliRunner().invoke(cli.app, [*args, "--format", "json"])
    assert result.exit_code == 8, result.output
    first, second = json.loads(result.stdout)
    assert (first["rule"], first["line"]) == ("unknown-name", 5)
    assert first["hint"] == "did you mean 'first_name'?"
    # an ad-hoc campaign has no unsubscribe URL: every recipient would be rejected
    assert (second["line"], second["hint"]) == (6, "set `unsubscribe_url:` in the campaign file")


def test_rules_hook_reports_and_ignores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from renderer.check import runner

    def custom(context: runner.CheckContext) -> list[Finding]:
        file = context.assembled.file
        return [Finding(file, 4, "custom", Severity.WARNING, "seen", "")]

    monkeypatch.setattr(runner, "RULES", [custom])
    path = make_campaign(tmp_path, CLEAN_BODY)
    assert at(check_campaign(load_campaign(path)).findings, "custom") == [("t.mjml", 4)]
    path = make_campaign(tmp_path, CLEAN_BODY, check={"ignore": ["custom"]})
    assert check_campaign(load_campaign(path)).findings == []


def test_check_runs_the_caniemail_lint_for_the_campaigns_clients(tmp_path: Path) -> None:
    body = CLEAN_BODY.replace("<mj-section>", '<mj-section border-radius="8px">', 1)
    outlook = make_campaign(tmp_path, body, check={"clients": ["outlook.windows"]})
    found = [f for f in check_campaign(load_campaign(outlook)).findings if f.rule.startswith("css")]
    assert [(f.rule, f.file.endswith("t.mjml"), f.line) for f in found] == [
        ("css-unsupported", True, 4)
    ]
    assert "Outlook Windows" in found[0].message
    apple = make_campaign(tmp_path, body, check={"clients": ["apple-mail.macos"]})
    assert not [
        f for f in check_campaign(load_campaign(apple)).findings if f.rule == "css-unsupported"
    ]


def test_a_macro_is_a_known_name(tmp_path: Path) -> None:
    body = CLEAN_BODY.replace(
        "<mj-section>",
        "{% macro shout(s) %}{{ s | upper }}{% endmacro %}<mj-section>"
        "<mj-column><mj-text>{{ shout('hi') }}</mj-text></mj-column></mj-section><mj-section>",
        1,
    )
    report = check_campaign(load_campaign(make_campaign(tmp_path, body)))
    assert [f for f in report.findings if f.rule == "unknown-name"] == []
