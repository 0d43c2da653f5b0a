"""Exclusive groups, minimum sizes and overlaps (segments.audience.hierarchy)."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from segments.audience.hierarchy import (
    ExclusiveGroup,
    MinSizes,
    SizeLimit,
    exclusive_columns,
    largest_overlaps,
    overlap_matrix,
    parse_exclusive,
    parse_min_size,
    parse_size_limit,
    size_warnings,
)
from segments.errors import SegmentRuleError
from segments.yamlsrc import load_yaml_text

JOURNEY = ExclusiveGroup("journey", ("cart", "vip", "lapsed"), otherwise="regular")


def membership(**columns: list[bool]) -> pd.DataFrame:
    return pd.DataFrame(columns)


def test_each_profile_lands_in_the_first_segment_it_matches() -> None:
    frame = membership(
        cart=[True, False, False, True, False],
        vip=[True, True, False, False, False],
        lapsed=[True, True, True, False, False],
    )
    assert JOURNEY.assign(frame).tolist() == ["cart", "vip", "lapsed", "cart", "regular"]
    columns = exclusive_columns(frame, [JOURNEY])
    assert list(columns.columns) == [
        "journey:cart",
        "journey:vip",
        "journey:lapsed",
        "journey:regular",
    ]
    assert columns.sum(axis=1).tolist() == [1, 1, 1, 1, 1]  # exactly one label per profile


def test_without_otherwise_a_profile_may_stay_unassigned() -> None:
    group = ExclusiveGroup("tier", ("vip", "cart"))
    frame = membership(vip=[False, True], cart=[False, True])
    assert group.assign(frame).tolist() == [None, "vip"]
    assert exclusive_columns(frame, [group]).sum(axis=1).tolist() == [0, 1]
    assert group.label_of([]) is None


@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.booleans()), min_size=1, max_size=30))
def test_per_profile_label_agrees_with_the_vectorized_one(rows: list[tuple[bool, ...]]) -> None:
    frame = pd.DataFrame(rows, columns=["cart", "vip", "lapsed"])
    vectorized = JOURNEY.assign(frame).tolist()
    one_by_one = [
        JOURNEY.label_of([n for n, hit in zip(frame.columns, row, strict=True) if hit])
        for row in rows
    ]
    assert vectorized == one_by_one


EXCLUSIVE_YAML = """\
exclusive:
  journey:
    segments: [cart, vip]
    otherwise: regular
  tier: [vip, nope]
"""


def test_exclusive_errors_name_file_and_line() -> None:
    data = load_yaml_text(EXCLUSIVE_YAML, "segs.yaml")
    with pytest.raises(SegmentRuleError) as info:
        parse_exclusive(data["exclusive"], segments=["cart", "vip"], file="segs.yaml")
    assert info.value.file == "segs.yaml" and info.value.line == 5
    assert "unknown segment 'nope'" in str(info.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("vip: [cart]", "has the name of a segment"),
        ("g: [cart, cart]", "listed twice"),
        ("g: {segments: [cart], otherwise: cart}", "is one of the group's segments"),
        ("g: {segments: [cart], also: x}", "unknown key 'also'"),
        ("g: []", "non-empty list"),
    ],
)
def test_malformed_exclusive_groups(body: str, message: str) -> None:
    data = load_yaml_text(body, "segs.yaml")
    with pytest.raises(SegmentRuleError, match=message):
        parse_exclusive(data, segments=["cart", "vip"], file="segs.yaml")


@pytest.mark.parametrize(
    ("raw", "limit"),
    [
        (50, SizeLimit(50, False)),
        ("2%", SizeLimit(0.02, True)),
        (0.02, SizeLimit(0.02, True)),
        (0, SizeLimit(0, False)),
    ],
)
def test_size_limits(raw: object, limit: SizeLimit) -> None:
    assert parse_size_limit(raw) == limit


@pytest.mark.parametrize("raw", [True, -1, "x%", "150%", 1.5, "many", None])
def test_bad_size_limits(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_size_limit(raw)


def test_min_size_default_and_per_segment() -> None:
    data = load_yaml_text("min_size: {default: 5%, vip: 3}\n", "s.yaml")
    sizes = parse_min_size(data["min_size"], segments=["vip", "cart"], file="s.yaml", line=1)
    assert sizes.for_segment("vip") == SizeLimit(3, False)
    assert sizes.for_segment("cart") == SizeLimit(0.05, True)
    assert MinSizes().for_segment("any") == SizeLimit(0.01, True)  # 1% by default
    bad = load_yaml_text("min_size:\n  default: 5%\n  nope: 3\n", "s.yaml")
    with pytest.raises(SegmentRuleError) as info:
        parse_min_size(bad["min_size"], segments=["vip"], file="s.yaml", line=1)
    assert info.value.line == 3 and "unknown segment 'nope'" in str(info.value)


def test_minimum_size_warnings_at_the_boundary() -> None:
    limits = MinSizes()  # 1%: with 1,000 profiles a segment needs 10
    found = size_warnings({"ok": 10, "small": 9, "empty": 0}, 1000, limits)
    assert [w.segment for w in found] == ["small", "empty"]
    assert str(found[0]) == (
        "segment 'small' has 9 members (0.9%), below its minimum size 1% (10 of 1000)"
    )
    assert "is empty" in str(found[1])
    counts = MinSizes(SizeLimit(5, False))
    assert [w.segment for w in size_warnings({"a": 4, "b": 5}, 10, counts)] == ["a"]
    assert size_warnings({"a": 0}, 10, MinSizes(SizeLimit(0, False))) == []


def test_overlap_matrix_and_largest_overlaps() -> None:
    frame = membership(
        vip=[True, True, True, False],
        elite=[True, True, False, False],
        lapsed=[False, False, True, True],
        lapsed_vip=[False, False, True, False],
    )
    matrix = overlap_matrix(frame)
    assert matrix.loc["vip", "vip"] == 3 and matrix.loc["vip", "elite"] == 2
    assert (matrix.to_numpy() == matrix.to_numpy().T).all()
    largest = largest_overlaps(matrix, {"lapsed_vip": {"vip", "lapsed"}})
    assert largest["elite"].other == "vip" and largest["elite"].share == 1.0
    assert "lapsed_vip" not in largest  # defined from vip and lapsed: overlap by design
    assert largest["vip"].other == "elite"
