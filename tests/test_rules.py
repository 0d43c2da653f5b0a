"""The segment rule language: parsing, errors, and the two evaluators agreeing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segments.errors import SegmentRuleError
from segments.rules.ruleset import Condition, SegmentSet, load_segments, parse_segments
from segments.yamlsrc import load_yaml
from tests.conftest import examples

DATA = Path(__file__).parent / "data" / "segments"
AS_OF = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
NAN = float("nan")


def one_rule(op: str, value: Any = None, field: str = "f") -> SegmentSet:
    rule = {"field": field, "op": op}
    if value is not None:
        rule["value"] = value
    return parse_segments({"s": rule})


def one_row_frame(actual: Any) -> pd.DataFrame:
    """A one-row frame holding ``actual`` in the dtype a profile loader would use."""
    if isinstance(actual, datetime):
        return pd.DataFrame({"f": pd.Series([actual], dtype="datetime64[us, UTC]")})
    if isinstance(actual, list):
        return pd.DataFrame({"f": pd.Series([actual], dtype=object)})
    if isinstance(actual, str):
        return pd.DataFrame({"f": pd.Series([actual], dtype="string")})
    return pd.DataFrame({"f": pd.Series([actual])})


def matches_both_ways(segments: SegmentSet, actual: Any) -> bool:
    """Evaluate one value per profile and per frame; they must agree."""
    by_profile = segments.evaluate_profile({"f": actual}, AS_OF)["s"]
    by_frame = bool(segments.evaluate_frame(one_row_frame(actual), AS_OF)["s"].iloc[0])
    assert by_profile == by_frame
    return by_profile


OPERATOR_CASES = [
    ("eq", "New York", "New York", True),
    ("eq", "New York", "Boston", False),
    ("eq", "New York", None, False),
    ("eq", "New York", "", False),
    ("eq", 5, 5.0, True),
    ("eq", 5, "5", False),
    ("eq", True, True, True),
    ("eq", 1, True, False),
    ("ne", "New York", "Boston", True),
    ("ne", "New York", "New York", False),
    ("ne", "New York", None, False),
    ("ne", 5, NAN, False),
    ("ne", 5, "x", False),
    ("lt", 10, 9.5, True),
    ("lt", 10, 10, False),
    ("lt", 10, NAN, False),
    ("lt", "m", "apple", True),
    ("lt", 10, "apple", False),
    ("lte", 10, 10, True),
    ("lte", 10, 11, False),
    ("gt", 10, 11, True),
    ("gt", 10, 10, False),
    ("gte", 10, 10, True),
    ("gte", 10, 9, False),
    ("gte", 10, None, False),
    ("in", ["NY", "LA"], "LA", True),
    ("in", ["NY", "LA"], "SF", False),
    ("in", ["NY", "LA"], None, False),
    ("in", [1, 2], 2.0, True),
    ("not_in", ["NY", "LA"], "SF", True),
    ("not_in", ["NY", "LA"], "LA", False),
    ("not_in", ["NY", "LA"], None, False),
    ("not_in", ["NY", "LA"], "", False),
    ("not_in", ["NY", "LA"], 3, False),
    ("contains", "ork", "New York", True),
    ("contains", "x", "New York", False),
    ("contains", "vip", ["vip", "new"], True),
    ("contains", "vip", ["v"], False),
    ("contains", 1, [1, 2], True),
    ("contains", 1, [True], False),
    ("contains", "x", None, False),
    ("contains", "x", 5, False),
    ("not_contains", "x", "abc", True),
    ("not_contains", "a", "abc", False),
    ("not_contains", "x", None, False),
    ("not_contains", "x", [], True),
    ("not_contains", "x", ["x", "y"], False),
    ("starts_with", "New", "New York", True),
    ("starts_with", "York", "New York", False),
    ("starts_with", "New", None, False),
    ("matches", r"^\d{5}$", "10001", True),
    ("matches", r"^\d{5}$", "1000", False),
    ("matches", "b", "abc", True),
    ("matches", "b", None, False),
    ("matches", "5", 5, False),
    ("exists", None, "x", True),
    ("exists", None, [], True),
    ("exists", None, None, False),
    ("exists", None, "", False),
    ("exists", None, NAN, False),
    ("missing", None, None, True),
    ("missing", None, "", True),
    ("missing", None, NAN, True),
    ("missing", None, 0, False),
    ("between", [1, 10], 5, True),
    ("between", [1, 10], 10, True),
    ("between", [1, 10], 1, True),
    ("between", [1, 10], 11, False),
    ("between", [1, 10], NAN, False),
    ("within", "7d", AS_OF - timedelta(days=3), True),
    ("within", "7d", AS_OF - timedelta(days=7), True),
    ("within", "7d", AS_OF - timedelta(days=8), False),
    ("within", "7d", AS_OF + timedelta(hours=1), False),
    ("within", "7d", None, False),
    ("within", "7d", "yesterday", False),
    ("older_than", "7d", AS_OF - timedelta(days=8), True),
    ("older_than", "7d", AS_OF - timedelta(days=7), False),
    ("older_than", "7d", None, False),
    ("before", date(2024, 1, 1), datetime(2023, 12, 31, 23, tzinfo=UTC), True),
    ("before", date(2024, 1, 1), datetime(2024, 1, 1, tzinfo=UTC), False),
    ("before", "2024-01-01T12:00:00Z", date(2024, 1, 1), True),
    ("after", date(2024, 1, 1), datetime(2024, 1, 1, 0, 1, tzinfo=UTC), True),
    ("after", date(2024, 1, 1), date(2023, 6, 1), False),
    ("after", datetime(2024, 1, 1, 12), datetime(2024, 1, 1, 13, tzinfo=UTC), True),
    ("after", date(2024, 1, 1), None, False),
]


@pytest.mark.parametrize(("op", "value", "actual", "expected"), OPERATOR_CASES)
def test_operator(op: str, value: Any, actual: Any, expected: bool) -> None:
    assert matches_both_ways(one_rule(op, value), actual) is expected


@pytest.mark.parametrize("op", ["eq", "ne", "lt", "in", "not_contains", "within", "before"])
def test_comparisons_on_an_absent_field_are_false(op: str) -> None:
    value = {"in": ["a"], "within": "1d", "before": date(2024, 1, 1)}.get(op, "a")
    segments = one_rule(op, value)
    assert segments.evaluate_profile({}, AS_OF) == {"s": False}
    assert not segments.evaluate_frame(pd.DataFrame({"g": [1, 2]}), AS_OF)["s"].any()


def test_absent_column_is_all_missing() -> None:
    segments = parse_segments(
        {"has": {"field": "f", "op": "exists"}, "lacks": {"field": "f", "op": "missing"}}
    )
    frame = segments.evaluate_frame(pd.DataFrame({"g": [1, 2]}), AS_OF)
    assert frame["has"].tolist() == [False, False]
    assert frame["lacks"].tolist() == [True, True]
    assert segments.evaluate_profile({}, AS_OF) == {"has": False, "lacks": True}


def test_nesting_all_any_not() -> None:
    segments = parse_segments(
        {
            "s": {
                "all": [
                    {"field": "a", "op": "gt", "value": 0},
                    {
                        "any": [
                            {"field": "b", "op": "eq", "value": "x"},
                            {"not": {"field": "c", "op": "exists"}},
                        ]
                    },
                ]
            }
        }
    )
    profiles = [
        ({"a": 1, "b": "x", "c": 1}, True),
        ({"a": 1, "b": "y"}, True),
        ({"a": 1, "b": "y", "c": 1}, False),
        ({"a": 0, "b": "x"}, False),
        ({"b": "x"}, False),
    ]
    frame = pd.DataFrame([p for p, _ in profiles])
    by_frame = segments.evaluate_frame(frame, AS_OF)["s"].tolist()
    assert by_frame == [expected for _, expected in profiles]
    for profile, expected in profiles:
        assert segments.evaluate_profile(profile, AS_OF) == {"s": expected}


def test_not_negates_a_missing_comparison() -> None:
    segments = parse_segments({"s": {"not": {"field": "f", "op": "eq", "value": "a"}}})
    assert segments.evaluate_profile({}, AS_OF) == {"s": True}


def test_valid_file_references_in_any_order() -> None:
    segments = load_segments(DATA / "valid.yaml")
    assert segments.names == ["vip", "cart_abandoner_ny", "lapsed", "loyal"]
    assert segments.fields_used() == {
        "total_spent",
        "last_purchase_at",
        "cart_items",
        "city",
        "tags",
        "orders",
    }
    frame = pd.DataFrame(
        {
            "total_spent": pd.array([600.0, 20.0, None], dtype="Float64"),
            "last_purchase_at": pd.Series(
                [AS_OF - timedelta(days=2), AS_OF - timedelta(days=40), None],
                dtype="datetime64[ns, UTC]",
            ),
            "cart_items": pd.Series([["shoe"], ["hat"], None], dtype=object),
            "city": pd.Series(["Boston", "Boston", "New York"], dtype="string"),
            "tags": pd.Series([None, ["loyal"], []], dtype=object),
            "orders": pd.array([3, 2, None], dtype="Int64"),
        }
    ).set_axis(["r1", "r2", "r3"])
    result = segments.evaluate_frame(frame, AS_OF)
    assert list(result.columns) == segments.names
    assert list(result.index) == ["r1", "r2", "r3"]
    assert result.to_dict("index") == {
        "r1": {"vip": True, "cart_abandoner_ny": False, "lapsed": False, "loyal": False},
        "r2": {"vip": False, "cart_abandoner_ny": True, "lapsed": False, "loyal": True},
        "r3": {"vip": False, "cart_abandoner_ny": False, "lapsed": False, "loyal": False},
    }


def test_segments_inline_in_a_campaign_file() -> None:
    campaign = load_yaml(DATA / "campaign.yaml")
    fields: dict[str, Any] = {"city": "string", "country": "string", "email_opt_in": "bool"}
    segments = parse_segments(campaign["segments"], fields=fields)
    assert segments.names == ["ny", "new_yorkers_abroad"]
    assert segments["ny"].line == 4
    assert segments.evaluate_profile({"city": "New York", "email_opt_in": True}, AS_OF)["ny"]
    del fields["email_opt_in"]
    with pytest.raises(SegmentRuleError) as info:
        parse_segments(campaign["segments"], fields=fields)
    assert (info.value.file, info.value.line) == (str(DATA / "campaign.yaml"), 7)


def test_explain_profile_covers_referenced_segments() -> None:
    segments = load_segments(DATA / "valid.yaml")
    profile = {"total_spent": 700, "last_purchase_at": AS_OF, "cart_items": ["hat"]}
    rows = segments.explain_profile("cart_abandoner_ny", profile, AS_OF)
    assert [(r["segment"], r["field"], r["matched"]) for r in rows] == [
        ("cart_abandoner_ny", "cart_items", True),
        ("cart_abandoner_ny", "city", False),
        ("vip", "total_spent", True),
        ("vip", "last_purchase_at", True),
    ]
    assert rows[2]["threshold"] == 500 and rows[2]["actual"] == 700 and rows[2]["op"] == "gte"
    with pytest.raises(SegmentRuleError, match="unknown segment 'vipp'"):
        segments.explain_profile("vipp", profile, AS_OF)


def load_error(name: str, **kwargs: Any) -> SegmentRuleError:
    """The error loading ``name`` (relative to the test data) raises."""
    with pytest.raises(SegmentRuleError) as info:
        load_segments(DATA / name, **kwargs)
    return info.value


def test_cycle_names_file_line_and_path() -> None:
    error = load_error("cycle.yaml")
    assert error.file == str(DATA / "cycle.yaml")
    assert error.line == 10
    assert "a -> b -> c -> a" in str(error)
    assert str(error).startswith(f"{DATA / 'cycle.yaml'}:10: ")


def test_self_reference_is_a_cycle() -> None:
    with pytest.raises(SegmentRuleError, match="s -> s"):
        parse_segments({"s": {"any": [{"field": "f", "op": "exists"}, {"segment": "s"}]}})


def test_unknown_field_with_hint() -> None:
    fields = {"total_spent": "float", "city": "string"}
    error = load_error("unknown_field.yaml", fields=fields)
    assert (error.line, error.field, error.segment) == (5, "total_spnt", "big_spenders")
    assert "unknown field 'total_spnt'" in str(error)
    assert error.hint is not None and "'total_spent'" in error.hint


def test_unknown_operator_with_hint() -> None:
    error = load_error("unknown_op.yaml")
    assert (error.line, error.segment) == (5, "ny")
    assert "unknown operator 'startswith'" in str(error)
    assert error.hint is not None and "starts_with" in error.hint


def test_unknown_segment_reference() -> None:
    error = load_error("unknown_segment.yaml")
    assert (error.line, error.segment) == (6, "not_vip")
    assert "unknown segment 'vipp'" in str(error)
    assert error.hint is not None and "'vip'" in error.hint


def test_bad_regex_is_a_parse_error() -> None:
    error = load_error("bad_regex.yaml")
    assert (error.line, error.field) == (6, "zip")
    assert "invalid regular expression" in str(error)


def test_unknown_rule_key() -> None:
    error = load_error("unknown_key.yaml")
    assert error.line == 3
    assert "unknown rule key 'any_of'" in str(error)
    assert error.hint is not None and "'any'" in error.hint


def test_bad_window() -> None:
    error = load_error("bad_window.yaml")
    assert (error.line, error.field) == (4, "last_purchase_at")
    assert "window" in str(error)


def test_type_mismatch_is_caught_when_fields_are_known() -> None:
    error = load_error("type_mismatch.yaml", fields={"city": "string"})
    assert (error.line, error.field) == (5, "city")
    segments = load_segments(DATA / "type_mismatch.yaml")  # types unknown: evaluates False
    assert segments.evaluate_profile({"city": "Boston"}, AS_OF) == {"odd": False}


@pytest.mark.parametrize(
    ("op", "value", "field_type"),
    [
        ("within", "7d", "string"),
        ("contains", "x", "int"),
        ("contains", 1, "string"),
        ("lt", True, "bool"),
        ("eq", "2024-13-01", "date"),
        ("in", ["a", 1], "string"),
        ("starts_with", "a", "list"),
    ],
)
def test_parse_time_type_errors(op: str, value: Any, field_type: str) -> None:
    with pytest.raises(SegmentRuleError) as info:
        parse_segments({"s": {"field": "f", "op": op, "value": value}}, fields={"f": field_type})
    assert info.value.field == "f"


def test_date_strings_become_dates_for_date_fields() -> None:
    segments = parse_segments(
        {"s": {"field": "f", "op": "gte", "value": "2024-01-01"}}, fields={"f": "date"}
    )
    assert segments.evaluate_profile({"f": date(2024, 2, 1)}, AS_OF) == {"s": True}


@pytest.mark.parametrize(
    "rule",
    [
        {"field": "f", "op": "eq"},
        {"field": "f", "op": "exists", "value": 1},
        {"field": "f", "op": "in", "value": "a"},
        {"field": "f", "op": "in", "value": []},
        {"field": "f", "op": "between", "value": [1]},
        {"field": "f", "op": "between", "value": [10, 1]},
        {"field": "f", "op": "eq", "value": ""},
        {"field": "f", "op": "eq", "value": [1]},
        {"field": "f", "op": "eq", "value": NAN},
        {"field": "f", "op": "before", "value": "soon"},
        {"field": "f", "op": "eq", "value": 1, "extra": 2},
        {"op": "eq", "value": 1},
        {"all": []},
        {"any": "x"},
        {"all": [{"field": "f", "op": "exists"}], "any": [{"field": "f", "op": "exists"}]},
        {"segment": ""},
        "f > 3",
    ],
)
def test_malformed_rules(rule: Any) -> None:
    with pytest.raises(SegmentRuleError) as info:
        parse_segments({"s": rule}, source="inline.yaml")
    assert info.value.file == "inline.yaml"
    assert info.value.segment == "s"


def test_top_level_must_have_segments() -> None:
    error = load_error("wrong_top.yaml")
    assert error.file == str(DATA / "wrong_top.yaml")
    assert "segments" in str(error)


def test_load_segments_ignores_other_top_level_keys() -> None:
    assert load_segments(DATA / "campaign.yaml").names == ["ny", "new_yorkers_abroad"]


def test_segments_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\nsegments:\n", encoding="utf-8")
    error = load_error(str(path))
    assert (error.file, error.line) == (str(path), 2)


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("30m", timedelta(minutes=30)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        (" 3d ", timedelta(days=3)),
    ],
)
def test_window_parsing(text: str, window: timedelta) -> None:
    condition = one_rule("within", text)["s"].rule
    assert isinstance(condition, Condition)
    assert condition.window == window


@pytest.mark.parametrize("text", ["30", "3 days", "0d", 30, "-1d", "1y", "d", "99999999999999w"])
def test_bad_windows(text: Any) -> None:
    with pytest.raises(SegmentRuleError, match="window"):
        one_rule("within", text)


# --- property: the vectorized and the per-profile evaluators agree ------------------

STRS = ["a", "b", "ab", "ba", "A", " a"]
NUMS = [-1, 0, 1, 2.5, 10]
DATES = [AS_OF + timedelta(hours=h) for h in (-24 * 40, -24 * 8, -24 * 7, -30, -1, 0, 5)]
OTHERS = [True, False, ["a"], [], {"k": 1}, date(2024, 5, 30)]
MISSING = [None, NAN, ""]

COLUMNS = {
    "s_obj": (MISSING + STRS, lambda v: pd.Series(v, dtype=object)),
    "s_str": ([None, ""] + STRS, lambda v: pd.Series(v, dtype="string")),
    "n_float": ([NAN] + NUMS, lambda v: pd.Series(v, dtype="float64")),
    "n_int": ([None, -1, 0, 1, 10], lambda v: pd.Series(pd.array(v, dtype="Int64"))),
    "flag": ([None, True, False], lambda v: pd.Series(pd.array(v, dtype="boolean"))),
    "when": ([None] + DATES, lambda v: pd.Series(v, dtype="datetime64[us, UTC]")),
    "mixed": (
        MISSING + STRS[:3] + NUMS[:3] + DATES[:2] + OTHERS,
        lambda v: pd.Series(v, dtype=object),
    ),
}
LIST_ITEMS = st.sampled_from([True, 1, None, "", NAN, "a", "b", 2.5])
LISTS = st.one_of(st.lists(LIST_ITEMS, max_size=3), st.none())
BOOLS = [True, False]
FIELDS = [*COLUMNS, "tags", "ghost"]
# Each field's natural values, so that most conditions can match something.
FIELD_VALUES = {
    "s_obj": STRS,
    "s_str": STRS,
    "n_float": NUMS,
    "n_int": NUMS,
    "flag": BOOLS,
    "when": DATES,
    "mixed": STRS[:3] + NUMS[:3] + DATES[:2] + BOOLS,
    "tags": [1, True, "a", "b", 2.5],
    "ghost": STRS,
}
STRINGY = ["s_obj", "s_str", "mixed"]
DATEY = ["when", "mixed"]
# op -> (kind of value, fields it is mostly tried on)
OPS = {
    "eq": ("scalar", FIELDS),
    "ne": ("scalar", FIELDS),
    "lt": ("ordered", FIELDS),
    "lte": ("ordered", FIELDS),
    "gt": ("ordered", FIELDS),
    "gte": ("ordered", FIELDS),
    "in": ("list", FIELDS),
    "not_in": ("list", FIELDS),
    "between": ("pair", FIELDS),
    "contains": ("member", ["tags", "tags", *STRINGY]),
    "not_contains": ("member", ["tags", "tags", *STRINGY]),
    "starts_with": ("text", STRINGY),
    "matches": ("regex", STRINGY),
    "exists": (None, FIELDS),
    "missing": (None, FIELDS),
    "within": ("window", DATEY),
    "older_than": ("window", DATEY),
    "before": ("when", DATEY),
    "after": ("when", DATEY),
}
FIXED_VALUES = {
    "text": STRS,
    "regex": ["^a", "b$", "a|b", "^$", "(?i)A", r"\s"],
    "window": ["30m", "1h", "7d", "2w", "40d"],
    "when": [*DATES, date(2024, 5, 30)],
}


def value_for(draw: st.DrawFn, kind: str, field: str) -> Any:
    """A value of ``kind``, usually drawn from the field's own values."""
    if kind in FIXED_VALUES:
        return draw(st.sampled_from(FIXED_VALUES[kind]))
    pool = draw(st.sampled_from([FIELD_VALUES[field]] * 3 + [STRS, NUMS, DATES, BOOLS]))
    if kind in ("ordered", "pair"):
        pool = [v for v in pool if not isinstance(v, bool)] or NUMS
    if kind == "member":
        pool = [v for v in pool if not isinstance(v, datetime)] or STRS
    if kind in ("list", "pair"):
        kind_of = draw(st.sampled_from(pool)).__class__
        same = [v for v in pool if v.__class__ is kind_of or {v.__class__, kind_of} == {int, float}]
        items = draw(st.lists(st.sampled_from(same), min_size=1, max_size=3))
        return sorted([items[0], items[-1]]) if kind == "pair" else items
    return draw(st.sampled_from(pool))


@st.composite
def conditions(draw: st.DrawFn, op: str | None = None) -> dict[str, Any]:
    op = op or draw(st.sampled_from(list(OPS)))
    kind, fields = OPS[op]
    field = draw(st.sampled_from(fields * 2 + FIELDS))
    rule: dict[str, Any] = {"field": field, "op": op}
    if kind is not None:
        rule["value"] = value_for(draw, kind, field)
    return rule


RULES = st.recursive(
    conditions(),
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda c: {"all": c}),
        st.lists(children, min_size=1, max_size=3).map(lambda c: {"any": c}),
        children.map(lambda c: {"not": c}),
    ),
    max_leaves=6,
)


@st.composite
def segment_sets(draw: st.DrawFn) -> dict[str, Any]:
    """Lone conditions, two per operator (no sibling hides a difference), then trees.

    A tree may reference any segment drawn before it, so there is never a cycle.
    """
    data = {f"c_{op}_{i}": draw(conditions(op)) for op in OPS for i in range(2)}
    for i in range(draw(st.integers(1, 3))):
        rule = draw(RULES)
        if draw(st.booleans()):
            ref = {"segment": draw(st.sampled_from(sorted(data)))}
            rule = {draw(st.sampled_from(["all", "any"])): [rule, {"not": ref}]}
        data[f"t{i}"] = rule
    return data


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 10))
    columns = {}
    for name, (pool, build) in COLUMNS.items():
        columns[name] = build(draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n)))
    columns["tags"] = pd.Series(draw(st.lists(LISTS, min_size=n, max_size=n)), dtype=object)
    frame = pd.DataFrame(columns)
    frame.index = pd.RangeIndex(100, 100 + n)
    return frame


def is_missing(value: Any) -> bool:
    if isinstance(value, list | dict):
        return False
    return value is None or bool(pd.isna(value)) or (isinstance(value, str) and value == "")


def without_missing(profile: dict[str, Any]) -> dict[str, Any]:
    """A row as a profile loader hands it over: missing values dropped."""
    return {key: value for key, value in profile.items() if not is_missing(value)}


@settings(max_examples=examples(100), deadline=None)
@given(data=segment_sets(), frame=frames())
def test_frame_and_profile_evaluation_agree(data: dict[str, Any], frame: pd.DataFrame) -> None:
    segments = parse_segments(data)
    result = segments.evaluate_frame(frame, AS_OF)
    assert list(result.columns) == segments.names
    assert result.index.equals(frame.index)
    assert all(pd.api.types.is_bool_dtype(dtype) for dtype in result.dtypes)
    for i, row in enumerate(frame.to_dict("records")):
        by_frame = result.iloc[i].to_dict()
        assert segments.evaluate_profile(without_missing(row), AS_OF) == by_frame, row
        assert segments.evaluate_profile(row, AS_OF) == by_frame, row
