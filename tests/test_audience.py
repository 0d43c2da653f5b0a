"""The audience stage: documents, percentiles, derived fields, clusters, drift, in builds.

Most tests use ``tests/data/audience``: 40 profiles ``p01``..``p40`` (total_spent
25 x n, ``p01``-``p04`` signed up two days ago, ``p05`` with an exported cart,
``p40`` named Zed) and hand-made events (an open n days ago for ``pNN``, a
purchase for odd n, carts for ``p05``-``p08``, three bad rows). The folder is
copied first: builds write the cluster model next to the campaign.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs
from typer.testing import CliRunner

from cli import app
from renderer import BuildOptions, build_campaign, load_campaign, render_profile
from renderer.specs import audience_spec, schema_of
from segments.audience.document import (
    derive_audience,
    parse_segment_document,
    resolve_percentiles,
)
from segments.audience.prepass import prepare_audience
from segments.errors import AudienceWarningError, ConfigError, SegmentRuleError
from segments.features.derived import DerivedFields
from segments.yamlsrc import load_yaml_text
from tests.conftest import AS_OF, DATA
from tests.test_build import tree_digest

runner = CliRunner()
MINI = DATA / "audience"


def copy_mini(target: Path) -> Path:
    shutil.copytree(MINI, target)
    return target / "campaign.yaml"


def manifest(out: Path) -> dict[str, dict[str, Any]]:
    lines = (out / "manifest.jsonl").read_text().splitlines()
    return {entry["id"]: entry for entry in map(json.loads, lines)}


def email_text(out: Path, entry: dict[str, Any]) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", (out / entry["html"]).read_text()).split())


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    """The mini campaign built once: (campaign file, output folder, summary)."""
    campaign = copy_mini(tmp_path_factory.mktemp("mini") / "campaign")
    out = campaign.parent / "out"
    summary = build_campaign(load_campaign(campaign), BuildOptions(out=out))
    return campaign, out, summary


# --- the segments document ------------------------------------------------------------


DOCUMENT = """\
segments:
  rich: {field: total_spent, op: gte, value: p75}
  span: {field: total_spent, op: between, value: [p25, p75]}
  code: {field: plan, op: eq, value: p75}
exclusive:
  tier: [rich, span]
min_size: 2%
clusters:
  - {name: c, features: [total_spent], k: 2}
"""


def test_document_parses_every_key() -> None:
    document = parse_segment_document(load_yaml_text(DOCUMENT, "s.yaml"))
    assert document.file == "s.yaml"
    assert document.segment_names == ["rich", "span", "code"]
    assert [g.name for g in document.exclusive] == ["tier"]
    assert str(document.min_sizes.default) == "2%"
    assert [c.name for c in document.clusters] == ["c"]
    assert document.percentile_fields() == {"total_spent", "plan"}
    assert document.needs_population
    bare = parse_segment_document(load_yaml_text("rich: {field: x, op: exists}\n", "b.yaml"))
    assert bare.segment_names == ["rich"] and not bare.needs_population


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("segments: {}\nextra: 1\n", 2, "unknown top-level key 'extra'"),
        ("segments: {}\nclusters:\n  - name: c\n    features: []\n", 4, "clusters[0].features"),
        ("segments: {}\nclusters:\n  - {name: c, features: [a], kk: 3}\n", 3, "clusters[0].kk"),
        ("segments: {a: {field: x, op: exists}}\nmin_size: lots\n", 2, "bad min_size"),
        ("segments: [1]\n", 1, "must be a mapping"),
    ],
)
def test_document_errors_name_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(SegmentRuleError) as info:
        parse_segment_document(load_yaml_text(text, "s.yaml"))
    assert info.value.file == "s.yaml" and info.value.line == line
    assert message in str(info.value)


# --- percentile thresholds ---------------------------------------------------------------


def test_percentile_thresholds_resolve_against_the_population() -> None:
    document = parse_segment_document(load_yaml_text(DOCUMENT, "s.yaml"))
    population = pd.DataFrame({"total_spent": 25.0 * np.arange(1, 41), "plan": "basic"})
    rules, found = resolve_percentiles(document, population)
    # numpy's linear method: position 0.75 * 39 = 29.25, between 750 and 775
    assert rules["rich"]["value"] == 756.25
    assert rules["span"]["value"] == [268.75, 756.25]
    assert rules["code"]["value"] == "p75"  # a text field: p75 stays a literal string
    assert [(t.segment, t.text, t.value) for t in found] == [
        ("rich", "p75", 756.25),
        ("span", "p25", 268.75),
        ("span", "p75", 756.25),
    ]
    assert rules["rich"].line == document.definitions["rich"].line  # lines survive
    assert str(found[0]) == "p75 = 756.2"


def test_percentile_of_a_field_without_values_matches_nobody() -> None:
    document = parse_segment_document(load_yaml_text(DOCUMENT, "s.yaml"))
    population = pd.DataFrame({"total_spent": [np.nan, np.nan], "plan": ["a", "b"]})
    rules, found = resolve_percentiles(document, population)
    assert rules["rich"]["value"] == 0.0 and str(found[0]) == "p75 = no values"


def test_percentile_out_of_range_names_the_line() -> None:
    text = "segments:\n  a:\n    {field: total_spent, op: gte, value: p150}\n"
    document = parse_segment_document(load_yaml_text(text, "s.yaml"))
    with pytest.raises(SegmentRuleError) as info:
        resolve_percentiles(document, pd.DataFrame({"total_spent": [1.0, 2.0]}))
    assert info.value.line == 3 and info.value.file == "s.yaml"


# --- derived fields --------------------------------------------------------------------------


def test_derived_fields_fill_only_what_the_profile_lacks() -> None:
    derived = DerivedFields(
        pd.DataFrame(
            {"score": [1.0, 2.0], "cart_items": [[{"name": "event"}], None]},
            index=pd.Index(["a", "b"]),
        ),
        {"score": "float", "cart_items": "list"},
    )
    profiles = pd.DataFrame(
        {"id": ["b", "a", "zz"], "cart_items": [[{"name": "profile"}], None, None]}
    )
    joined = derived.join(profiles, "id")
    assert joined["score"].tolist()[:2] == [2.0, 1.0] and np.isnan(joined["score"].iloc[2])
    assert joined["cart_items"].tolist() == [[{"name": "profile"}], [{"name": "event"}], None]
    assert "score" not in profiles  # the caller's frame is not changed
    records = derived.fill_records([{"id": "a", "score": 9.0}, {"id": "zz"}], "id")
    assert records == [{"id": "a", "score": 9.0, "cart_items": [{"name": "event"}]}, {"id": "zz"}]


def test_compact_derived_fields_join_and_fill_like_the_plain_ones() -> None:
    frame = pd.DataFrame(
        {
            "stage": pd.array(["new", None, "lapsed", "new"], dtype="str"),
            "score": [1.0, 2.0, np.nan, 4.0],
            "cart_items": [[{"name": "x"}], None, None, None],
        },
        index=pd.Index(["a", "b", "c", "d"], dtype="str"),
    )
    types = {"stage": "string", "score": "float", "cart_items": "list"}
    plain, compact = DerivedFields(frame, types), DerivedFields.compact(frame, types)
    assert list(compact.text) == ["stage"] and compact.frame["stage"].dtype == "category"
    assert frame["stage"].dtype == "str"  # the caller's frame is not changed
    chunk = pd.DataFrame({"id": ["d", "zz", "b", "a"], "stage": [None, None, "own", None]})
    pd.testing.assert_frame_equal(compact.join(chunk, "id"), plain.join(chunk, "id"))
    records = [{"id": "c"}, {"id": "a", "stage": "mine"}, {"id": "zz"}, {"id": "b"}]
    assert compact.fill_records(records, "id") == plain.fill_records(records, "id")


def test_population_without_text_fields_keeps_numbers_and_cluster_labels() -> None:
    population = pd.DataFrame({"id": [f"r{i}" for i in range(60)], "x": np.arange(60.0)})
    population["y"] = population["x"] % 7
    text = "segments: {}\nclusters:\n  - {name: blob, features: [x, y], k: 3}\n"
    document = parse_segment_document(load_yaml_text(text, "s.yaml"))
    events = pd.DataFrame(
        {
            "profile_id": ["r1", "r2"],
            "type": ["purchase", "view"],
            "timestamp": pd.to_datetime(["2026-11-01", "2026-11-19"], utc=True),
            "value": [10.0, np.nan],
            "category": [None, "hats"],
        }
    )
    full, lean = (
        derive_audience(
            population, document, id_field="id", as_of=AS_OF, events=events, text_fields=keep
        )
        for keep in (True, False)
    )
    dropped = [c for c in full.population.columns if c not in lean.population.columns]
    # the text-valued derived fields but the cluster labels (a column with no value at
    # all, like repeated_product_id here, is not text-valued)
    assert dropped == [c for c in full.derived.text if c != "blob"]
    assert {"rfm_segment", "lifecycle_stage", "last_viewed_category"} <= set(dropped)
    pd.testing.assert_frame_equal(lean.population, full.population.drop(columns=dropped))
    assert lean.population["blob"].tolist() == full.population["blob"].tolist()
    pd.testing.assert_frame_equal(lean.derived.frame, full.derived.frame)


def test_k_selection_finds_the_known_number_of_clusters() -> None:
    points, _ = make_blobs(
        n_samples=450, centers=[[0, 0], [8, 8], [-8, 8]], cluster_std=1.0, random_state=7
    )
    population = pd.DataFrame({"id": [f"r{i}" for i in range(450)], "x": points[:, 0]})
    population["y"] = points[:, 1]
    text = "segments: {}\nclusters:\n  - {name: blob, features: [x, y], k_range: [2, 6]}\n"
    document = parse_segment_document(load_yaml_text(text, "s.yaml"))
    audience = derive_audience(population, document, id_field="id", as_of=AS_OF)
    model = audience.models["blob"]
    assert model.k == 3 and audience.fitted == ["blob"]
    assert [m.k for m in model.metrics] == [2, 3, 4, 5, 6]
    assert max(model.metrics, key=lambda m: m.silhouette or -1).k == 3
    assert sorted(audience.derived.frame["blob"].value_counts()) == [150, 150, 150]


# --- builds -----------------------------------------------------------------------------------


def test_features_are_fields_in_rules_and_templates(
    mini: tuple[Path, Path, dict[str, Any]],
) -> None:
    _, out, summary = mini
    segments = summary["audience"]["segments"]
    # p31..p40 spend at least p75 = 756.25; p05..p29 active (p01..p04 are new);
    # p05, p06 and p07 (exactly 30 minutes ago) abandoned a cart, p08 (exactly 24 hours) not
    assert segments == {
        "big_spender": 10,
        "active": 25,
        "carted": 3,
        "tiny": 1,
        "high_cluster": segments["high_cluster"],
    }
    assert summary["audience"]["exclusive"] == {
        "journey": {"carted": 3, "big_spender": 10, "active": 22, "other": 5}
    }
    assert summary["audience"]["percentiles"][0]["value"] == 756.25
    entries = manifest(out)
    assert entries["p06"]["segments"][-1] == "journey:carted"
    assert "journey:big_spender" in entries["p40"]["segments"]
    assert "stage=new journey=other" in email_text(out, entries["p01"])
    assert "cart: [Kettle x1]" in email_text(out, entries["p06"])  # from the events
    assert "cart: [Profile Cart Item x1]" in email_text(out, entries["p05"])  # profile wins
    assert "stage=at_risk" in email_text(out, entries["p30"])  # last activity exactly 30 days


def test_rejected_events_are_written_with_reasons(mini: tuple[Path, Path, dict[str, Any]]) -> None:
    _, out, summary = mini
    lines = [json.loads(x) for x in (out / "events_errors.jsonl").read_text().splitlines()]
    assert [(x["profile_id"], x["field"], x["reason"]) for x in lines] == [
        ("p99", "profile_id", "not in the profile source"),
        ("p10", "timestamp", "not an ISO 8601 timestamp"),
        ("p11", "type", "missing"),
    ]
    assert [x["row"] for x in lines] == sorted(x["row"] for x in lines)
    assert summary["events"]["rows"] == 67 and summary["events"]["rejected"] == 3
    assert sum(summary["events"]["rejected_by_reason"].values()) == 3


def test_small_segments_warn_and_strict_fails(
    mini: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    campaign, out, summary = mini
    # min_size is 10% (4 of 40) but 2 for carted: only tiny (1 member) is too small
    assert summary["warnings"] == [
        "segment 'tiny' has 1 members (2.5%), below its minimum size 10% (4 of 40)"
    ]
    before = tree_digest(out)
    with pytest.raises(AudienceWarningError, match="1 warning"):
        build_campaign(load_campaign(campaign), BuildOptions(out=out, strict=True))
    assert tree_digest(out) == before  # nothing written
    result = runner.invoke(app, ["build", str(campaign), "--out", str(out), "--quiet", "--strict"])
    assert result.exit_code == 7
    assert "segment 'tiny' has 1 members" in result.stderr
    plain = runner.invoke(app, ["build", str(campaign), "--out", str(tmp_path / "o"), "--quiet"])
    assert plain.exit_code == 0 and "warning: segment 'tiny'" in plain.stderr


def test_clusters_are_stable_across_builds_without_refit(
    mini: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    campaign, out, _ = mini
    model_file = campaign.parent / "mini.clusters.json"
    saved = model_file.read_bytes()
    os.utime(model_file, ns=(1_000_000_000, 1_000_000_000))
    again = tmp_path / "again"
    build_campaign(load_campaign(campaign), BuildOptions(out=again))
    assert model_file.stat().st_mtime_ns == 1_000_000_000  # not rewritten
    labels = {i: e["segments"] for i, e in manifest(out).items()}
    assert {i: e["segments"] for i, e in manifest(again).items()} == labels
    build_campaign(load_campaign(campaign), BuildOptions(out=tmp_path / "refit", refit=True))
    assert model_file.stat().st_mtime_ns != 1_000_000_000  # rewritten on --refit ...
    assert model_file.read_bytes() == saved  # ... with the same seeded fit


def test_a_changed_cluster_spec_asks_for_refit(tmp_path: Path) -> None:
    campaign = copy_mini(tmp_path / "c")
    build_campaign(load_campaign(campaign), BuildOptions(out=tmp_path / "o1", limit=5))
    segments = campaign.parent / "segments.yaml"
    segments.write_text(
        segments.read_text().replace("total_spent, engagement_score", "total_spent")
    )
    with pytest.raises(ConfigError, match="stale: its features differ") as info:
        build_campaign(load_campaign(campaign), BuildOptions(out=tmp_path / "o2", limit=5))
    assert "--refit" in str(info.value)
    build_campaign(load_campaign(campaign), BuildOptions(out=tmp_path / "o3", limit=5, refit=True))


def test_rebuild_with_audience_files_is_byte_identical(
    mini: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    campaign, out, _ = mini
    again = tmp_path / "again"
    build_campaign(load_campaign(campaign), BuildOptions(out=again))
    assert tree_digest(again) == tree_digest(out)
    saved = json.loads((out / "feature_distributions.json").read_text())
    assert {"total_spent", "engagement_score", "frequency", "cart_abandoned"} <= set(
        saved["columns"]
    )


def test_drift_warns_for_shifted_rule_features(
    mini: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    _, out, _ = mini
    campaign = copy_mini(tmp_path / "c")
    same = build_campaign(
        load_campaign(campaign), BuildOptions(out=tmp_path / "same", baseline=out)
    )
    assert same["drift"]["shifted"] == [] and "total_spent" in same["drift"]["compared"]
    profiles = campaign.parent / "profiles.csv"
    rows = profiles.read_text().splitlines()
    shifted = [rows[0]] + [
        re.sub(r",(\d+)\.00,", lambda m: f",{int(m[1]) * 4}.00,", r) for r in rows[1:]
    ]
    profiles.write_text("\n".join(shifted) + "\n")
    summary = build_campaign(
        load_campaign(campaign), BuildOptions(out=tmp_path / "shifted", baseline=out, refit=True)
    )
    assert [s["field"] for s in summary["drift"]["shifted"]] == ["total_spent"]
    assert "distribution of 'total_spent' shifted" in " ".join(summary["warnings"])
    with pytest.raises(AudienceWarningError, match="total_spent"):
        build_campaign(
            load_campaign(campaign),
            BuildOptions(out=tmp_path / "strict", baseline=out, strict=True),
        )


def test_drift_baseline_from_the_campaign_file(
    mini: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    _, out, _ = mini
    campaign = copy_mini(tmp_path / "c")
    text = campaign.read_text() + f"drift: {{baseline: {out}, threshold: 0.2}}\n"
    campaign.write_text(text)
    summary = build_campaign(load_campaign(campaign), BuildOptions(out=tmp_path / "o"))
    assert summary["drift"]["threshold"] == 0.2 and summary["drift"]["shifted"] == []
    missing = tmp_path / "nothing-here"
    missing.mkdir()
    with pytest.raises(ConfigError, match="no readable feature_distributions.json"):
        build_campaign(load_campaign(campaign), BuildOptions(out=tmp_path / "o2", baseline=missing))


@pytest.mark.parametrize(
    ("addition", "key", "message"),
    [
        ("features: {half_life_days: 30}\n", "features", "need an events source"),
        ("drift: {threshold: 2}\n", "drift", "drift.threshold"),
        ("events: {path: e.csv, kind: x}\n", "events", "events.kind"),
    ],
)
def test_campaign_keys_are_validated_with_lines(
    tmp_path: Path, addition: str, key: str, message: str
) -> None:
    campaign = copy_mini(tmp_path / "c")
    text = campaign.read_text()
    if key != "drift":
        text = text.replace("events: events.csv\n", "")
    campaign.write_text(text + addition)
    with pytest.raises(ConfigError) as info:
        load_campaign(campaign)
    line = next(i for i, t in enumerate(campaign.read_text().splitlines(), 1) if t.startswith(key))
    assert info.value.line == line and message in str(info.value)


def test_segment_file_errors_point_into_the_segments_file(tmp_path: Path) -> None:
    campaign = copy_mini(tmp_path / "c")
    segments = campaign.parent / "segments.yaml"
    segments.write_text(
        segments.read_text().replace("[carted, big_spender, active]", "[carted, nope]")
    )
    with pytest.raises(SegmentRuleError) as info:
        build_campaign(load_campaign(campaign), BuildOptions(out=tmp_path / "o"))
    assert info.value.file == str(segments)
    lines = segments.read_text().splitlines()
    assert info.value.line == next(i for i, t in enumerate(lines, 1) if "nope" in t)


def test_an_exclusive_group_may_not_shadow_a_profile_field(tmp_path: Path) -> None:
    campaign = copy_mini(tmp_path / "c")
    segments = campaign.parent / "segments.yaml"
    segments.write_text(segments.read_text().replace("  journey:", "  first_name:"))
    with pytest.raises(SegmentRuleError, match="has the name of a profile field"):
        build_campaign(load_campaign(campaign), BuildOptions(out=tmp_path / "o"))


def test_preview_sees_the_same_features_as_the_build(
    mini: tuple[Path, Path, dict[str, Any]],
) -> None:
    campaign, out, _ = mini
    email = render_profile(load_campaign(campaign), "p06")
    assert email.segments == tuple(manifest(out)["p06"]["segments"])
    assert "Kettle x1" in email.html


def test_frame_and_profile_evaluation_agree_on_the_audience(
    mini: tuple[Path, Path, dict[str, Any]],
) -> None:
    from segments.audience.prepass import audience_segments
    from segments.profiles.schema import to_records

    campaign_file, _, _ = mini
    campaign = load_campaign(campaign_file)
    schema = schema_of(campaign)
    assert schema is not None
    audience = prepare_audience(audience_spec(campaign, schema), AS_OF)
    segments = audience_segments(schema, audience, file=campaign.file)
    population = audience.population
    assert population is not None
    frame = segments.evaluate_frame(population, AS_OF)
    records = to_records(population, audience.field_types(schema))
    for record, (_, row) in zip(records, frame.iterrows(), strict=True):
        assert segments.evaluate_profile(record, AS_OF) == row.to_dict()


def test_inline_segments_document_in_the_campaign(tmp_path: Path) -> None:
    campaign = copy_mini(tmp_path / "c")
    inline = "\n".join(
        "  " + line if line else line
        for line in (campaign.parent / "segments.yaml").read_text().splitlines()
    )
    text = campaign.read_text().replace("segments: segments.yaml\n", f"segments:\n{inline}\n")
    campaign.write_text(text)
    summary = build_campaign(load_campaign(campaign), BuildOptions(out=tmp_path / "o"))
    assert summary["audience"]["exclusive"]["journey"]["carted"] == 3
    campaign.write_text(text.replace("[carted, big_spender, active]", "[carted, nope]"))
    with pytest.raises(SegmentRuleError) as info:
        build_campaign(load_campaign(campaign), BuildOptions(out=tmp_path / "o2"))
    assert info.value.file == str(campaign)
    lines = campaign.read_text().splitlines()
    assert info.value.line == next(i for i, t in enumerate(lines, 1) if "nope" in t)
