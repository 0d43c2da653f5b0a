"""The audience pre-pass in worker processes (``--workers``) gives exactly the serial result."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from renderer import BuildOptions, build_campaign, load_campaign
from renderer.build.pool import WorkerPool
from renderer.specs import audience_spec, schema_of
from segments.audience.prepass import prepare_audience
from segments.chunkmap import SERIAL
from segments.errors import ProfileDataError
from segments.features.eventstream import stream_events
from segments.features.scores import FeatureConfig, feature_frame
from segments.profiles.parallel import validate_chunks
from segments.profiles.read import read_chunks
from segments.profiles.schema import FieldDef, ProfileSchema
from segments.profiles.validate import ProfileValidator
from tests.conftest import copy_demo_campaign

OUTPUT_FILES = (
    "manifest.jsonl",
    "errors.jsonl",
    "events_errors.jsonl",
    "feature_distributions.json",
)


def _small_chunks(campaign_file: Path, size: int) -> Any:
    campaign = load_campaign(campaign_file)
    return campaign.model_copy(
        update={"profiles": campaign.profiles.model_copy(update={"chunk_size": size})}
    )


@pytest.mark.slow
def test_workers_give_the_same_audience_and_bytes(tmp_path: Path) -> None:
    """Events, percentiles, clusters and duplicates over several chunks: same files,
    same summary (but its timing) with one and with two workers."""
    campaign = _small_chunks(copy_demo_campaign(tmp_path / "campaign", 400), 90)
    one = build_campaign(campaign, BuildOptions(out=tmp_path / "one", workers=1))
    two = build_campaign(campaign, BuildOptions(out=tmp_path / "two", workers=2))
    assert one["audience"]["percentiles"] and one["audience"]["clusters"]
    assert one["events"]["accepted"] > 0 and one["rejected_by_reason"]["duplicate_id"] > 0
    for name in OUTPUT_FILES:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    one.pop("timing"), two.pop("timing")
    assert json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)


def _write_profiles(path: Path) -> None:
    """Duplicates across chunks of 3 rows, before and after other rejections."""
    rows = [
        "id,email,opt_in",
        "a,a@example.com,true",  # 1
        "b,b@example.com,false",  # 2 no consent: its id still counts as seen
        "c,not an address,true",  # 3 invalid email: its id does not count
        "a,a2@example.com,true",  # 4 duplicate of 1 (another chunk)
        "b,b2@example.com,true",  # 5 duplicate of 2
        "c,c@example.com,true",  # 6 first valid c
        " A ,x@example.com,false",  # 7 no consent, and a duplicate of 1? no: ids are case-kept
        "d,d@example.com,true",  # 8
        "c,c3@example.com,false",  # 9 duplicate (and no consent): duplicate_id wins
        "d,d2@example.com,true",  # 10 duplicate of 8
        "e,e@example.com,true",  # 11
        "e,e2@example.com,true",  # 12 duplicate within its chunk
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def test_duplicates_across_chunks_are_rejected_as_by_one_validator(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    _write_profiles(path)
    fields = {
        "id": FieldDef("id", "string", True, None),
        "email": FieldDef("email", "string", True, None),
        "opt_in": FieldDef("opt_in", "bool", False, False),
    }
    schema = ProfileSchema(fields, "id", "email")

    factory = partial(ProfileValidator, schema, file=str(path), consent_field="opt_in")

    serial = factory()
    expected = [serial.validate(chunk) for chunk in read_chunks(path, "csv", 3)]
    pool = WorkerPool(2, tmp_path)
    try:
        got = list(validate_chunks(read_chunks(path, "csv", 3), factory, pool))
    finally:
        pool.close()
    assert [c.rejected for c in got] == [rejected for _, rejected in expected]
    for chunk, (valid, _) in zip(got, expected, strict=True):
        pd.testing.assert_frame_equal(chunk.valid, valid)
    duplicates = [r.row for c in got for r in c.rejected if r.reason == "duplicate_id"]
    assert duplicates == [4, 5, 9, 10, 12]
    assert list(tmp_path.iterdir()) == [path]  # the pool's context files are gone


def _write_campaign(folder: Path, rule: str) -> Path:
    """A small campaign over p.csv (chunks of 3 rows) whose one segment is ``rule``."""
    (folder / "t.mjml").write_text(
        "<mjml><mj-body><mj-section><mj-column><mj-text>Hi {{ id }}</mj-text>"
        "</mj-column></mj-section></mj-body></mjml>"
    )
    (folder / "c.yaml").write_text(
        "name: dups\ntemplate: t.mjml\nsubject: Hi\npaths: {templates: ['.']}\n"
        "profiles: {path: p.csv, chunk_size: 3}\nconsent: {field: opt_in}\n"
        "schema:\n  id: {type: string, required: true}\n"
        "  email: {type: string, required: true}\n  opt_in: {type: bool, default: false}\n"
        f"  score: {{type: float}}\nsegments:\n  top: {rule}\n"
    )
    return folder / "c.yaml"


def test_a_build_rejects_cross_chunk_duplicates_identically_with_workers(tmp_path: Path) -> None:
    """Through a build with a percentile (so a pre-pass): errors.jsonl is the same."""
    _write_profiles(tmp_path / "p.csv")
    campaign = load_campaign(_write_campaign(tmp_path, "{field: score, op: gte, value: p50}"))
    errors = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        build_campaign(campaign, BuildOptions(out=out, workers=workers))
        errors.append((out / "errors.jsonl").read_bytes())
    assert errors[0] == errors[1]
    rejected = [json.loads(line) for line in errors[0].splitlines()]
    duplicates = [entry["row"] for entry in rejected if entry["reason"] == "duplicate_id"]
    assert duplicates == [4, 5, 9, 10, 12]


def test_no_prepass_without_a_whole_population_value(tmp_path: Path) -> None:
    """Without events, percentiles, clusters or drift nothing is read up front: the
    audience stage does not even open the profile file (here, a missing one)."""
    for rule, prepass in (
        ("{field: score, op: gte, value: 5}", False),
        ("{field: score, op: gte, value: p50}", True),
    ):
        campaign = load_campaign(_write_campaign(tmp_path, rule))
        schema = schema_of(campaign)
        assert schema is not None
        spec = audience_spec(campaign, schema)
        if not prepass:
            audience = prepare_audience(spec, campaign.reference_time())
            assert audience.audience is None and audience.rejections == []
        else:
            with pytest.raises(ProfileDataError, match="profile"):
                prepare_audience(spec, campaign.reference_time())


def test_only_the_first_chunk_with_columns_checks_them(tmp_path: Path) -> None:
    """JSON Lines: a later chunk without an ``email`` key has rows missing it, not a
    missing column, as when one validator reads every chunk."""
    path = tmp_path / "p.jsonl"
    lines = ['{"id": "a", "email": "a@example.com"}', '{"id": "b", "email": "b@example.com"}']
    lines += ['{"id": "c"}', '{"id": "d"}', '{"id": "a", "email": "a3@example.com"}']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    fields = {
        "id": FieldDef("id", "string", True, None),
        "email": FieldDef("email", "string", True, None),
    }
    factory = partial(ProfileValidator, ProfileSchema(fields, "id", "email"), file=str(path))
    serial = factory()
    expected = [serial.validate(chunk)[1] for chunk in read_chunks(path, "jsonl", 2)]
    got = [chunk.rejected for chunk in validate_chunks(read_chunks(path, "jsonl", 2), factory)]
    assert got == expected
    assert [(r.row, r.reason) for r in got[1]] == [(3, "missing_required"), (4, "missing_required")]
    assert [(r.row, r.reason) for r in got[2]] == [(5, "duplicate_id")]


@pytest.mark.slow
def test_events_cleaned_in_workers_fold_the_same(tmp_path: Path) -> None:
    """Shuffled rows (a second pass for engagement) and a late nanosecond timestamp (a
    restart at the finer unit): the same features and rejections through workers."""
    demo = Path(__file__).resolve().parent.parent / "demo"
    events = pd.read_csv(demo / "events.csv", dtype=str, keep_default_na=False)
    events = events.sample(n=6_000, random_state=0).reset_index(drop=True)
    row = events.index[events["timestamp"].str.endswith("Z")][-1]
    events.loc[row, "timestamp"] = events.loc[row, "timestamp"][:-1] + ".123456789Z"
    path = tmp_path / "events.csv"
    events.to_csv(path, index=False)
    profiles = pd.read_csv(demo / "profiles.csv", dtype=str, keep_default_na=False)
    ids = profiles["id"].drop_duplicates().reset_index(drop=True)
    as_of = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    config = FeatureConfig(engagement_weights={"open": 1, "click": 2}, half_life_days=60)
    results = []
    pool = WorkerPool(2, tmp_path / "pool")
    try:
        for mapper in (SERIAL, pool):
            streamed = stream_events(
                path, ids=ids, other_ids=[], as_of=as_of, config=config, chunk_size=1_000,
                mapper=mapper,
            )  # fmt: skip
            features = feature_frame(streamed.summary, pd.Index(ids), None, config)
            results.append((features, streamed.rejected, streamed.summary.unit))
    finally:
        pool.close()
    pd.testing.assert_frame_equal(results[0][0], results[1][0], check_exact=True)
    pd.testing.assert_frame_equal(results[0][1], results[1][1], check_exact=True)
    assert results[0][2] == results[1][2] == "ns"


@pytest.mark.parametrize("workers", [1, 2])
def test_addresses_repeated_across_chunks_are_found_by_the_pre_pass(
    tmp_path: Path, workers: int
) -> None:
    """A pre-pass validates chunks each on its own (in workers with --workers): a repeat
    of an earlier chunk's address is still ``duplicate_email``, as one validator finds it."""
    rows = ["id,email,opt_in,score", *(f"C{i},u{i % 4}@example.com,true,{i}" for i in range(1, 11))]
    (tmp_path / "p.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    campaign = load_campaign(_write_campaign(tmp_path, "{field: score, op: gte, value: p50}"))
    out = tmp_path / "out"
    build_campaign(campaign, BuildOptions(out=out, workers=workers))
    rejected = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [(r["row"], r["reason"]) for r in rejected] == [
        (row, "duplicate_email") for row in range(5, 11)
    ]
    assert rejected[0]["detail"] == "address in field 'email' already used by row 1"
