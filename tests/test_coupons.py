"""Coupon codes (renderer/coupons.py): one code of the pool per recipient of a segment.

Builds run on small copies of the demo campaign (tests/test_resume.py's, with only
their profiles' events), whose ``coupons:`` gives each lapsed recipient a code of
``coupons.csv``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app
from renderer import BuildOptions, build_campaign, load_campaign
from renderer.coupons import read_codes
from segments.errors import ConfigError
from tests.test_build import tree_digest
from tests.test_resume import kill_build, resume, small_campaign, staging_folders

runner = CliRunner()
DEMO_LINE = "coupons: {pool: coupons.csv, segment: lapsed}"


def manifest(out: Path) -> list[dict[str, Any]]:
    lines = (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def codes_by_id(out: Path) -> dict[str, str]:
    return {e["id"]: e["coupon"] for e in manifest(out) if "coupon" in e}


def set_coupons(campaign: Path, line: str) -> None:
    text = campaign.read_text(encoding="utf-8")
    assert DEMO_LINE in text
    campaign.write_text(text.replace(DEMO_LINE, line), encoding="utf-8")


def coupons_line(campaign: Path) -> int:
    lines = campaign.read_text(encoding="utf-8").splitlines()
    return next(n for n, text in enumerate(lines, 1) if text.startswith("coupons:"))


def test_each_rendered_lapsed_recipient_gets_its_own_code_in_row_order(tmp_path: Path) -> None:
    campaign = small_campaign(tmp_path / "campaign", 150, 1000)
    out = tmp_path / "out"
    build_campaign(load_campaign(campaign), BuildOptions(out=out))
    entries = manifest(out)
    members = [e for e in entries if "lapsed" in e["segments"] and not e["holdout"]]
    assert members and any(e["holdout"] and "lapsed" in e["segments"] for e in entries)
    for entry in entries:  # non-members and held-out members: no code
        assert ("coupon" in entry) == (entry in members), entry["id"]
    pool = read_codes(campaign.parent / "coupons.csv", "code")
    assert [e["coupon"] for e in sorted(members, key=lambda e: e["row"])] == pool[: len(members)]
    for entry in members:  # the email shows it, in the text and in the promo link
        text = (out / entry["text"]).read_text(encoding="utf-8")
        assert entry["coupon"] in text and f"promo={entry['coupon']}" in text
    other = next(e for e in entries if "coupon" not in e and not e["holdout"])
    assert "WB-" not in (out / other["html"]).read_text(encoding="utf-8")


@pytest.mark.slow
def test_one_and_two_workers_give_the_same_codes(tmp_path: Path) -> None:
    """Chunks of 10 rows, rendered here or in two processes: the same codes, the same bytes
    (and the pool's first codes in row order: the same on every rebuild, see above)."""
    campaign = small_campaign(tmp_path / "campaign", rows=80, chunk_size=10)
    built = {}
    for name, workers in (("one", 1), ("two", 2)):
        out = tmp_path / name
        build_campaign(load_campaign(campaign), BuildOptions(out=out, workers=workers))
        built[name] = out
    codes = codes_by_id(built["one"])
    assert len(codes) > 20 and len(set(codes.values())) == len(codes)
    assert codes_by_id(built["two"]) == codes
    assert tree_digest(built["one"]) == tree_digest(built["two"])


def test_a_pool_too_small_stops_the_build_before_any_email(tmp_path: Path) -> None:
    campaign = small_campaign(tmp_path / "campaign", 150, 1000)
    (campaign.parent / "coupons.csv").write_text("code\nA1\nA2\nA3\n", encoding="utf-8")
    out = tmp_path / "out"
    result = runner.invoke(app, ["build", str(campaign), "--out", str(out), "-q"])
    assert result.exit_code == 2, result.output
    error = " ".join(result.stderr.split())
    assert f"campaign.yaml:{coupons_line(campaign)}" in error
    assert "has 3 unused codes" in error and "but 53 recipients need one (segment lapsed)" in error
    assert "add at least 50 codes to coupons.csv" in error
    assert not out.exists() and staging_folders(out) == []


def test_a_code_twice_in_the_pool_is_an_error_at_its_line(tmp_path: Path) -> None:
    pool = tmp_path / "codes.csv"
    pool.write_text("code,note\nA1,x\nB2,y\n\nA1,z\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        read_codes(pool, "code")
    assert (raised.value.file, raised.value.line) == (str(pool), 5)
    assert "first at line 2" in str(raised.value)
    with pytest.raises(ConfigError, match="no column 'coupon'"):
        read_codes(pool, "coupon")


def test_unknown_segment_profile_field_and_repeated_code_stop_the_cli(tmp_path: Path) -> None:
    campaign = small_campaign(tmp_path / "campaign", 20, 1000)
    out = tmp_path / "o"
    for line, message in (
        ("coupons: {pool: coupons.csv, segment: lapsd}", "no segment named 'lapsd'"),
        ("coupons: {pool: coupons.csv, segment: lapsed, field: city}", "'city' is a profile"),
    ):
        text = campaign.read_text(encoding="utf-8")
        campaign.write_text(re.sub(r"(?m)^coupons: .*$", line, text), encoding="utf-8")
        # --no-check: the block reads `coupon`, unknown once the field is named otherwise
        options = ["--out", str(out), "-q", "--no-check"]
        result = runner.invoke(app, ["build", str(campaign), *options])
        assert result.exit_code == 2 and message in result.stderr, result.stderr
        assert f"campaign.yaml:{coupons_line(campaign)}" in result.stderr
    set_coupons_line = re.sub(r"(?m)^coupons: .*$", DEMO_LINE, campaign.read_text())
    campaign.write_text(set_coupons_line, encoding="utf-8")
    (campaign.parent / "coupons.csv").write_text("code\nA1\nA1\n", encoding="utf-8")
    result = runner.invoke(app, ["build", str(campaign), "--out", str(out), "-q"])
    assert result.exit_code == 2 and "coupons.csv:3" in result.stderr
    assert not out.exists() and staging_folders(out) == []


@pytest.mark.slow  # two builds
def test_codes_of_an_earlier_manifest_are_not_given_again(tmp_path: Path) -> None:
    campaign = small_campaign(tmp_path / "campaign", 60, 1000)
    first = tmp_path / "first"
    build_campaign(load_campaign(campaign), BuildOptions(out=first))
    earlier = set(codes_by_id(first).values())
    line = f"coupons: {{pool: coupons.csv, segment: lapsed, used: {first / 'manifest.jsonl'}}}"
    set_coupons(campaign, line)
    second = tmp_path / "second"
    build_campaign(load_campaign(campaign), BuildOptions(out=second))
    later = set(codes_by_id(second).values())
    assert len(later) == len(earlier) > 0 and not later & earlier


@pytest.mark.slow  # two builds
def test_another_field_name_and_column(tmp_path: Path) -> None:
    campaign = small_campaign(tmp_path / "campaign", 60, 1000)
    (campaign.parent / "coupons.csv").write_text(
        "sku,voucher\n" + "".join(f"x,V{n:04d}\n" for n in range(100)), encoding="utf-8"
    )
    set_coupons(
        campaign, "coupons: {pool: coupons.csv, segment: lapsed, column: voucher, field: voucher}"
    )
    block = campaign.parent / "blocks" / "winback.mjml"
    block.write_text(block.read_text(encoding="utf-8").replace("coupon |", "voucher |"))
    out = tmp_path / "out"
    build_campaign(load_campaign(campaign), BuildOptions(out=out))
    entry = next(e for e in manifest(out) if "coupon" in e)
    assert entry["coupon"] == "V0000" and "V0000" in (out / entry["text"]).read_text()


@pytest.mark.slow
def test_a_killed_build_resumed_gives_no_code_twice(tmp_path: Path) -> None:
    campaign = small_campaign(tmp_path / "campaign", rows=200, chunk_size=10)
    expected = tmp_path / "ref"
    build_campaign(load_campaign(campaign), BuildOptions(out=expected, format="jsonl"))
    out = tmp_path / "out"
    kill_build(campaign, out, 3, "--format", "jsonl", "--workers", "2")
    resume(campaign, out, "--format", "jsonl")
    assert tree_digest(out) == tree_digest(expected)
    codes = list(codes_by_id(out).values())
    assert codes and len(set(codes)) == len(codes)
