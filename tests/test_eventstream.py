"""Events folded chunk by chunk give exactly the features of all events at once.

The reference is :func:`segments.features.scores.derive_features` on the whole file as
:func:`segments.features.events.load_events` reads it (one chunk); the streamed side is
:func:`segments.features.eventstream.stream_events` at several chunk sizes, on the demo
campaign's events and on variants that need its second looks (rows out of time
order, a nanosecond timestamp late in the file), in every file format.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segments.profiles.textindex as textindex
from segments.audience.document import derive_audience, parse_segment_document
from segments.errors import ProfileDataError
from segments.features.events import load_events
from segments.features.eventstream import stream_events
from segments.features.scores import FEATURE_COLUMNS, FeatureConfig, derive_features, feature_frame
from segments.profiles.textindex import SeenTexts, TextIndex
from segments.yamlsrc import load_yaml_text
from tests.conftest import examples

DEMO = Path(__file__).resolve().parent.parent / "demo"
AS_OF = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
CONFIG = FeatureConfig(engagement_weights={"open": 1, "click": 2, "purchase": 5}, half_life_days=60)


@pytest.fixture(scope="module")
def population() -> pd.DataFrame:
    """The demo profiles' ids (first of each) and sign-up times."""
    profiles = pd.read_csv(DEMO / "profiles.csv", dtype=str, keep_default_na=False)
    profiles = profiles.drop_duplicates("id")[["id", "signed_up_at"]].reset_index(drop=True)
    profiles["signed_up_at"] = pd.to_datetime(
        profiles["signed_up_at"], utc=True, errors="coerce", format="ISO8601"
    )
    return profiles


@pytest.fixture(scope="module")
def demo_events() -> pd.DataFrame:
    return pd.read_csv(DEMO / "events.csv", dtype=str, keep_default_na=False)


def at_once(path: Path, population: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(features, rejected rows) from the whole file as one chunk."""
    loaded = load_events(path, known_ids=pd.Index(population["id"]), as_of=AS_OF)
    features = derive_features(population, loaded.events, AS_OF, CONFIG)
    return features[list(FEATURE_COLUMNS)], loaded.rejected


def chunked(path: Path, population: pd.DataFrame, chunk_size: int) -> tuple[pd.DataFrame, Any]:
    streamed = stream_events(
        path, ids=population["id"], other_ids=[], as_of=AS_OF, config=CONFIG, chunk_size=chunk_size
    )
    ids = pd.Index(population["id"])
    features = feature_frame(
        streamed.summary, ids, population["signed_up_at"], CONFIG, empty_cart=list
    )
    return features, streamed


def assert_same(path: Path, population: pd.DataFrame, chunk_size: int) -> Any:
    expected, rejected = at_once(path, population)
    features, streamed = chunked(path, population, chunk_size)
    pd.testing.assert_frame_equal(features, expected, check_exact=True)
    pd.testing.assert_frame_equal(streamed.rejected, rejected, check_exact=True)
    assert streamed.rows == streamed.accepted + rejected["row"].nunique()
    return streamed


@pytest.mark.parametrize("chunk_size", [pytest.param(113, marks=pytest.mark.slow), 2_000, 100_000])
def test_demo_events_in_chunks_equal_one_chunk(population: pd.DataFrame, chunk_size: int) -> None:
    streamed = assert_same(DEMO / "events.csv", population, chunk_size)
    assert streamed.accepted == 31_757  # the build's summary: 31757 of 31765 rows used


@pytest.mark.slow
@settings(max_examples=6, deadline=None)
@given(chunk_size=st.integers(200, 20_000), seed=st.integers(0, 2**32 - 1))
def test_shuffled_events_in_chunks_equal_one_chunk(
    tmp_path_factory: pytest.TempPathFactory,
    population: pd.DataFrame,
    demo_events: pd.DataFrame,
    chunk_size: int,
    seed: int,
) -> None:
    # Rows out of time order: engagement sums of such profiles are redone in a second pass.
    order = np.random.default_rng(seed).permutation(len(demo_events))
    path = tmp_path_factory.mktemp("shuffled") / "events.csv"
    demo_events.iloc[order].to_csv(path, index=False)
    assert_same(path, population, chunk_size)


@pytest.mark.slow  # a large events file
def test_a_late_nanosecond_timestamp_restarts_at_the_finer_unit(
    tmp_path: Path, population: pd.DataFrame, demo_events: pd.DataFrame
) -> None:
    # Read at once, one nanosecond timestamp makes every age a nanosecond age.
    events = demo_events.copy()
    row = events.index[(events["type"] == "open") & events["timestamp"].str.endswith("Z")][-1]
    events.loc[row, "timestamp"] = events.loc[row, "timestamp"][:-1] + ".123456789Z"
    path = tmp_path / "events.csv"
    events.to_csv(path, index=False)
    streamed = assert_same(path, population, 1_000)
    assert streamed.summary.unit == "ns"


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_jsonl_and_parquet_in_chunks_equal_one_chunk(
    tmp_path: Path, population: pd.DataFrame, demo_events: pd.DataFrame, suffix: str
) -> None:
    path = tmp_path / f"events{suffix}"
    if suffix == ".jsonl":
        demo_events.to_json(path, orient="records", lines=True)
    else:
        demo_events.to_parquet(path, row_group_size=5_000)
    assert_same(path, population, 3_000)


def test_events_of_rejected_profiles_are_accepted_and_ignored(
    tmp_path: Path, population: pd.DataFrame
) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "profile_id,type,timestamp\n"
        f"{population['id'][0]},open,2026-11-01T00:00:00Z\n"
        "GONE,open,2026-11-01T00:00:00Z\n"
        "NOBODY,open,2026-11-01T00:00:00Z\n"
    )
    streamed = stream_events(
        path, ids=population["id"], other_ids=["GONE"], as_of=AS_OF, config=CONFIG
    )
    assert (streamed.rows, streamed.accepted) == (3, 2)
    assert streamed.rejected[["row", "profile_id"]].values.tolist() == [[3, "NOBODY"]]
    assert streamed.summary.engagement[0] > 0 and streamed.summary.engagement[1:].sum() == 0


def test_stream_errors_name_the_file(tmp_path: Path, population: pd.DataFrame) -> None:
    def stream(path: Path) -> object:
        return stream_events(
            path, ids=population["id"], other_ids=[], as_of=AS_OF, config=CONFIG, chunk_size=2
        )

    missing = tmp_path / "events.csv"
    missing.write_text("profile_id,type\nC000001,open\nC000002,open\nC000003,open\n")
    with pytest.raises(ProfileDataError) as info:
        stream(missing)
    assert (info.value.field, info.value.file) == ("timestamp", str(missing))
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_text('{"profile_id": "C000001", "timestamp": "2026-01-01"}\n' * 5)
    with pytest.raises(ProfileDataError) as info:
        stream(jsonl)
    assert info.value.field == "type"
    broken = tmp_path / "broken.csv"
    rows = "".join(f"C00000{i},open,2026-01-01T00:00:00Z\n" for i in range(1, 8))
    broken.write_text(f'profile_id,type,timestamp\n{rows}C0000009,"secret\n')
    with pytest.raises(ProfileDataError, match="cannot read events file as csv") as info:
        stream(broken)
    assert "secret" not in str(info.value) and info.value.file == str(broken)


def test_a_semicolon_cp1252_events_export_folds_the_same(
    tmp_path: Path, population: pd.DataFrame, demo_events: pd.DataFrame
) -> None:
    export = tmp_path / "events.csv"
    demo_events.to_csv(export, sep=";", index=False, encoding="cp1252")
    expected, _ = chunked(DEMO / "events.csv", population, 5_000)
    streamed = stream_events(
        export,
        ids=population["id"],
        other_ids=[],
        as_of=AS_OF,
        config=CONFIG,
        chunk_size=5_000,
        delimiter=";",
        encoding="cp1252",
    )
    ids = pd.Index(population["id"])
    features = feature_frame(
        streamed.summary, ids, population["signed_up_at"], CONFIG, empty_cart=list
    )
    pd.testing.assert_frame_equal(features, expected, check_exact=True)
    with pytest.raises(ProfileDataError) as info:  # read as comma-separated UTF-8
        stream_events(export, ids=population["id"], other_ids=[], as_of=AS_OF, config=CONFIG)
    assert "events.delimiter" in str(info.value) and info.value.file == str(export)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("profile_id,type,timestamp\nJosé,open,2026-01-01\n".encode("cp1252"))
    with pytest.raises(ProfileDataError, match="not utf-8 text") as info:
        stream_events(latin, ids=population["id"], other_ids=[], as_of=AS_OF, config=CONFIG)
    assert "events.encoding" in str(info.value)


def test_profile_ids_that_read_the_same_as_text_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("profile_id,type,timestamp\nC1,open,2026-01-01T00:00:00Z\n")
    with pytest.raises(ProfileDataError, match="collide"):
        stream_events(path, ids=pd.Series(["C1", " C1"]), other_ids=[], as_of=AS_OF, config=CONFIG)


def test_derive_audience_from_a_summary_equals_from_a_frame(population: pd.DataFrame) -> None:
    document = parse_segment_document(
        load_yaml_text(
            "segments:\n  hot: {field: engagement_score, op: gte, value: p75}\n"
            "clusters:\n  - {name: value_cluster, features: [monetary_total, frequency], k: 3}\n",
            "s.yaml",
        )
    )
    loaded = load_events(DEMO / "events.csv", known_ids=pd.Index(population["id"]), as_of=AS_OF)
    streamed = stream_events(
        DEMO / "events.csv", ids=population["id"], other_ids=[], as_of=AS_OF, config=CONFIG
    )
    results = [
        derive_audience(
            population, document, id_field="id", as_of=AS_OF, events=events, config=CONFIG
        )
        for events in (loaded.events, streamed.summary)
    ]
    pd.testing.assert_frame_equal(results[1].derived.frame, results[0].derived.frame)
    pd.testing.assert_frame_equal(results[1].population, results[0].population)
    assert results[1].thresholds == results[0].thresholds
    with pytest.raises(ValueError, match="once"):  # the summary went into the features
        feature_frame(streamed.summary, pd.Index(population["id"]), None, CONFIG)


# --- the text index ------------------------------------------------------------------------


def test_text_index_finds_the_first_of_equal_keys() -> None:
    index = TextIndex(pd.Index(["b", "a", None, "c", "a"]))
    asked = np.array(["a", "c", "zz", None, "b"], dtype=object)
    assert index.get_indexer(asked).tolist() == [1, 3, -1, -1, 0]
    assert index.repeats(5) and not index.repeats(4)


def test_text_index_survives_hash_collisions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(textindex, "_hashes", lambda values: np.zeros(len(values), np.uint64))
    index = TextIndex(pd.Series(["b", "a", "c", "a"]))
    asked = pd.Series(["a", "c", "zz", "b", None])
    assert index.get_indexer(asked).tolist() == [1, 2, -1, 0, -1]
    assert index.repeats(4) and not index.repeats(3)


@settings(max_examples=examples(30), deadline=None)
@given(
    keys=st.lists(st.text(max_size=4), max_size=40),
    asked=st.lists(st.text(max_size=4), max_size=20),
)
def test_text_index_answers_like_a_pandas_index(keys: list[str], asked: list[str]) -> None:
    first = pd.Series(keys, dtype=object).drop_duplicates()
    found = pd.Index(first, dtype=object).get_indexer(np.array(asked, dtype=object))
    want = [int(first.index[i]) if i >= 0 else -1 for i in found]
    got = TextIndex(np.array(keys, dtype=object)).get_indexer(np.array(asked, dtype=object))
    assert got.tolist() == want
    assert TextIndex(np.array(keys, dtype=object)).repeats(len(keys)) == (len(first) < len(keys))


def _seen_like_a_set(chunks: list[list[str]]) -> None:
    seen, model = SeenTexts(), set()
    for chunk in chunks:
        assert seen.contains(pd.Series(chunk, dtype=object)).tolist() == [t in model for t in chunk]
        new = list(dict.fromkeys(t for t in chunk if t not in model))
        seen.add(pd.Series(new, dtype=object))
        model.update(new)
        assert len(seen) == len(model)


@settings(max_examples=examples(40), deadline=None)
@given(chunks=st.lists(st.lists(st.text(max_size=3), max_size=12), max_size=12))
def test_seen_texts_answers_like_a_set(chunks: list[list[str]]) -> None:
    _seen_like_a_set(chunks)


@settings(max_examples=examples(20), deadline=None)
@given(chunks=st.lists(st.lists(st.text(max_size=3), max_size=12), max_size=12))
def test_seen_texts_survives_collisions_of_the_first_half(chunks: list[list[str]]) -> None:
    # a three-valued first half: most texts collide there, the second half tells them apart
    real = textindex._fingerprints

    def weak(values: Any) -> tuple[np.ndarray, np.ndarray]:
        _, second = real(values)
        return np.asarray([len(t) % 3 for t in values.to_pylist()], dtype=np.uint64), second

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(textindex, "_fingerprints", weak)
        _seen_like_a_set(chunks)
