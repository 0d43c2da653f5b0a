"""Generated hostile CSV and JSONL profile files: no exception escapes but a located
ProfileDataError, and every input row is either a typed record or a rejection with a
reason (issue 10's fuzz suite, for the profile readers). Slow: CI runs them
(`pytest -m slow`; HYPOTHESIS_PROFILE=full tries 300 files of each kind)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segments.errors import ProfileDataError
from segments.profiles import FieldDef, ProfileSchema, ProfileValidator, read_chunks, to_records
from tests.conftest import examples

SCHEMA = ProfileSchema(
    {
        "id": FieldDef("id", "string", required=True),
        "email": FieldDef("email", "string", required=True),
        "first_name": FieldDef("first_name", "string"),
        "n": FieldDef("n", "int"),
        "x": FieldDef("x", "float", default=0),
        "ok": FieldDef("ok", "bool"),
        "day": FieldDef("day", "date"),
        "at": FieldDef("at", "datetime"),
        "cart": FieldDef("cart", "list"),
        "meta": FieldDef("meta", "dict"),
    }
)
COLUMNS = list(SCHEMA.fields)
REASONS = {
    "malformed_row",
    "invalid_json",
    "missing_required",
    "invalid_value",
    "invalid_text",
    "invalid_email",
    "duplicate_id",
    "duplicate_email",
}
FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Values an attacker or a careless exporter writes: numbers that do not fit, clock
# words, brackets, quotes, delimiters, line breaks, control characters, RTL and emoji.
HOSTILE_CELLS = st.sampled_from(
    [
        "inf",
        "-inf",
        "NaN",
        "1e309",
        str(2**63),
        str(-(2**63) - 1),
        "9007199254740993",
        "now",
        "today",
        "2026-02-30",
        "[" * 200,
        "[[[[]]]]",
        '{"a": [1, {"b": null}]}',
        "\x00",
        "a\x1bb",
        "\u200b",
        " dup ",
        "dup",
        "\u202eevil",
        "😀",
        '"',
        '""',
        ",",
        ";",
        "\n",
        "\r\n",
        "\t",
        "",
        "   ",
        "null",
        "true",
        "1.5",
        "a@example.com",
    ]
)
CELLS = st.one_of(HOSTILE_CELLS, st.text(max_size=12))


def quoted(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"'


@st.composite
def csv_lines(draw: st.DrawFn) -> str:
    """One line of a CSV file: cells quoted or not (so quotes may be left open), with
    a field count near the header's."""
    width = draw(st.integers(0, len(COLUMNS) + 2))
    cells = [draw(CELLS) for _ in range(width)]
    if cells:
        cells[0] = draw(st.one_of(st.sampled_from(["1", "2", " 2", "3\u200b"]), CELLS))
    if len(cells) > 1:
        cells[1] = draw(st.one_of(st.just("p@example.com"), CELLS))
    parts = [quoted(c) if draw(st.booleans()) else c for c in cells]
    return ",".join(parts)


def account(path: Path, fmt: str, chunk_size: int, **options: Any) -> tuple[int, list[int]]:
    """Read and validate a file; check every row is valid (and becomes a record) or
    rejected with a known reason, exactly once, numbered 1..N; return N and the valid."""
    validator = ProfileValidator(SCHEMA, file=str(path))
    seen: list[int] = []
    valid_rows: list[int] = []
    for chunk in read_chunks(path, fmt, chunk_size, **options):
        valid, rejections = validator.validate(chunk)
        records = to_records(valid, SCHEMA.types())
        assert len(records) == len(valid)
        for record in records:
            json.dumps(record, default=str).encode("utf-8")  # writable text, no surrogate
            assert not any(isinstance(v, float) and not math.isfinite(v) for v in record.values())
        for rejection in rejections:
            assert rejection.reason in REASONS
            rejection_text = json.dumps(rejection.to_dict())
            assert "\x00" not in rejection_text
        valid_rows += [int(r) for r in valid.index]
        seen += [int(r) for r in valid.index] + [r.row for r in rejections]
    assert sorted(seen) == list(range(1, len(seen) + 1)), "rows lost, repeated or renumbered"
    return len(seen), valid_rows


@pytest.mark.slow
@settings(FUZZ, max_examples=examples(300))
@given(lines=st.lists(csv_lines(), max_size=25), chunk_size=st.integers(1, 8))
def test_generated_csv_rows_are_records_or_rejections(
    tmp_path_factory: Any, lines: list[str], chunk_size: int
) -> None:
    path = tmp_path_factory.mktemp("csv") / "p.csv"
    path.write_text(",".join(COLUMNS) + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    account(path, "csv", chunk_size, max_malformed=1.0)
    try:  # with the default share the file may fail, located, as a whole
        account(path, "csv", chunk_size)
    except ProfileDataError as error:
        assert error.file == str(path) and error.line is not None and error.hint


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    HOSTILE_CELLS,
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def jsonl_lines(draw: st.DrawFn) -> str:
    """One JSONL line: an object of hostile values (surrogates escaped by json.dumps,
    non-finite numbers written as Infinity/NaN, deep nesting), or raw garbage."""
    kind = draw(st.sampled_from(["object", "object", "object", "deep", "garbage"]))
    if kind == "garbage":
        return draw(st.text(max_size=20).map(lambda t: t.replace("\n", " ").replace("\r", " ")))
    names = st.sampled_from([*COLUMNS, "extra"])
    row = draw(st.dictionaries(names, JSON_VALUES, max_size=6))
    row.setdefault("id", draw(st.sampled_from(["1", " 1", "1\u200b", "2", 3, ["x"]])))
    row.setdefault("email", "p@example.com")
    text = json.dumps(row)
    if kind == "deep":
        depth = draw(st.sampled_from([31, 32, 33, 34, 2000, 50_000]))
        text = text[:-1] + ', "cart": ' + "[" * depth + "]" * depth + "}"
    return text


@pytest.mark.slow
@settings(FUZZ, max_examples=examples(300))
@given(lines=st.lists(jsonl_lines(), max_size=20), chunk_size=st.integers(1, 8))
def test_generated_jsonl_rows_are_records_or_rejections(
    tmp_path_factory: Any, lines: list[str], chunk_size: int
) -> None:
    path = tmp_path_factory.mktemp("jsonl") / "p.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    rows, _ = account(path, "jsonl", chunk_size)
    assert rows == len(lines)  # every line is an input row
