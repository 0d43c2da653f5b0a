"""Item-item recommendations (segments/recommend): hand-computed lists, exclusions,
reasons, fallbacks, determinism, catalog validation and the offline evaluation."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from segments.errors import ProfileDataError
from segments.features.events import clean_events
from segments.recommend.api import RecommendationConfig, interactions_from_events, recommend_for
from segments.recommend.catalog import load_catalog, validate_catalog
from segments.recommend.evaluate import evaluate, split_last
from segments.recommend.model import (
    DEFAULT_WEIGHTS,
    POPULAR,
    SEGMENT,
    SIMILAR,
    encode,
    fit,
    recommend,
)

DEMO = Path(__file__).resolve().parent.parent / "demo"
AS_OF = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

# The hand example. Weights view 1 and purchase 1, no decay, so R is 0/1:
#
#          A  B  C  D
#     u1   P  P  .  .        P purchase, V view
#     u2   V  V  V  .
#     u3   .  V  P  .
#     u4   .  .  .  P
#
# Column norms: |A| = sqrt(2), |B| = sqrt(3), |C| = sqrt(2), |D| = 1.
# cos(A,B) = 2 / sqrt(6) = 0.8165   (u1, u2 share A and B)
# cos(A,C) = 1 / 2       = 0.5      (u2)
# cos(B,C) = 2 / sqrt(6) = 0.8165   (u2, u3)
# cos(X,D) = 0 for X in A, B, C;  cos(X,X) = 1.
# Bestsellers (users who bought): A 1, B 1, C 1, D 1 -> order A, B, C, D (ties by sku).
#
# u1 bought A, B (excluded): C = 0.5 + 0.8165 = 1.3165, reason B (0.8165 > 0.5), then
#    the bestseller D.
# u2 viewed A, B, C: A = 1 + 0.8165 + 0.5 = 2.3165, B = 0.8165 + 1 + 0.8165 = 2.633,
#    C = 0.5 + 0.8165 + 1 = 2.3165 -> B (reason B itself), then A (ties C, A < C).
# u3 viewed B, bought C (excluded): A = 0.8165 + 0.5 = 1.3165, B = 1 + 0.8165 = 1.8165
#    -> B (reason B), A (reason B: 0.8165 > 0.5).
# u4 bought D (excluded), D is similar to nothing: bestsellers A, B.
# u5 has no events (cold start): bestsellers A, B.
EXAMPLE = [
    ("u1", "A", "purchase"),
    ("u1", "B", "purchase"),
    ("u2", "A", "view"),
    ("u2", "B", "view"),
    ("u2", "C", "view"),
    ("u3", "B", "view"),
    ("u3", "C", "purchase"),
    ("u4", "D", "purchase"),
]
WEIGHTS = {"view": 1.0, "purchase": 1.0}


def _example(rows: list[tuple[str, str, str]] = EXAMPLE):  # type: ignore[no-untyped-def]
    users, items, kinds = (np.array(column) for column in zip(*rows, strict=True))
    inter = encode(users, items, kinds, np.zeros(len(rows)), WEIGHTS)
    return inter, fit(inter, weights=WEIGHTS)


def _lists(inter, recs) -> list[list[str]]:  # type: ignore[no-untyped-def]
    return [[str(inter.skus[i]) for i in row if i >= 0] for row in recs.items]


def _codes(inter, ids: list[str]) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.asarray(pd.Index(inter.user_ids).get_indexer(ids), dtype=np.int64)


def test_cosine_similarities_match_the_hand_computation() -> None:
    inter, model = _example()
    sim = model.similarity.toarray()
    assert sim[0, 1] == pytest.approx(2 / math.sqrt(6))
    assert sim[0, 2] == pytest.approx(0.5)
    assert sim[1, 2] == pytest.approx(2 / math.sqrt(6))
    assert sim[3, :3].tolist() == [0, 0, 0]
    assert np.diag(sim) == pytest.approx([1, 1, 1, 1])


def test_item_item_lists_equal_the_hand_computed_ones() -> None:
    inter, model = _example()
    users = _codes(inter, ["u1", "u2", "u3", "u4", "u5"])
    recs = recommend(model, users, 2)
    assert _lists(inter, recs) == [["C", "D"], ["B", "A"], ["B", "A"], ["A", "B"], ["A", "B"]]
    assert recs.sources.tolist() == [
        [SIMILAR, POPULAR],
        [SIMILAR, SIMILAR],
        [SIMILAR, SIMILAR],
        [POPULAR, POPULAR],
        [POPULAR, POPULAR],
    ]
    reasons = [[str(inter.skus[r]) if r >= 0 else "" for r in row] for row in recs.reasons]
    assert reasons[:3] == [["B", ""], ["B", "A"], ["B", "B"]]
    kinds = [[inter.kind_names[k] if k >= 0 else "" for k in row] for row in recs.reason_kinds]
    assert kinds[:3] == [["purchase", ""], ["view", "view"], ["view", "view"]]


def test_bought_and_out_of_stock_items_are_never_recommended() -> None:
    inter, model = _example()
    users = _codes(inter, ["u1", "u2", "u3", "u5"])
    stock = np.array([True, False, True, True])  # B out of stock
    recs = recommend(model, users, 3, in_stock=stock)
    # u1: C (similar), then bestsellers without A, B (bought) -> D.
    # u2: A, C tie at 2.3165 -> A, C; then the bestseller D.
    # u3: A (similar); C bought, B out of stock -> D.
    assert _lists(inter, recs) == [["C", "D"], ["A", "C", "D"], ["A", "D"], ["A", "C", "D"]]


def test_segment_fallback_comes_before_bestsellers() -> None:
    inter, model = _example()
    users = _codes(inter, ["u1", "u2", "u3", "u4", "u5"])
    groups = np.array([0, 0, 1, 1, 1])  # group 1 (u3, u4) bought C and D
    recs = recommend(model, users, 2, groups=groups)
    assert _lists(inter, recs)[4] == ["C", "D"]
    assert recs.sources[4].tolist() == [SEGMENT, SEGMENT]
    assert _lists(inter, recs)[3] == ["C", "A"]  # u4: C from the segment, A a bestseller


def test_same_inputs_in_another_order_give_the_same_lists() -> None:
    inter, model = _example()
    shuffled = [EXAMPLE[i] for i in np.random.default_rng(7).permutation(len(EXAMPLE))]
    inter2, model2 = _example(shuffled)
    ids = ["u1", "u2", "u3", "u4", "u5"]
    first = _lists(inter, recommend(model, _codes(inter, ids), 3))
    second = _lists(inter2, recommend(model2, _codes(inter2, ids), 3))
    assert first == second


def _catalog_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sku": ["A", "B", "C", "D"],
            "name": ["Wool Scarf", "Beanie", "Gloves", "Mug"],
            "price": ["10", "20.5", "30", "5"],
            "currency": ["usd", "USD", "USD", "USD"],
            "image_url": [f"https://x.test/{s}.jpg" for s in "ABCD"],
            "url": [f"https://x.test/{s}" for s in "ABCD"],
            "category": ["acc", "acc", "acc", "home"],
            "in_stock": ["true", "yes", "1", "false"],
        }
    )


def test_recommend_for_joins_catalog_rows_with_reasons() -> None:
    events = pd.DataFrame(
        [
            {"profile_id": u, "type": k, "timestamp": "2026-11-01T00:00:00Z", "product_id": i}
            for u, i, k in EXAMPLE
        ]
    )
    config = RecommendationConfig(catalog="c.csv", n=2, weights=WEIGHTS)
    catalog = validate_catalog(_catalog_frame())
    lists = recommend_for(events, ["u3", "u1", "nobody"], config, catalog, as_of=AS_OF)
    assert [[r["sku"] for r in recs] for recs in lists] == [["B", "A"], ["C"], ["A", "B"]]
    assert lists[0][0]["reason"] == "because you viewed Beanie"
    assert lists[1][0]["reason"] == "because you bought Beanie"
    assert lists[2][0]["reason"] == "a bestseller"
    # the reason's parts, for a template that words it in the recipient's language
    assert (lists[0][0]["reason_kind"], lists[0][0]["reason_name"]) == ("view", "Beanie")
    assert (lists[1][0]["reason_kind"], lists[1][0]["reason_name"]) == ("purchase", "Beanie")
    assert "reason_kind" not in lists[2][0] and "reason_name" not in lists[2][0]
    assert lists[0][0]["price"] == 20.5 and lists[0][0]["currency"] == "USD"
    assert set(lists[0][0]) >= {"sku", "name", "image_url", "url", "category", "in_stock"}


@pytest.mark.parametrize(
    ("column", "row", "value"),
    [
        ("sku", 2, ""),
        ("sku", 3, "A"),
        ("name", 1, ""),
        ("price", 4, "cheap"),
        ("price", 2, "-1"),
        ("currency", 3, "DOLLARS"),
        ("url", 1, "javascript:alert(1)"),
        ("image_url", 2, "ftp://x"),
        ("in_stock", 4, "maybe"),
    ],
)
def test_catalog_errors_are_located(column: str, row: int, value: str) -> None:
    frame = _catalog_frame()
    frame.loc[row - 1, column] = value
    with pytest.raises(ProfileDataError) as info:
        validate_catalog(frame, file="catalog.csv")
    error = info.value
    assert (error.file, error.row, error.field) == ("catalog.csv", row, column)
    assert len(value) < 2 or value not in str(error)  # messages never quote cells


def test_catalog_missing_column_and_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileDataError) as info:
        validate_catalog(_catalog_frame().drop(columns="currency"), file="c.csv")
    assert info.value.field == "currency"
    path = tmp_path / "catalog.csv"
    _catalog_frame().to_csv(path, index=False)
    assert load_catalog(path).row("B")["name"] == "Beanie"
    with pytest.raises(ProfileDataError):
        load_catalog(tmp_path / "missing.csv")


def test_split_last_holds_out_each_users_newest_basket() -> None:
    users = np.array(["u1", "u1", "u1", "u2"])
    items = np.array(["A", "B", "C", "A"])
    kinds = np.array(["purchase", "purchase", "purchase", "view"])
    inter = encode(users, items, kinds, np.array([5.0, 1.0, 1.0, 0.0]), WEIGHTS)
    train, held = split_last(inter, "purchase")
    assert held.tolist() == [False, True, True, False]  # u1's basket of B and C (age 1)
    assert [str(inter.skus[i]) for i in train.items] == ["A", "A"]


def test_evaluation_beats_popularity_on_the_demo_events() -> None:
    raw = pd.read_csv(DEMO / "events.csv", dtype=str, keep_default_na=False)
    events = clean_events(raw, known_ids=None, as_of=AS_OF).events
    inter = interactions_from_events(events, AS_OF, dict(DEFAULT_WEIGHTS), 60.0)
    stock = load_catalog(DEMO / "catalog.csv").in_stock(inter.skus)
    # The demo's purchases name no product: hold out the last add-to-cart instead.
    result = evaluate(inter, n=4, holdout="add_to_cart", weights=DEFAULT_WEIGHTS, in_stock=stock)
    print("\n".join(result.lines()))
    assert result.users > 1000
    assert result.model.hit_rate > result.popularity.hit_rate
    assert result.model.recall > result.popularity.recall
    assert result.model.coverage > result.popularity.coverage
