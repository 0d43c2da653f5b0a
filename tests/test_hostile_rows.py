"""Hostile profile rows: every malformed value rejects its row with a reason, never a
traceback (issue 10: numbers, surrogates, nesting, clock words, shapes, ids, control
characters, line numbers, malformed CSV lines)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from renderer import BuildOptions, build_campaign, load_campaign
from segments.errors import ProfileDataError
from segments.profiles import FieldDef, ProfileSchema, ProfileValidator, read_chunks, to_records
from segments.profiles.guards import MAX_DEPTH

SCHEMA = ProfileSchema(
    {
        "id": FieldDef("id", "string", required=True),
        "email": FieldDef("email", "string", required=True),
        "first_name": FieldDef("first_name", "string"),
        "n": FieldDef("n", "int"),
        "x": FieldDef("x", "float"),
        "day": FieldDef("day", "date"),
        "at": FieldDef("at", "datetime"),
        "cart": FieldDef("cart", "list"),
        "meta": FieldDef("meta", "dict"),
    }
)
HEADER = "id,email,first_name,n,x,day,at,cart,meta\n"


def validate(path: Path, **options: Any) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Valid rows and rejections of a whole file, as a build reads it (chunks of 3)."""
    fmt = path.suffix.lstrip(".")
    validator = ProfileValidator(SCHEMA, file=str(path))
    frames, rejected = [], []
    for chunk in read_chunks(path, fmt, 3, **options):
        valid, rejections = validator.validate(chunk)
        frames.append(valid)
        rejected += [r.to_dict() for r in rejections]
    return pd.concat(frames) if frames else pd.DataFrame(), rejected


def reasons(rejected: list[dict[str, Any]]) -> dict[int, tuple[str, str | None]]:
    return {r["row"]: (r["reason"], r["field"]) for r in rejected}


def csv_rows(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "p.csv"
    path.write_text(HEADER + "".join(row + "\n" for row in rows), encoding="utf-8")
    return path


def jsonl_rows(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "p.jsonl"
    path.write_text("".join(row + "\n" for row in rows), encoding="utf-8")
    return path


def row(i: int, **fields: str) -> str:
    """A CSV row of HEADER: id i, a valid email, the given fields."""
    values = {"id": str(i), "email": f"p{i}@example.com", **fields}
    return ",".join(values.get(name, "") for name in HEADER.strip().split(","))


# 1. numbers that do not fit ------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["inf", "-inf", "1e309", str(2**63), str(2**64), str(-(2**63) - 1), "Infinity"]
)
def test_an_int_that_does_not_fit_64_bits_is_invalid(tmp_path: Path, value: str) -> None:
    valid, rejected = validate(csv_rows(tmp_path, row(1, n=value), row(2, n="7")))
    assert reasons(rejected) == {1: ("invalid_value", "n")}
    assert valid["n"].tolist() == [7]


def test_ints_at_the_64_bit_edges_are_kept_exactly(tmp_path: Path) -> None:
    edges = [str(2**63 - 1), str(-(2**63)), "9007199254740993", "1e18"]
    path = csv_rows(tmp_path, *(row(i, n=v) for i, v in enumerate(edges, 1)), row(9, n=""))
    valid, rejected = validate(path)
    assert rejected == []
    numbers = [r.get("n") for r in to_records(valid, SCHEMA.types())]
    assert numbers == [2**63 - 1, -(2**63), 9007199254740993, 10**18, None]


@pytest.mark.parametrize("value", ["inf", "-inf", "1e309"])
def test_a_float_that_is_not_finite_is_invalid(tmp_path: Path, value: str) -> None:
    _, rejected = validate(csv_rows(tmp_path, row(1, x=value)))
    assert reasons(rejected) == {1: ("invalid_value", "x")}


NON_FINITE_JSON = ("1e400", "-1e400", "Infinity", "-Infinity")


@pytest.mark.parametrize(
    ("name", "number"),
    [
        *((name, n) for name in ("n", "x", "first_name") for n in NON_FINITE_JSON),
        ("n", str(2**64)),  # (a float field takes it, a text field spells it out)
    ],
)
def test_jsonl_numbers_past_float_or_int64_are_invalid(
    tmp_path: Path, name: str, number: str
) -> None:
    path = jsonl_rows(tmp_path, f'{{"id": "1", "email": "a@example.com", "{name}": {number}}}')
    _, rejected = validate(path)
    assert reasons(rejected) == {1: ("invalid_value", name)}


@pytest.mark.parametrize("field", ["day", "at"])
@pytest.mark.parametrize("value", ["-1", '"-0001-01-01"', '"10000-01-01"', '"0000-01-01"'])
def test_years_python_cannot_hold_are_invalid(tmp_path: Path, field: str, value: str) -> None:
    # found by tests/test_fuzz_rows.py: pandas read -1 as the year -1, then a traceback
    path = jsonl_rows(tmp_path, f'{{"id": "1", "email": "a@example.com", "{field}": {value}}}')
    valid, rejected = validate(path)
    assert reasons(rejected) == {1: ("invalid_value", field)}
    assert to_records(valid, SCHEMA.types()) == []


def test_jsonl_nan_is_missing_as_readme_says(tmp_path: Path) -> None:
    path = jsonl_rows(tmp_path, '{"id": "1", "email": "a@example.com", "n": NaN, "x": NaN}')
    valid, rejected = validate(path)
    assert rejected == [] and to_records(valid, SCHEMA.types())[0].keys() == {"id", "email"}


# 2. lone surrogates -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ('"first_name": "\\ud800"', "first_name"),
        ('"first_name": "ok\\udfffok"', "first_name"),
        ('"cart": [{"sku": "\\udbff"}]', "cart"),
        ('"\\ud800": 1', None),
    ],
)
def test_a_lone_surrogate_rejects_the_row_as_invalid_text(
    tmp_path: Path, fields: str, field: str | None
) -> None:
    path = jsonl_rows(
        tmp_path,
        f'{{"id": "1", "email": "a@example.com", {fields}}}',
        '{"id": "2", "email": "b@example.com", "first_name": "\\ud83d\\ude00"}',  # a pair: fine
    )
    valid, rejected = validate(path)
    assert reasons(rejected) == {1: ("invalid_text", field)}
    assert valid["first_name"].tolist() == ["\U0001f600"]


# 3. deep nesting ----------------------------------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_csv_cells_nested_past_the_limit_are_invalid(tmp_path: Path) -> None:
    path = csv_rows(
        tmp_path,
        row(1, cart='"' + "[" * 100_000 + '"'),
        row(2, cart='"' + nested(MAX_DEPTH + 1) + '"'),
        row(3, meta='"' + '{""a"":' * 5000 + "1" + "}" * 5000 + '"'),
        row(4, cart='"' + nested(MAX_DEPTH) + '"'),
    )
    valid, rejected = validate(path)
    assert reasons(rejected) == {
        1: ("invalid_value", "cart"),
        2: ("invalid_value", "cart"),
        3: ("invalid_value", "meta"),
    }
    assert list(valid.index) == [4]


def test_jsonl_values_nested_past_the_limit_are_invalid(tmp_path: Path) -> None:
    text = '"[[[[\\"{{{{"'  # brackets inside strings do not count
    path = jsonl_rows(
        tmp_path,
        '{"id": "1", "email": "a@example.com", "cart": ' + nested(5000) + "}",
        '{"id": "2", "email": "b@example.com", "meta": {"a": ' + nested(MAX_DEPTH) + "}}",
        '{"id": "3", "email": "c@example.com", "cart": ' + nested(MAX_DEPTH) + "}",
        '{"id": "4", "email": "d@example.com", "first_name": ' + text + ', "cart": [1]}',
        "[" * 100_000,
    )
    valid, rejected = validate(path)
    assert reasons(rejected) == {
        1: ("invalid_value", "cart"),
        2: ("invalid_value", "meta"),
        5: ("invalid_value", None),
    }
    assert list(valid.index) == [3, 4]


# 6. clock words -----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "word"), [("day", "today"), ("at", "now"), ("day", " now ")])
def test_clock_words_in_dates_are_invalid(tmp_path: Path, name: str, word: str) -> None:
    _, rejected = validate(csv_rows(tmp_path, row(1, **{name: word})))
    assert reasons(rejected) == {1: ("invalid_value", name)}
    path = jsonl_rows(tmp_path, json.dumps({"id": "1", "email": "a@example.com", name: word}))
    _, rejected = validate(path)
    assert reasons(rejected) == {1: ("invalid_value", name)}


# 9. shapes and ids --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ('"id": ["x"]', "id"),
        ('"id": {"a": 1}', "id"),
        ('"id": "1", "first_name": {"a": 1}', "first_name"),
        ('"id": "1", "first_name": ["Ana"]', "first_name"),
    ],
)
def test_a_list_or_dict_where_text_belongs_is_invalid(
    tmp_path: Path, fields: str, field: str
) -> None:
    path = jsonl_rows(tmp_path, f'{{"email": "a@example.com", {fields}}}')
    _, rejected = validate(path)
    assert reasons(rejected) == {1: ("invalid_value", field)}


def test_jsonl_numbers_in_text_fields_are_still_spelled_out(tmp_path: Path) -> None:
    path = jsonl_rows(tmp_path, '{"id": 42, "email": "a@example.com", "first_name": 1.0}')
    valid, rejected = validate(path)
    assert rejected == [] and valid.loc[1, "id"] == "42" and valid.loc[1, "first_name"] == "1"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_ids_are_compared_trimmed_nfc_and_without_zero_width_characters(
    tmp_path: Path, fmt: str
) -> None:
    ids = [" dup ", "dup", "dup\u200b", "\ufeffdup", "e\u0301", "\u00e9", "DUP", "\u200b"]
    if fmt == "csv":
        path = csv_rows(tmp_path, *(row(n, id=i) for n, i in enumerate(ids)))
    else:
        lines = [json.dumps({"id": i, "email": f"p{n}@example.com"}) for n, i in enumerate(ids)]
        path = jsonl_rows(tmp_path, *lines)
    valid, rejected = validate(path)
    assert reasons(rejected) == {
        2: ("duplicate_id", "id"),
        3: ("duplicate_id", "id"),
        4: ("duplicate_id", "id"),
        6: ("duplicate_id", "id"),
        8: ("missing_required", "id"),
    }
    assert valid["id"].tolist() == ["dup", "\u00e9", "DUP"]  # case matters


# 10. control characters ---------------------------------------------------------------


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x1f", "\x0b"])
def test_a_control_character_rejects_the_row_as_invalid_text(tmp_path: Path, char: str) -> None:
    path = tmp_path / "p.jsonl"
    lines = [
        {"id": "1", "email": "a@example.com", "first_name": f"A{char}na"},
        {"id": "2", "email": "b@example.com", "cart": [{"sku": f"x{char}"}]},
        {"id": f"3{char}", "email": "c@example.com"},
        {"id": "4", "email": "d@example.com", "first_name": "tab\tline\nfeed\r"},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    valid, rejected = validate(path)
    assert reasons(rejected) == {
        1: ("invalid_text", "first_name"),
        2: ("invalid_text", "cart"),
        3: ("invalid_text", "id"),
    }
    assert list(valid.index) == [4]
    cart = json.dumps([f"x{char}"]).replace('"', '""')
    csv_path = csv_rows(tmp_path, row(1, first_name=f"A{char}na"), row(2, cart=f'"{cart}"'))
    _, rejected = validate(csv_path)
    assert reasons(rejected) == {1: ("invalid_text", "first_name"), 2: ("invalid_text", "cart")}


# 12. line numbers ---------------------------------------------------------------------


@pytest.mark.parametrize("line", [1, 2, 5000])
def test_text_that_is_not_utf8_names_its_jsonl_line(tmp_path: Path, line: int) -> None:
    good = b'{"id": "1", "email": "a@example.com"}\n'
    path = tmp_path / "p.jsonl"
    path.write_bytes(good * (line - 1) + b'{"id": "\xff"}\n' + good)
    with pytest.raises(ProfileDataError) as caught:
        list(read_chunks(path, "jsonl", 10))
    assert caught.value.line == line and str(caught.value).startswith(f"{path}:{line}: ")


@pytest.mark.parametrize("line", [2, 3, 5001])
def test_text_that_is_not_utf8_names_its_csv_line(tmp_path: Path, line: int) -> None:
    path = tmp_path / "p.csv"
    good = b"1,a@example.com\n"
    path.write_bytes(b"id,email\n" + good * (line - 2) + b"2,\xff@example.com\n" + good)
    with pytest.raises(ProfileDataError) as caught:
        list(read_chunks(path, "csv", 10))
    assert caught.value.line == line and "not utf-8 text" in str(caught.value)


# End to end ---------------------------------------------------------------------------

TEMPLATE = (
    "<mjml><mj-head><mj-preview>{{ first_name | fallback('there') }} pre</mj-preview></mj-head>"
    "<mj-body><mj-section><mj-column><mj-text>Hi {{ first_name | fallback('there') }}, "
    "{% for item in cart | fallback([]) %}{{ item }} {% endfor %}"
    "{{ since | fallback('') }}</mj-text></mj-column></mj-section></mj-body></mjml>"
)


def small_campaign(tmp_path: Path, profiles: str, name: str = "p.csv", extra: str = "") -> Path:
    (tmp_path / "t.mjml").write_text(TEMPLATE, encoding="utf-8")
    (tmp_path / name).write_bytes(profiles.encode("utf-8", "surrogatepass"))
    campaign = tmp_path / "c.yaml"
    campaign.write_text(
        "name: hostile\ntemplate: t.mjml\nsubject: \"Hi {{ first_name | fallback('you') }}\"\n"
        "preheader: \"For {{ first_name | fallback('you') }}\"\n"
        "as_of: 2026-11-20T09:00:00Z\npaths: {templates: ['.']}\n"
        f"profiles: {{path: {name}, chunk_size: 2{extra}}}\n"
        "schema:\n  id: {type: string, required: true}\n  email: {type: string, required: true}\n"
        "  first_name: string\n  n: int\n  since: date\n  cart: list\n",
        encoding="utf-8",
    )
    return campaign


def build(campaign: Path, out: Path) -> dict[str, Any]:
    return build_campaign(load_campaign(campaign), BuildOptions(out=out))


def output_bytes(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "summary.json"  # (timings)
    }


def assert_no_control_characters(out: Path, chars: str) -> None:
    """None of ``chars`` in any output file, raw or as a JSON escape (the manifest's
    subject and preheader)."""
    escapes = [json.dumps(c)[1:-1].encode() for c in chars]
    for name, data in output_bytes(out).items():
        assert not any(c.encode() in data for c in chars), name
        assert not any(e in data for e in escapes), name
    for line in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        assert not any(c in entry["subject"] + entry["preheader"] for c in chars)


def errors_of(out: Path) -> dict[int, tuple[str, str | None]]:
    lines = (out / "errors.jsonl").read_text(encoding="utf-8").splitlines()
    return {e["row"]: (e["reason"], e["field"]) for e in map(json.loads, lines)}


def reconciled(summary: dict[str, Any]) -> bool:
    return bool(
        summary["input_rows"] == summary["rendered"] + summary["rejected"] + summary["holdout"]
    )


def test_hostile_jsonl_rows_are_rejected_and_never_reach_an_email(tmp_path: Path) -> None:
    rows = [
        {"id": "1", "email": "a@example.com", "first_name": "Ana"},
        {"id": "2", "email": "b@example.com", "first_name": "Nul\u0000l"},
        {"id": "3", "email": "c@example.com", "cart": ["\u001b[31mred"]},
        {"id": " 1 ", "email": "d@example.com"},
        {"id": "1\u200b", "email": "e@example.com"},
        {"id": ["6"], "email": "f@example.com"},
        {"id": "7", "email": "g@example.com", "first_name": {"a": 1}},
        {"id": "8", "email": "h@example.com", "since": "today"},
    ]
    lines = [json.dumps(r) for r in rows]
    lines += [
        '{"id": "9", "email": "i@example.com", "n": 1e400}',
        '{"id": "10", "email": "j@example.com", "first_name": "\\ud800"}',
        '{"id": "11", "email": "k@example.com", "cart": ' + nested(3000) + "}",
        '{"id": "12", "email": "l@example.com", "n": 99999999999999999999}',
    ]
    campaign = small_campaign(tmp_path, "\n".join(lines) + "\n", "p.jsonl")
    summary = build(campaign, tmp_path / "out")
    assert summary["rendered"] == 1 and reconciled(summary)
    assert errors_of(tmp_path / "out") == {
        2: ("invalid_text", "first_name"),
        3: ("invalid_text", "cart"),
        4: ("duplicate_id", "id"),
        5: ("duplicate_id", "id"),
        6: ("invalid_value", "id"),
        7: ("invalid_value", "first_name"),
        8: ("invalid_value", "since"),
        9: ("invalid_value", "n"),
        10: ("invalid_text", "first_name"),
        11: ("invalid_value", "cart"),
        12: ("invalid_value", "n"),
    }
    assert_no_control_characters(tmp_path / "out", "\x00\x1b")


def test_control_characters_in_csv_never_reach_subject_preheader_or_html(tmp_path: Path) -> None:
    profiles = "id,email,first_name\n1,a@example.com,Ana\n2,b@example.com,B\x00o\n"
    profiles += "3,c@example.com,C\x08y\n4,d@example.com,\x1bDee\n"
    summary = build(small_campaign(tmp_path, profiles), tmp_path / "out")
    assert summary["rendered"] == 1 and reconciled(summary)
    assert set(errors_of(tmp_path / "out").values()) == {("invalid_text", "first_name")}
    assert_no_control_characters(tmp_path / "out", "\x00\x08\x1b")


def test_a_rebuild_with_clock_words_is_byte_identical(tmp_path: Path) -> None:
    profiles = "id,email,first_name,since\n1,a@example.com,Ana,today\n2,b@example.com,Bo,now\n"
    profiles += "3,c@example.com,Cy,2026-01-02\n"
    campaign = small_campaign(tmp_path, profiles)
    first = build(campaign, tmp_path / "one")
    second = build(campaign, tmp_path / "two")
    assert first["rendered"] == second["rendered"] == 1
    assert output_bytes(tmp_path / "one") == output_bytes(tmp_path / "two")
    digest = hashlib.sha256((tmp_path / "one" / "manifest.jsonl").read_bytes()).hexdigest()
    assert digest == hashlib.sha256((tmp_path / "two" / "manifest.jsonl").read_bytes()).hexdigest()


# 13. malformed CSV lines --------------------------------------------------------------


def good_rows(first: int, count: int) -> list[str]:
    return [row(i) for i in range(first, first + count)]


@pytest.mark.slow  # several builds
def test_a_malformed_csv_line_rejects_that_line_only(tmp_path: Path) -> None:
    lines = [
        *good_rows(1, 3),
        row(4) + ",extra,fields",  # data row 4, file line 5
        '5,p5@example.com,"never closed',  # line 6
        *good_rows(6, 2),
        '8,p8@example.com,"two\nlines"',  # lines 9-10: one record
        "",  # a blank line: skipped, as pandas skips it
        row(9),
        '10,p10@example.com,"wide\nrecord",1,1,,,,,,',  # lines 13-14: one malformed row
        *good_rows(11, 200),
    ]
    path = csv_rows(tmp_path, *lines)
    valid, rejected = validate(path, max_malformed=0.02)
    assert [(r["row"], r["reason"], r["detail"].split(":")[0]) for r in rejected] == [
        (4, "malformed_row", "CSV line 5"),
        (5, "malformed_row", "CSV line 6"),
        (10, "malformed_row", "CSV line 13"),
    ]
    assert len(valid) + len(rejected) == 210
    assert valid.loc[8, "first_name"] == "two\nlines" and valid.loc[6, "id"] == "6"
    assert list(valid.index) == [r for r in range(1, 211) if r not in (4, 5, 10)]


@pytest.mark.slow  # builds the file at many chunk sizes
def test_malformed_lines_are_found_in_any_chunk_size(tmp_path: Path) -> None:
    lines = [*good_rows(1, 150), row(151) + ",x", '152,p@example.com,"open', *good_rows(153, 148)]
    path = csv_rows(tmp_path, *lines)
    for size in (1, 2, 7, 1000):
        validator = ProfileValidator(SCHEMA, file=str(path))
        rows, bad = [], []
        for chunk in read_chunks(path, "csv", size, max_malformed=0.01):
            valid, rejections = validator.validate(chunk)
            rows += list(valid.index)
            bad += [(r.row, r.reason) for r in rejections]
        assert bad == [(151, "malformed_row"), (152, "malformed_row")], size
        assert rows == [r for r in range(1, 301) if r not in (151, 152)], size


@pytest.mark.slow  # several builds
def test_too_many_malformed_lines_fail_the_file_with_the_delimiter_hint(tmp_path: Path) -> None:
    path = csv_rows(tmp_path, *good_rows(1, 98), row(99) + ",x", row(100) + ",x")
    with pytest.raises(ProfileDataError) as caught:
        validate(path)
    error = caught.value
    assert error.line == 100 and "2 of 100" in error.message
    assert error.hint is not None and "profiles.delimiter" in error.hint
    assert "profiles.max_malformed" in error.hint
    _, rejected = validate(path, max_malformed=0.02)
    assert len(rejected) == 2


def test_a_file_in_the_wrong_dialect_fails_before_it_is_read_to_the_end(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("id;email\n" + "".join(f'{i};"a,b",c\n' for i in range(5000)))
    chunks = read_chunks(path, "csv", 100)
    with pytest.raises(ProfileDataError, match="malformed"):
        next(chunks)


def test_malformed_rows_reconcile_in_a_build(tmp_path: Path) -> None:
    lines = ["id,email,first_name"] + [f"{i},p{i}@example.com,N{i}" for i in range(1, 301)]
    lines[50] = '50,p50@example.com,"Open'
    lines[120] = "120,p120@example.com,Wide,1,2,3"
    campaign = small_campaign(tmp_path, "\n".join(lines) + "\n")
    summary = build(campaign, tmp_path / "out")
    assert summary["input_rows"] == 300 and summary["rendered"] == 298 and reconciled(summary)
    errors = [json.loads(e) for e in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert [(e["row"], e["reason"], e["detail"].split(":")[0]) for e in errors] == [
        (50, "malformed_row", "CSV line 51"),
        (120, "malformed_row", "CSV line 121"),
    ]
    assert "Open" not in (tmp_path / "out" / "errors.jsonl").read_text()


def test_max_malformed_is_a_profiles_setting(tmp_path: Path) -> None:
    profiles = "id,email,first_name\n1,a@example.com,A\n2,b@example.com,B,x\n"
    with pytest.raises(ProfileDataError, match="max_malformed"):
        build(small_campaign(tmp_path, profiles), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    summary = build(
        small_campaign(tmp_path, profiles, extra=", max_malformed: 0.5"), tmp_path / "o"
    )
    assert summary["rendered"] == 1 and summary["rejected"] == 1 and reconciled(summary)
