"""The "popular in your segment" fallback in a build (segments/recommend/groups.py):
a cold-start recipient gets its segment's popular items before the bestsellers.

The campaign is made by hand: gold members bought A1 (twice) and A2, silver members
B1 (three times) and B2, so the bestsellers are B1, A1, A2, B2 while gold's favourites
are A1, A2 and silver's B1, B2. ``g9``, ``s9`` and ``n9`` have no events (cold start);
``n9`` is in no segment.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from renderer import BuildOptions, build_campaign, load_campaign, render_profile
from segments.audience.document import parse_segment_document
from segments.recommend.groups import choose_groups
from tests.test_build import tree_digest
from tests.test_resume import kill_build, resume

runner = CliRunner()
PROFILES = [("g1", "gold"), ("g2", "gold"), ("s1", "silver"), ("s2", "silver")]
PROFILES += [("s3", "silver"), ("g9", "gold"), ("s9", "silver"), ("n9", "")]
PURCHASES = [("g1", "A1"), ("g2", "A1"), ("g1", "A2")]
PURCHASES += [("s1", "B1"), ("s2", "B1"), ("s3", "B1"), ("s1", "B2")]
CAMPAIGN = """\
name: recseg
template: t.mjml
as_of: "2026-11-20T09:00:00Z"
subject: "Hi"
profiles: {path: profiles.csv, chunk_size: 3}
schema: {id: string, email: string, tier: string}
paths: {templates: [templates], blocks: [blocks]}
events: events.csv
segments:
  segments:
    gold: {field: tier, op: eq, value: gold}
    silver: {field: tier, op: eq, value: silver}
  min_size: 0
"""
EXCLUSIVE = """\
  exclusive:
    level: [gold, silver]
"""
TEMPLATE = (
    "<mjml><mj-body><mj-section><mj-column><mj-text>"
    "{% for p in recommendations %}[{{ p.sku }}|{{ p.reason }}|{{ p.source }}]{% endfor %}"
    "</mj-text></mj-column></mj-section></mj-body></mjml>\n"
)
GOLD = [("A1", "segment"), ("A2", "segment"), ("B1", "popular")]
SILVER = [("B1", "segment"), ("B2", "segment"), ("A1", "popular")]
NONE = [("B1", "popular"), ("A1", "popular"), ("A2", "popular")]


def make_campaign(
    folder: Path, *, exclusive: bool = True, settings: str = "", others: int = 0
) -> Path:
    """The campaign (module docstring), with ``others`` more cold-start profiles in no
    segment (more chunks of 3)."""
    (folder / "templates").mkdir(parents=True)
    (folder / "blocks").mkdir()
    (folder / "templates" / "t.mjml").write_text(TEMPLATE, encoding="utf-8")
    profiles = PROFILES + [(f"o{number}", "") for number in range(others)]
    rows = "".join(f"{i},{i}@example.com,{tier}\n" for i, tier in profiles)
    (folder / "profiles.csv").write_text("id,email,tier\n" + rows, encoding="utf-8")
    events = "".join(
        f"{who},purchase,2026-11-0{day % 9 + 1}T10:00:00Z,{sku}\n"
        for day, (who, sku) in enumerate(PURCHASES)
    )
    (folder / "events.csv").write_text(
        "profile_id,type,timestamp,product_id\n" + events, encoding="utf-8"
    )
    catalog = "".join(
        f"{sku},Item {sku},10.00,USD,https://x.example/{sku}.jpg,https://x.example/{sku},c,true\n"
        for sku in ("A1", "A2", "B1", "B2")
    )
    header = "sku,name,price,currency,image_url,url,category,in_stock\n"
    (folder / "catalog.csv").write_text(header + catalog, encoding="utf-8")
    text = CAMPAIGN + (EXCLUSIVE if exclusive else "")
    text += f"recommendations: {{catalog: catalog.csv, n: 3{settings}}}\n"
    (folder / "campaign.yaml").write_text(text, encoding="utf-8")
    return folder / "campaign.yaml"


def picks(html: str) -> list[tuple[str, str]]:
    """(sku, source) of each pick the email shows; every reason matches its source."""
    found = re.findall(r"\[(\w+)\|([^|\]]+)\|(\w+)\]", html)
    reasons = {"segment": "popular in your segment", "popular": "a bestseller"}
    for _, reason, source in found:
        assert reasons.get(source, reason) == reason
    return [(sku, source) for sku, _, source in found]


def emails(out: Path) -> dict[str, list[tuple[str, str]]]:
    lines = (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines]
    return {e["id"]: picks((out / e["html"]).read_text(encoding="utf-8")) for e in entries}


def test_cold_start_recipients_get_their_segments_favourites_before_bestsellers(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    build_campaign(load_campaign(make_campaign(tmp_path / "c")), BuildOptions(out=out))
    built = emails(out)
    assert (built["g9"], built["s9"], built["n9"]) == (GOLD, SILVER, NONE)
    # a recipient with history: similar items first, then its segment's (none left here)
    assert built["s3"][0] == ("B2", "similar")


def test_without_an_exclusive_group_the_first_matching_segment_counts(tmp_path: Path) -> None:
    out = tmp_path / "out"
    campaign = make_campaign(tmp_path / "c", exclusive=False)
    build_campaign(load_campaign(campaign), BuildOptions(out=out))
    built = emails(out)
    assert (built["g9"], built["s9"], built["n9"]) == (GOLD, SILVER, NONE)


def test_segment_fallback_false_gives_bestsellers_only(tmp_path: Path) -> None:
    out = tmp_path / "out"
    campaign = make_campaign(tmp_path / "c", settings=", segment_fallback: false")
    build_campaign(load_campaign(campaign), BuildOptions(out=out))
    built = emails(out)
    assert built["g9"] == built["s9"] == built["n9"] == NONE


def test_segment_fallback_naming_no_group_is_a_located_error(tmp_path: Path) -> None:
    campaign = make_campaign(tmp_path / "c", settings=", segment_fallback: tiers")
    result = runner.invoke(app, ["build", str(campaign), "--out", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 2, result.output
    error = " ".join(result.stderr.split())
    assert "segment_fallback names no exclusive group or cluster: 'tiers'" in error
    assert "name one of level" in error and "Traceback" not in result.output


def test_the_lists_ignore_limit_and_previews_show_the_builds(tmp_path: Path) -> None:
    """A segment's favourites are over every valid profile, not a build's recipients: the
    same lists with --limit, and in ``render --profile`` (a preview's own pre-pass)."""
    campaign = make_campaign(tmp_path / "c")
    out = tmp_path / "out"
    build_campaign(load_campaign(campaign), BuildOptions(out=out, limit=7))
    built = emails(out)
    assert (built["g9"], built["s9"]) == (GOLD, SILVER)  # n9, row 8, is past the limit
    for recipient, expected in (("g9", GOLD), ("n9", NONE)):
        shown = render_profile(load_campaign(campaign), recipient)
        assert picks(shown.html) == expected


@pytest.mark.slow  # five builds, one killed, one on a Dask cluster
def test_workers_dask_and_a_resumed_build_give_the_same_bytes(tmp_path: Path) -> None:
    campaign = make_campaign(tmp_path / "c", others=60)  # 23 chunks of 3 profiles
    built = {}
    for name, workers, executor in (("one", 1, "local"), ("two", 2, "local"), ("dask", 2, "dask")):
        out = tmp_path / name
        options = BuildOptions(out=out, workers=workers, executor=executor)
        build_campaign(load_campaign(campaign), options)
        built[name] = tree_digest(out)
    assert built["one"] == built["two"] == built["dask"]
    assert emails(tmp_path / "dask")["s9"] == SILVER
    killed = tmp_path / "killed"
    kill_build(campaign, killed, 2)
    assert "resumed the killed build" in resume(campaign, killed)
    assert tree_digest(killed) == built["one"]


def test_segment_fallback_chooses_a_group_or_a_cluster() -> None:
    document = parse_segment_document(
        {
            "segments": {"gold": {"field": "tier", "op": "eq", "value": "gold"}},
            "exclusive": {"level": ["gold"]},
            "clusters": [{"name": "value", "features": ["frequency"], "k": 2}],
        }
    )
    assert choose_groups(False, document) is None
    assert choose_groups(True, parse_segment_document({})) is None  # no segment to be in
    default = choose_groups(True, document)
    assert default is not None and default.group is document.exclusive[0]
    cluster = choose_groups("value", document)
    assert cluster is not None and (cluster.cluster, cluster.needs_rules) == ("value", False)
    first = choose_groups(True, parse_segment_document(document.definitions))
    assert first is not None and (first.group, first.cluster) == (None, None)
