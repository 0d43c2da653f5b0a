"""Events loading and derived features, pinned at every documented boundary."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from segments.errors import ConfigError, ProfileDataError
from segments.features.events import REJECTED_COLUMNS, clean_events, load_events
from segments.features.scores import (
    FEATURE_COLUMNS,
    RFM_SEGMENTS,
    FeatureConfig,
    derive_features,
    parse_percentile,
    quintile_scores,
    resolve_percentile,
)
from tests.conftest import examples

AS_OF = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
EVENT_FIELDS = ("profile_id", "type", "timestamp", "product_id", "category", "value", "name")


def ago(**delta: float) -> pd.Timestamp:
    return pd.Timestamp(AS_OF - timedelta(**delta))


def make_events(*rows: tuple[object, ...]) -> pd.DataFrame:
    """Rows of (profile_id, type, timestamp[, product_id, category, value, name, quantity])."""
    columns = [*EVENT_FIELDS, "quantity"]
    padded = [tuple(row) + (None,) * (len(columns) - len(row)) for row in rows]
    frame = pd.DataFrame(padded, columns=columns)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame["value"] = frame["value"].astype("float64")
    frame["quantity"] = frame["quantity"].astype("float64")
    return frame


def features_for(
    events: pd.DataFrame, ids: list[str] | None = None, **config: object
) -> pd.DataFrame:
    ids = ids if ids is not None else sorted(set(events["profile_id"]))
    profiles = pd.DataFrame({"id": ids})
    result = derive_features(profiles, events, AS_OF, FeatureConfig(**config))
    return result.set_index("id")


def one(events: pd.DataFrame, column: str, **config: object) -> object:
    return features_for(events, **config).loc["a", column]


# --- events loader -----------------------------------------------------------------

CSV_TEXT = """profile_id,type,timestamp,product_id,value,quantity,extra
1,Open,2025-02-01T10:00:00,,,,x
2,click,2025-02-01T10:00:00+02:00,007,abc,2,
,view,2025-02-01,,,,
99,view,2025-02-01,,,,
3,,yesterday,,,,
3,purchase,2030-01-01,p1,10.5,1,
3,reward_claimed,2025-01-01T00:00:00Z,,,,
"""


def test_load_events_csv_rejects_with_row_numbers(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(CSV_TEXT)
    result = load_events(path, known_ids=pd.Index([1, 2, 3]), as_of=AS_OF)
    assert list(result.rejected.columns) == list(REJECTED_COLUMNS)
    assert result.rejected[["row", "field", "reason"]].values.tolist() == [
        [3, "profile_id", "missing"],
        [4, "profile_id", "not in the profile source"],
        [5, "type", "missing"],
        [5, "timestamp", "not an ISO 8601 timestamp"],
        [6, "timestamp", "after as_of"],
    ]
    assert result.rejected["profile_id"].tolist()[1:] == ["99", "3", "3", "3"]
    events = result.events
    assert events.index.tolist() == [1, 2, 7]
    assert events.index.name == "row"
    assert events["type"].tolist() == ["open", "click", "reward_claimed"]  # unknown type kept
    assert events["profile_id"].tolist() == [1, 2, 3]  # the dtype of known_ids
    assert "extra" not in events.columns


def test_load_events_types_and_timezones(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(CSV_TEXT)
    events = load_events(path, known_ids=None, as_of=AS_OF).events
    assert events["timestamp"].tolist()[:2] == [
        pd.Timestamp("2025-02-01T10:00:00Z"),  # naive is UTC
        pd.Timestamp("2025-02-01T08:00:00Z"),
    ]
    assert str(events["timestamp"].dt.tz) == "UTC"
    assert events["product_id"].tolist()[1] == "007"  # ids stay text, zeros kept
    assert np.isnan(events["value"].tolist()[1])  # "abc" is not a number
    assert events["quantity"].tolist()[1] == 2.0
    assert events["profile_id"].tolist() == ["1", "2", "99", "3"]


def test_load_events_jsonl_and_parquet_agree(tmp_path: Path) -> None:
    records = [
        {"profile_id": "a", "type": "view", "timestamp": "2025-02-01T00:00:00", "value": 3},
        {"profile_id": "b", "type": "click", "timestamp": "not a date"},
        {"profile_id": "zz", "type": "open", "timestamp": "2025-02-02T00:00:00Z"},
    ]
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    parquet = tmp_path / "events.parquet"
    pd.DataFrame(records).to_parquet(parquet)
    for path in (jsonl, parquet):
        result = load_events(path, known_ids=pd.Index(["a", "b"]), as_of=AS_OF)
        assert result.events["profile_id"].tolist() == ["a"]
        assert result.events["value"].tolist() == [3.0]
        assert result.rejected["row"].tolist() == [2, 3]


def test_clean_events_accepts_datetime_columns() -> None:
    raw = pd.DataFrame({"profile_id": [5], "type": ["open"], "timestamp": [datetime(2025, 1, 1)]})
    events = clean_events(raw, known_ids=pd.Index(["5"]), as_of=AS_OF).events
    assert events["timestamp"].tolist() == [pd.Timestamp("2025-01-01T00:00:00Z")]
    assert events["profile_id"].tolist() == ["5"]


def test_load_events_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unsupported"):
        load_events(tmp_path / "events.xlsx", known_ids=None, as_of=AS_OF)
    with pytest.raises(ProfileDataError, match="not found"):
        load_events(tmp_path / "missing.csv", known_ids=None, as_of=AS_OF)
    path = tmp_path / "events.csv"
    path.write_text("profile_id,type\n1,open\n")
    with pytest.raises(ProfileDataError) as info:
        load_events(path, known_ids=None, as_of=AS_OF)
    assert info.value.field == "timestamp"


# --- cart abandonment ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (timedelta(minutes=29, seconds=59), False),
        (timedelta(minutes=30), True),  # lower bound inclusive
        (timedelta(hours=23, minutes=59, seconds=59), True),
        (timedelta(hours=24), False),  # upper bound exclusive
    ],
)
def test_cart_abandoned_boundaries(age: timedelta, expected: bool) -> None:
    events = make_events(("a", "add_to_cart", AS_OF - age, "p1"))
    assert one(events, "cart_abandoned") is np.bool_(expected)


@pytest.mark.parametrize(
    ("purchase_age", "expected"),
    [
        (None, True),
        (timedelta(hours=3), True),
        (timedelta(hours=2), False),
        (timedelta(hours=1), False),
    ],
)
def test_cart_closed_by_purchase_at_or_after_it(
    purchase_age: timedelta | None, expected: bool
) -> None:
    rows: list[tuple[object, ...]] = [("a", "add_to_cart", ago(hours=2), "p1")]
    if purchase_age is not None:
        rows.append(("a", "purchase", AS_OF - purchase_age))
    assert bool(one(make_events(*rows), "cart_abandoned")) is expected


def test_cart_abandonment_follows_latest_add() -> None:
    # The old add is past 24 hours but the latest one is in the window, and vice versa.
    events = make_events(
        ("a", "add_to_cart", ago(hours=30), "p1"),
        ("a", "add_to_cart", ago(hours=1), "p2"),
        ("b", "add_to_cart", ago(hours=2), "p1"),
        ("b", "add_to_cart", ago(minutes=5), "p2"),
    )
    result = features_for(events)
    assert result["cart_abandoned"].tolist() == [True, False]
    assert result.loc["b", "cart_items"] == []


def test_cart_items_since_last_purchase_merged_per_product() -> None:
    events = make_events(
        ("a", "add_to_cart", ago(days=3), "old", None, 5.0, "Old thing", 1),
        ("a", "purchase", ago(days=2), None, None, 5.0),
        ("a", "add_to_cart", ago(hours=5), "p1", None, 20.0, "Shoe", 1),
        ("a", "add_to_cart", ago(hours=4), "p2", None, None, None, None),
        ("a", "add_to_cart", ago(hours=3), "p1", None, 18.0, None, 2),
        ("a", "add_to_cart", ago(hours=2), None, None, 1.0, "No id", 1),
    )
    items = one(events, "cart_items")
    assert items == [
        {"product_id": "p1", "name": "Shoe", "price": 18.0, "quantity": 3},
        {"product_id": "p2", "name": None, "price": None, "quantity": 1},
    ]
    assert type(items[0]["quantity"]) is int  # noqa: E721 - templates and JSON need int


def test_cart_items_lists_are_not_shared() -> None:
    result = features_for(make_events(("a", "open", ago(days=1))), ids=["a", "b"])
    lists = result["cart_items"].tolist()
    assert lists == [[], []]
    assert lists[0] is not lists[1]


# --- lifecycle -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("idle", "stage"),
    [
        (timedelta(0), "active"),
        (timedelta(days=30) - timedelta(seconds=1), "active"),
        (timedelta(days=30), "at_risk"),  # exactly 30 days: at_risk
        (timedelta(days=60) - timedelta(seconds=1), "at_risk"),
        (timedelta(days=60), "lapsed"),  # exactly 60 days: lapsed
        (None, "lapsed"),
    ],
)
def test_lifecycle_by_last_activity(idle: timedelta | None, stage: str) -> None:
    rows = [("b", "open", ago(days=1))]
    if idle is not None:
        rows.append(("a", "unsubscribe", AS_OF - idle))  # any event type is activity
    assert features_for(make_events(*rows), ids=["a", "b"]).loc["a", "lifecycle_stage"] == stage


@pytest.mark.parametrize(
    ("signed_ago", "stage"),
    [
        (timedelta(days=7), "lapsed"),  # exactly 7 days: no longer new
        (timedelta(days=7) - timedelta(seconds=1), "new"),
        (timedelta(0), "new"),
        (-timedelta(hours=1), "new"),  # after as_of counts as new
        (None, "lapsed"),
    ],
)
def test_lifecycle_new_takes_precedence(signed_ago: timedelta | None, stage: str) -> None:
    signed = pd.NaT if signed_ago is None else pd.Timestamp(AS_OF - signed_ago)
    profiles = pd.DataFrame(
        {"id": ["a"], "signed_up_at": pd.Series([signed], dtype="datetime64[us, UTC]")}
    )
    events = make_events(("a", "open", ago(days=90)))
    result = derive_features(profiles, events, AS_OF, FeatureConfig())
    assert result["lifecycle_stage"].tolist() == [stage]


def test_last_activity_at_is_latest_event() -> None:
    events = make_events(("a", "open", ago(days=3)), ("a", "view", ago(days=1)))
    result = features_for(events, ids=["a", "b"])
    assert result.loc["a", "last_activity_at"] == ago(days=1)
    assert pd.isna(result.loc["b", "last_activity_at"])
    assert str(result["last_activity_at"].dt.tz) == "UTC"


# --- purchases and RFM -----------------------------------------------------------------


def test_purchase_features_and_window() -> None:
    events = make_events(
        ("a", "purchase", ago(days=365), None, None, 100.0),  # outside the 365-day window
        ("a", "purchase", ago(days=364), None, None, 10.0),
        ("a", "purchase", ago(days=2), None, None, 30.0),
        ("a", "purchase", ago(days=1), None, None, None),  # no value: counts, adds 0
        ("b", "open", ago(days=1)),
    )
    result = features_for(events)
    assert result.loc["a", "recency_days"] == 1.0
    assert result.loc["a", "frequency"] == 3
    assert result.loc["a", "monetary_total"] == 40.0
    assert result.loc["a", "monetary_avg"] == 20.0
    assert np.isnan(result.loc["b", "recency_days"])
    assert result.loc["b", "frequency"] == 0
    assert result.loc["b", "monetary_total"] == 0.0
    assert np.isnan(result.loc["b", "monetary_avg"])


def rfm_population() -> pd.DataFrame:
    """Ten buyers p0..p9: p<i> bought 10-i times, last i+1 days ago, 10*(i+1) per order."""
    rows = [
        (f"p{i}", "purchase", ago(days=i + 1 + j), None, None, 10.0 * (i + 1))
        for i in range(10)
        for j in range(10 - i)
    ]
    return make_events(*rows, ("none", "open", ago(days=1)))


def test_rfm_quintiles_on_ten_profiles() -> None:
    result = features_for(rfm_population())
    buyers = result.loc[[f"p{i}" for i in range(10)]]
    # p0 is the most recent (R 5) but buys most often; recency runs opposite to F.
    assert buyers["rfm_r"].tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert buyers["frequency"].tolist() == list(range(10, 0, -1))
    assert buyers["rfm_f"].tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    # Monetary: p<i> spends 10*(i+1)*(10-i): 100, 180, 240, 280, 300, 300, 280, 240, 180, 100.
    # Ties break by id: p0 < p9, p1 < p8, p2 < p7, p3 < p6, p4 < p5.
    assert buyers["rfm_m"].tolist() == [1, 2, 3, 4, 5, 5, 4, 3, 2, 1]
    assert buyers["rfm_score"].tolist()[:3] == ["551", "552", "443"]
    assert buyers["rfm_segment"].tolist()[:3] == ["potential_loyalist", "champions", "champions"]
    assert result.loc["none", ["rfm_r", "rfm_f", "rfm_m"]].tolist() == [1, 1, 1]
    assert result.loc["none", "rfm_score"] == "111"
    assert result.loc["none", "rfm_segment"] == "lost"


def test_rfm_ties_do_not_depend_on_row_order() -> None:
    events = make_events(*[(f"p{i}", "purchase", ago(days=1), None, None, 5.0) for i in range(5)])
    forward = features_for(events, ids=[f"p{i}" for i in range(5)])
    backward = features_for(events, ids=[f"p{i}" for i in reversed(range(5))])
    assert forward["rfm_r"].tolist() == [1, 2, 3, 4, 5]
    assert backward.loc[forward.index, "rfm_r"].tolist() == [1, 2, 3, 4, 5]


def test_rfm_segment_table_is_complete() -> None:
    assert set(RFM_SEGMENTS) == {(r, fm) for r in range(1, 6) for fm in range(1, 6)}
    assert set(RFM_SEGMENTS.values()) == {
        "champions", "loyal", "potential_loyalist", "new_customer", "promising",
        "need_attention", "about_to_sleep", "at_risk", "cannot_lose", "hibernating", "lost",
    }  # fmt: skip


@settings(max_examples=examples(50), deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60))
def test_quintile_scores_are_balanced_and_monotone(values: list[float]) -> None:
    key = np.array(values)
    scores = quintile_scores(key, np.ones(len(key), dtype=bool), np.arange(len(key)))
    counts = np.bincount(scores, minlength=6)[1:]
    assert set(np.unique(scores)) <= {1, 2, 3, 4, 5}
    if len(key) >= 5:
        assert counts.max() - counts.min() <= 1
    order = np.lexsort((np.arange(len(key)), key))
    assert np.all(np.diff(scores[order]) >= 0)


# --- engagement ------------------------------------------------------------------------


def test_engagement_weights() -> None:
    events = make_events(
        ("a", "open", ago(days=10)),
        ("a", "click", ago(days=10)),
        ("a", "purchase", ago(days=10)),
        ("a", "view", ago(days=10)),  # not weighted
    )
    assert one(events, "engagement_score") == 8.0
    assert one(events, "engagement_score", engagement_weights={"view": 0.5}) == 0.5


def test_engagement_half_life() -> None:
    events = make_events(
        ("a", "open", ago(days=0)),
        ("a", "open", ago(days=10)),
        ("a", "click", ago(days=20)),
    )
    assert one(events, "engagement_score", half_life_days=10) == pytest.approx(1 + 0.5 + 2 * 0.25)


# --- views ----------------------------------------------------------------------------


def test_repeated_product_view() -> None:
    views = [("a", "view", ago(hours=h), "p1") for h in (1, 2, 3, 4)]
    views += [("b", "view", ago(hours=h), "p1") for h in (1, 2, 3)]
    views += [("b", "view", ago(hours=24), "p1")]  # exactly 24 hours: outside the window
    result = features_for(make_events(*views))
    assert result["repeated_product_view"].tolist() == [True, False]
    assert result.loc["a", "repeated_product_id"] == "p1"
    assert pd.isna(result.loc["b", "repeated_product_id"])


def test_repeated_product_id_prefers_most_views_then_latest() -> None:
    views = [("a", "view", ago(hours=h), "p1") for h in (5, 6, 7, 8, 9)]
    views += [("a", "view", ago(hours=h), "p2") for h in (1, 2, 3, 4)]
    views += [("b", "view", ago(hours=h), "x") for h in (5, 6, 7, 8)]
    views += [("b", "view", ago(hours=h), "y") for h in (1, 6, 7, 8)]
    result = features_for(make_events(*views))
    assert result["repeated_product_id"].tolist() == ["p1", "y"]


@pytest.mark.parametrize(
    ("products", "cart_age", "expected"),
    [
        (["p1", "p2", "p3"], None, True),
        (["p1", "p2", "p2", "p2"], None, False),  # two distinct products
        (["p1", "p2", "p3"], timedelta(hours=2), False),
        (["p1", "p2", "p3"], timedelta(hours=24), True),  # the add is outside the window
    ],
)
def test_browsed_no_cart(products: list[str], cart_age: timedelta | None, expected: bool) -> None:
    rows: list[tuple[object, ...]] = [("a", "view", ago(hours=1), p) for p in products]
    if cart_age is not None:
        rows.append(("a", "add_to_cart", AS_OF - cart_age, "p9"))
    assert bool(one(make_events(*rows), "browsed_no_cart")) is expected


def test_last_viewed_skips_missing_values() -> None:
    events = make_events(
        ("a", "view", ago(days=3), "p1", "shoes"),
        ("a", "view", ago(days=2), "p2", None),
        ("a", "click", ago(days=1), "p3", "hats"),  # not a view
    )
    result = features_for(events, ids=["a", "b"])
    assert result.loc["a", "last_viewed_category"] == "shoes"
    assert result.loc["a", "last_viewed_product"] == "p2"
    assert pd.isna(result.loc["b", "last_viewed_product"])


# --- derive_features as a whole --------------------------------------------------------


def test_derive_features_keeps_profiles_and_ignores_stray_events() -> None:
    profiles = pd.DataFrame({"id": [1, 2], "email": ["x@example.com", "y@example.com"]})
    profiles.index = pd.Index([10, 20])
    events = make_events(
        ("1", "open", ago(days=1)),  # text id matches the integer id
        ("1", "purchase", ago(days=-1)),  # after as_of: ignored
        ("7", "purchase", ago(days=1)),  # unknown profile: ignored
    )
    result = derive_features(profiles, events, AS_OF, FeatureConfig())
    assert result.index.tolist() == [10, 20]
    assert list(result.columns) == ["id", "email", *FEATURE_COLUMNS]
    assert result["engagement_score"].tolist() == [1.0, 0.0]
    assert result["frequency"].tolist() == [0, 0]
    assert result["cart_abandoned"].dtype == bool


def test_derive_features_without_events() -> None:
    result = features_for(make_events(), ids=["a", "b"])
    assert result["rfm_segment"].tolist() == ["lost", "lost"]
    assert result["lifecycle_stage"].tolist() == ["lapsed", "lapsed"]


def test_derive_features_rejects_column_clash_and_duplicate_ids() -> None:
    events = make_events()
    with pytest.raises(ConfigError) as info:
        derive_features(pd.DataFrame({"id": [1], "frequency": [3]}), events, AS_OF, FeatureConfig())
    assert info.value.field == "frequency"
    with pytest.raises(ProfileDataError):
        derive_features(pd.DataFrame({"id": [1, 1]}), events, AS_OF, FeatureConfig())


@settings(max_examples=examples(20), deadline=None)
@given(st.randoms(use_true_random=False))
def test_derive_features_ignores_event_order(rnd: object) -> None:
    events = pd.concat(
        [
            rfm_population(),
            make_events(
                ("a", "add_to_cart", ago(hours=2), "p1"),
                ("a", "view", ago(hours=1), "p1", "shoes"),
                ("a", "view", ago(hours=2), "p2", "hats"),
            ),
        ],
        ignore_index=True,
    )
    order = list(range(len(events)))
    rnd.shuffle(order)  # type: ignore[attr-defined]
    baseline = features_for(events)
    shuffled = features_for(events.iloc[order])
    pd.testing.assert_frame_equal(baseline, shuffled)


def test_feature_config_validation() -> None:
    assert FeatureConfig().engagement_weights == {"open": 1.0, "click": 2.0, "purchase": 5.0}
    with pytest.raises(ValidationError):
        FeatureConfig(active_days=60, at_risk_days=30)
    with pytest.raises(ValidationError):
        FeatureConfig(cart_min_minutes=90, cart_max_hours=1)
    with pytest.raises(ValidationError):
        FeatureConfig(unknown_setting=1)


# --- percentiles -----------------------------------------------------------------------


def test_resolve_percentile() -> None:
    series = pd.Series([1.0, 2.0, np.nan, 3.0, 4.0, 5.0], name="monetary_total")
    assert resolve_percentile("p75", series) == 4.0
    assert resolve_percentile("p50", series) == 3.0
    assert resolve_percentile("p10", series) == pytest.approx(1.4)  # linear interpolation
    assert resolve_percentile("p0", series) == 1.0
    assert resolve_percentile("p100", series) == 5.0
    assert resolve_percentile("P99.5", series) == pytest.approx(4.98)
    assert resolve_percentile(250, series) == 250
    assert resolve_percentile("gold", series) == "gold"
    assert np.isnan(resolve_percentile("p50", pd.Series([np.nan, np.nan])))
    assert resolve_percentile("p50", pd.Series([1, 3, None], dtype="Int64")) == 2.0


def test_resolve_percentile_errors() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_percentile("p101", pd.Series([1.0], name="frequency"))
    assert info.value.field == "frequency"
    with pytest.raises(ConfigError):
        resolve_percentile("p50", pd.Series(["a", "b"], name="city"))
    assert parse_percentile("p-5") is None
    assert parse_percentile("p 5") is None
