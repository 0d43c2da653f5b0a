"""The preview's library layer: :class:`PreviewSession`, no HTTP.

It renders through the build's stages (forcing a variant gives what segment_chunk
gives with a preview's plan), explains, and keeps load and compile errors as located
data: the last good compile keeps serving until the file is fixed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from renderer import ConfigError, load_campaign, render_profile
from renderer.serve.session import NoEmailError, PreviewSession
from segments.batch import segment_chunk
from segments.profiles.spool import ValidatedChunk
from tests.conftest import copy_demo_campaign

ROWS = 120


@pytest.fixture
def campaign_file(tmp_path: Path) -> Path:
    return copy_demo_campaign(tmp_path / "campaign", ROWS)


@pytest.fixture
def session(campaign_file: Path) -> PreviewSession:
    return PreviewSession(campaign_file)


def test_forced_variants_are_what_segment_chunk_gives_with_a_preview_plan(
    session: PreviewSession,
) -> None:
    loaded, compiled = session.state()
    for forced in ({"offer_test": "free_shipping"}, {"subject_test": "B", "offer_test": "control"}):
        plan = compiled.runtime.segment_plan(forced, force_holdouts=True)
        for chunk in loaded.chunks:
            for position in range(0, len(chunk.valid), 7):
                alone = ValidatedChunk(chunk.valid.iloc[position : position + 1], [])
                expected = segment_chunk(alone, plan)
                got = session.batch(expected.ids[0], forced)
                assert got.variants == expected.variants
                assert got.held_out == expected.held_out
                assert got.segments == expected.segments
                assert got.records == expected.records


@pytest.mark.slow  # render_profile runs the whole audience stage per recipient
def test_render_is_render_profile(session: PreviewSession, campaign_file: Path) -> None:
    campaign = load_campaign(campaign_file)
    recipients = [r for r in session.find(limit=1000) if not r.held_out][:5]
    for recipient in recipients:
        assert session.render(recipient.id) == render_profile(campaign, recipient.id)
        forced = {"offer_test": "free_shipping"}
        assert session.render(recipient.id, forced) == render_profile(
            campaign, recipient.id, variants=forced
        )


def test_refusals_say_why(session: PreviewSession) -> None:
    with pytest.raises(NoEmailError) as unknown:
        session.render("nobody")
    assert unknown.value.refusal == "unknown"
    rejected = session.rejected()[0]
    assert rejected.id is not None
    with pytest.raises(NoEmailError) as refused:
        session.render(rejected.id)
    assert refused.value.refusal == "rejected" and rejected.reason in refused.value.message
    held = next(r for r in session.find(limit=1000) if r.held_out)
    with pytest.raises(NoEmailError) as holdout:
        session.render(held.id)
    assert holdout.value.refusal == "holdout"
    with pytest.raises(ConfigError, match="no variant 'Z'") as unknown_arm:
        session.render(held.id, {"offer_test": "Z"})
    assert unknown_arm.value.hint == "variants of offer_test: control, free_shipping"


def test_a_broken_block_is_a_located_problem_until_fixed(
    session: PreviewSession, campaign_file: Path
) -> None:
    block = campaign_file.parent / "blocks" / "winback.mjml"
    good = block.read_text(encoding="utf-8")
    recipient = next(r for r in session.find(segment="journey:lapsed") if not r.held_out)
    before = session.render(recipient.id)
    broken = good.replace("vars.winback_discount | percent)", "vars.winback_discount | percent))")
    block.write_text(broken, encoding="utf-8")  # line 10: a Jinja syntax error
    problem = session.reload([block])
    assert problem is not None and session.problem == problem
    assert problem.kind == "TemplateError" and "unexpected ')'" in problem.message
    assert problem.file == str(block) and problem.line == 10
    assert (10, broken.splitlines()[9]) in problem.excerpt
    assert session.render(recipient.id) == before  # the last good compile still serves
    block.write_text(good.replace("off your next order", "off, just for you"), encoding="utf-8")
    assert session.reload([block]) is None and session.problem is None
    assert "off, just for you" in session.render(recipient.id).html


def test_a_broken_campaign_file_is_a_located_problem(
    session: PreviewSession, campaign_file: Path
) -> None:
    good = campaign_file.read_text(encoding="utf-8")
    campaign_file.write_text(good.replace("missing_token: reject", "missing_token: maybe"))
    problem = session.reload([campaign_file])
    assert problem is not None and problem.kind == "ConfigError"
    assert problem.file == str(campaign_file) and problem.line
    assert any("missing_token: maybe" in text for _, text in problem.excerpt)
    campaign_file.write_text(good, encoding="utf-8")
    assert session.reload([campaign_file]) is None


def test_explain_lists_segments_blocks_variants_and_fallbacks(session: PreviewSession) -> None:
    recipient = next(r for r in session.find(limit=1000) if not r.held_out)
    explained = session.explain(recipient.id)
    by_name = {s["name"]: s for s in explained["segments"]}
    assert set(by_name) >= {"vip", "lapsed", "engaged"}
    assert by_name["engaged"]["conditions"][0]["percentile"] == "p75"
    assert {b["name"] for b in explained["blocks"]} >= {"winback", "vip_offer", "generic_offer"}
    offer = explained["experiments"][1]
    assert offer["key"] == "offer_test" and 0 <= offer["bucket"] < 1
    assert [s["variant"] for s in offer["split"]] == ["control", "free_shipping"]
    labels = {label for g in session.state()[1].runtime.segments.groups for label in g.labels}
    assert explained["groups"]["journey"] in labels | {None}
    assert explained["inbox"]["html_bytes"] > 0 and explained["no_email"] is None


def test_a_missing_campaign_file_raises_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no campaign file"):
        PreviewSession(tmp_path / "absent.yaml")


def test_only_the_campaigns_own_files_trigger_a_reload(
    session: PreviewSession, campaign_file: Path
) -> None:
    folder = campaign_file.parent
    for name in ("campaign.yaml", "segments.yaml", "profiles.csv", "events.csv",
                 "suppression.csv", "blocks/winback.mjml", "templates/retail_weekly.mjml"):  # fmt: skip
        assert session.is_watched(folder / name), name
    for name in ("out/manifest.jsonl", "out/summary.json", "autumn-retail-2026.clusters.json",
                 "blocks/.winback.mjml.swp", "blocks/winback.mjml~", "notes.yaml"):  # fmt: skip
        assert not session.is_watched(folder / name), name
    assert folder.resolve() in session.watched_paths()
