"""Experiments inside builds: manifest, holdouts, variant content, test-then-winner, report CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app
from renderer import (
    BuildOptions,
    ConfigError,
    build_campaign,
    load_campaign,
    render_profile,
    render_segment,
)
from renderer.campaign import demo_campaign_path
from segments.errors import ProfileDataError
from segments.experiments.assign import assign_one, parse_experiments

runner = CliRunner()


def manifest(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture
def demo(demo_build: tuple[Path, dict[str, Any]]) -> tuple[Path, dict[str, Any]]:
    return demo_build  # the session's one demo build (tests/conftest.py)


def test_manifest_records_variants_and_holdouts_are_never_rendered(
    demo: tuple[Path, dict[str, Any]],
) -> None:
    out, summary = demo
    entries = manifest(out)
    held = [e for e in entries if e["holdout"]]
    sent = [e for e in entries if not e["holdout"]]
    assert len(held) == summary["holdout"] > 0
    assert len(sent) == summary["rendered"]
    assert all("html" not in e and "text" not in e for e in held)
    html_files = {p.name for p in (out / "html").rglob("*.html")}
    assert len(html_files) == len(sent)
    assert all(set(e["variants"]) == {"subject_test", "offer_test"} for e in entries)
    assert all(e["variants"]["offer_test"] is None for e in held)
    # 10% holdout of everyone eligible, within a generous binomial tolerance
    eligible = len(entries)
    assert abs(len(held) / eligible - 0.10) < 0.03
    # holdout lines sit between the rendered ones: the manifest follows the input rows
    rows = [e["row"] for e in entries]
    assert rows == sorted(rows) and len(set(rows)) == len(rows)


def test_summary_counts_match_the_manifest_and_carry_srm(demo: tuple[Path, dict[str, Any]]) -> None:
    out, summary = demo
    sent = [e for e in manifest(out) if not e["holdout"]]
    for key, info in summary["experiments"].items():
        for variant, count in info["counts"].items():
            assert count == sum(1 for e in sent if e["variants"][key] == variant)
        assert info["srm"]["mismatch"] is False
    assert summary["input_rows"] == summary["rendered"] + summary["rejected"] + summary["holdout"]


def test_assignments_match_the_documented_algorithm(demo: tuple[Path, dict[str, Any]]) -> None:
    out, _ = demo
    campaign = load_campaign(demo_campaign_path())
    experiments = parse_experiments(campaign.experiments)
    for entry in manifest(out)[:300]:
        assignment = assign_one(experiments, entry["id"], frozenset(entry["segments"]))
        assert assignment.is_holdout == entry["holdout"]
        if not entry["holdout"]:
            assert assignment.variants == entry["variants"]


def test_variant_content_subject_and_block_swap(demo: tuple[Path, dict[str, Any]]) -> None:
    out, _ = demo
    sent = [  # the demo speaks three languages: these texts are the English ones
        e
        for e in manifest(out)
        if not e["holdout"] and '<html lang="en' in (out / e["html"]).read_text()[:200]
    ]
    b = next(e for e in sent if e["variants"]["subject_test"] == "B")
    a = next(e for e in sent if e["variants"]["subject_test"] == "A")
    assert "3 picks we think you'll love" in b["subject"]
    assert "your autumn picks are here" in a["subject"]
    non_vip = [e for e in sent if "vip" not in e["segments"]]
    free = next(e for e in non_vip if e["variants"]["offer_test"] == "free_shipping")
    control = next(e for e in non_vip if e["variants"]["offer_test"] == "control")
    assert "Free shipping on everything" in (out / free["html"]).read_text()
    assert "Knitwear Week" not in (out / free["html"]).read_text()
    assert "Knitwear Week" in (out / control["html"]).read_text()


def test_variants_do_not_multiply_compiled_layouts(
    demo: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    _, summary = demo
    plain = load_campaign(demo_campaign_path()).model_copy(update={"experiments": []})
    # the same campaign without experiments compiles as many layouts: variants are branches
    assert summary["layouts_used"] <= 2
    assert build_campaign(plain, BuildOptions(out=tmp_path / "o", limit=300))["layouts_used"] <= 2


@pytest.mark.slow  # renders every variant
def test_render_any_variant_for_a_designer() -> None:
    campaign = load_campaign(demo_campaign_path())
    b = render_profile(campaign, "C000001", variants={"subject_test": "B"})
    a = render_profile(campaign, "C000001", variants={"subject_test": "A"})
    assert "3 picks" in b.subject and "3 picks" not in a.subject
    result = runner.invoke(
        app, ["render", "--profile", "C000001", "--variant", "offer_test=free_shipping", "--text"]
    )
    assert result.exit_code == 0, result.output
    variants_line = next(x for x in result.stdout.splitlines() if x.startswith("Variants:"))
    assert "offer_test=free_shipping" in variants_line and "subject_test=" in variants_line


@pytest.mark.slow
def test_a_preview_is_the_email_the_build_wrote(demo: tuple[Path, dict[str, Any]]) -> None:
    """render --profile gives the build's variants, segments, subject, HTML and text;
    a held-out recipient is refused; a duplicated id is the row the build rendered."""
    out, _ = demo
    campaign = load_campaign(demo_campaign_path())
    entries = manifest(out)
    sent = {e["id"]: e for e in entries if not e["holdout"]}
    combos: dict[tuple[str, ...], str] = {}
    for e in sent.values():
        combos.setdefault(tuple(sorted(e["variants"].values())), e["id"])
    duplicated = "C000022"  # its row 2339 repeats the id: rejected as a duplicate
    for recipient in [*combos.values(), duplicated]:
        entry, email = sent[recipient], render_profile(campaign, recipient)
        assert dict(email.variants) == entry["variants"]
        assert list(email.segments) == entry["segments"] and email.subject == entry["subject"]
        assert email.html == (out / entry["html"]).read_text(encoding="utf-8")
        assert email.text == (out / entry["text"]).read_text(encoding="utf-8")
    held = next(e for e in entries if e["holdout"])
    with pytest.raises(ProfileDataError, match="holdout of experiment 'offer_test'") as caught:
        render_profile(campaign, held["id"])
    assert "--variant offer_test=" in str(caught.value)
    forced = render_profile(campaign, held["id"], variants={"offer_test": "control"})
    assert forced.variants["offer_test"] == "control"


@pytest.mark.slow
def test_sample_then_winner_covers_everyone_once(tmp_path: Path) -> None:
    campaign = load_campaign(demo_campaign_path())
    first = tmp_path / "test"
    test_run = build_campaign(campaign, BuildOptions(out=first, sample=0.2))
    tested = manifest(first)
    assert 0.12 < (len(tested) / (test_run["input_rows"] - test_run["rejected"])) < 0.28
    assert test_run["not_sampled"] > 0
    second = tmp_path / "winner"
    result = runner.invoke(
        app,
        [
            "build",
            "--out",
            str(second),
            "--quiet",
            "--winner",
            "subject_test=B",
            "--exclude",
            str(first / "manifest.jsonl"),
        ],
    )
    assert result.exit_code == 0, result.output
    rest = manifest(second)
    summary = json.loads((second / "summary.json").read_text())
    assert summary["excluded"] == len(tested)
    assert not {e["id"] for e in tested} & {e["id"] for e in rest}
    assert all(e["variants"]["subject_test"] == "B" for e in rest if not e["holdout"])
    everyone = {e["id"] for e in tested} | {e["id"] for e in rest}
    full = manifest_ids_of_full_build(tmp_path)
    assert everyone == full


def manifest_ids_of_full_build(tmp_path: Path) -> set[str]:
    out = tmp_path / "full"
    build_campaign(load_campaign(demo_campaign_path()), BuildOptions(out=out))
    return {e["id"] for e in manifest(out)}


def test_unknown_winner_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no variant 'Z'"):
        build_campaign(
            load_campaign(demo_campaign_path()),
            BuildOptions(out=tmp_path / "o", winner={"subject_test": "Z"}),
        )


def test_ab_report_cli_on_the_demo_results(
    demo: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out, _ = demo
    results = demo_campaign_path().parent / "results.csv"
    page = tmp_path / "report.html"
    result = runner.invoke(
        app,
        [
            "ab",
            "report",
            str(results),
            "--manifest",
            str(out / "manifest.jsonl"),
            "--html",
            str(page),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "subject_test: winner: B" in result.stdout
    assert "offer_test" in result.stdout
    assert "<svg" in page.read_text()


def test_ab_report_reports_unknown_ids(demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, _ = demo
    results = tmp_path / "r.csv"
    lines = (demo_campaign_path().parent / "results.csv").read_text().splitlines()
    results.write_text("\n".join(lines + ["NOT-A-RECIPIENT,1,1,1,10.0"]) + "\n")
    result = runner.invoke(
        app,
        [
            "ab",
            "report",
            str(results),
            "--manifest",
            str(out / "manifest.jsonl"),
            "--experiment",
            "subject_test",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 result ids are not in the manifest" in result.stderr


def test_ab_report_flags_sample_ratio_mismatch_on_a_skewed_manifest(
    demo: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out, _ = demo
    skewed = tmp_path / "skewed"
    skewed.mkdir()
    (skewed / "summary.json").write_text((out / "summary.json").read_text())
    kept = []
    b_seen = 0
    for entry in manifest(out):
        if entry["variants"]["subject_test"] == "B":
            b_seen += 1
            if b_seen % 3:  # lose two of every three B recipients, as a broken pipeline would
                continue
        kept.append(json.dumps(entry))
    (skewed / "manifest.jsonl").write_text("\n".join(kept) + "\n")
    results = demo_campaign_path().parent / "results.csv"
    result = runner.invoke(
        app,
        [
            "ab",
            "report",
            str(results),
            "--manifest",
            str(skewed / "manifest.jsonl"),
            "--experiment",
            "subject_test",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "sample ratio mismatch: do not trust" in result.stdout


@pytest.mark.slow
def test_a_segment_preview_is_its_first_recipient(demo: tuple[Path, dict[str, Any]]) -> None:
    out, _ = demo
    campaign = load_campaign(demo_campaign_path())
    sent = [e for e in manifest(out) if not e["holdout"]]  # in row order
    for segment in ("vip", "cart_abandoner", "new_subscriber"):
        first = next(e for e in sent if segment in e["segments"])
        email = render_segment(campaign, segment)
        assert email.id == first["id"] and email.html == (out / first["html"]).read_text()
    with pytest.raises(ConfigError, match="unknown segment 'nope'") as caught:
        render_segment(campaign, "nope")
    assert "vip" in str(caught.value)  # the hint lists the campaign's segments
    result = runner.invoke(app, ["render", "--segment", "lapsed", "--text"])
    assert result.exit_code == 0 and "Segments: " in result.stdout and "lapsed" in result.stdout
    neither = runner.invoke(app, ["render"])
    assert neither.exit_code == 2 and "--profile ID or --segment NAME" in neither.output


def test_render_refuses_a_forced_variant_that_does_not_exist() -> None:
    wrong_arm = runner.invoke(
        app, ["render", "--profile", "C000001", "--variant", "subject_test=Z"]
    )
    assert wrong_arm.exit_code == 2, wrong_arm.output
    assert "experiment 'subject_test' has no variant 'Z'" in wrong_arm.output
    assert "A, B" in wrong_arm.output and "Traceback" not in wrong_arm.output
    unknown = runner.invoke(app, ["render", "--profile", "C000001", "--variant", "nosuch=B"])
    assert unknown.exit_code == 2, unknown.output
    assert "no experiment 'nosuch'" in unknown.output
    assert "subject_test: A, B" in unknown.output and "offer_test: control, free_shipping" in (
        unknown.output
    )
