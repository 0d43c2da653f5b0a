"""Profile loading: typing, missing values, and every rejection reason with row and field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from segments.errors import ProfileDataError
from segments.profiles import (
    FieldDef,
    ProfileSchema,
    ProfileValidator,
    count_rows,
    infer_file_schema,
    infer_schema,
    read_chunks,
    to_records,
)

SCHEMA = ProfileSchema(
    {
        "id": FieldDef("id", "string", required=True),
        "email": FieldDef("email", "string", required=True),
        "first_name": FieldDef("first_name", "string"),
        "total_spent": FieldDef("total_spent", "float", default=0),
        "orders": FieldDef("orders", "int"),
        "opt_in": FieldDef("opt_in", "bool"),
        "signed_up_at": FieldDef("signed_up_at", "datetime"),
        "cart": FieldDef("cart", "list"),
    }
)

CSV = """id,email,first_name,total_spent,orders,opt_in,signed_up_at,cart
1,ana@example.com,Ana,10.5,2,true,2026-01-02T03:04:05Z,"[{""sku"": ""A""}]"
2,bo@example.com,,,,yes,2026-01-02,
3,not-an-email,Cy,1,1,no,,
4,dee@example.com,Dee,12O.50,1,true,,
5,eve@example.com,Eve,1,1.5,true,,
6,fay@example.com,Fay,1,1,maybe,,
7,gus@example.com,Gus,1,1,true,2026-02-30T10:00:00Z,
8,hal@example.com,Hal,1,1,true,,not json
1,ana2@example.com,Ana,1,1,true,,
,ivy@example.com,Ivy,1,1,true,,
11,   ,Jo,1,1,true,,
12,kim@example.com,NaN-free,1,1,false,,
13,lou@example.com,Lou,1,1,true,,
"""


def validate(
    path: Path, fmt: str, **kwargs: object
) -> tuple[pd.DataFrame, list[dict[str, object]]]:
    validator = ProfileValidator(SCHEMA, file=str(path), **kwargs)  # type: ignore[arg-type]
    frames, rejected = [], []
    for chunk in read_chunks(path, fmt, chunk_size=4):
        valid, rejections = validator.validate(chunk)
        frames.append(valid)
        rejected += [r.to_dict() for r in rejections]
    return pd.concat(frames), rejected


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "profiles.csv"
    path.write_text(CSV, encoding="utf-8")
    return path


def test_every_row_is_valid_or_rejected_with_row_field_and_reason(csv_file: Path) -> None:
    valid, rejected = validate(
        csv_file, "csv", consent_field="opt_in", suppressed_emails=frozenset({"lou@example.com"})
    )
    reasons = {r["row"]: (r["reason"], r["field"]) for r in rejected}
    assert reasons == {
        3: ("invalid_email", "email"),
        4: ("invalid_value", "total_spent"),
        5: ("invalid_value", "orders"),
        6: ("invalid_value", "opt_in"),
        7: ("invalid_value", "signed_up_at"),
        8: ("invalid_value", "cart"),
        9: ("duplicate_id", "id"),
        10: ("missing_required", "id"),
        11: ("missing_required", "email"),
        12: ("no_consent", "opt_in"),
        13: ("suppressed", "email"),
    }
    assert sorted(valid.index) == [1, 2]
    assert len(valid) + len(rejected) == 13
    for rejection in rejected:  # reasons name fields, never values
        assert "12O" not in str(rejection["detail"]) and "not json" not in str(rejection["detail"])


def test_values_are_typed_and_missing_values_are_absent(csv_file: Path) -> None:
    valid, _ = validate(csv_file, "csv")
    records = to_records(valid.loc[[1, 2]], SCHEMA.types())
    ana, bo = records
    assert ana["total_spent"] == 10.5 and ana["orders"] == 2 and ana["opt_in"] is True
    assert ana["signed_up_at"].isoformat() == "2026-01-02T03:04:05+00:00"
    assert ana["cart"] == [{"sku": "A"}]
    assert "first_name" not in bo and "orders" not in bo and "cart" not in bo
    assert bo["total_spent"] == 0.0  # the schema default
    assert bo["opt_in"] is True


def test_jsonl_nested_values_and_broken_lines(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    lines = [
        json.dumps(
            {"id": "1", "email": "a@example.com", "cart": [{"sku": "A", "qty": 2}], "orders": 3}
        ),
        "{not json",
        json.dumps([1, 2]),
        json.dumps(
            {"id": "2", "email": "b@example.com", "first_name": None, "total_spent": float("nan")}
        ),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    valid, rejected = validate(path, "jsonl")
    assert [(r["row"], r["reason"]) for r in rejected] == [(2, "invalid_json"), (3, "invalid_json")]
    first, second = to_records(valid, SCHEMA.types())
    assert first["cart"] == [{"sku": "A", "qty": 2}] and first["orders"] == 3
    assert "first_name" not in second and second["total_spent"] == 0.0


def test_parquet_lists_and_structs_reach_records_as_plain_python(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    frame = pd.DataFrame(
        {
            "id": ["1", "2"],
            "email": ["a@example.com", "b@example.com"],
            "cart": [[{"sku": "A", "qty": 1}], None],
            "orders": [1, None],
        }
    )
    frame.to_parquet(path)
    schema = infer_schema(next(read_chunks(path, "parquet", 10)).frame)
    assert schema.fields["cart"].type == "list"
    validator = ProfileValidator(schema, file=str(path))
    valid, rejected = validator.validate(next(read_chunks(path, "parquet", 10)))
    assert rejected == []
    first, second = to_records(valid, schema.types())
    assert first["cart"] == [{"sku": "A", "qty": 1}] and isinstance(first["cart"], list)
    assert "cart" not in second
    assert count_rows(path, "parquet") == 2


def test_missing_required_column_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("id,name\n1,x\n", encoding="utf-8")
    validator = ProfileValidator(SCHEMA, file=str(path))
    with pytest.raises(ProfileDataError, match="'email'") as caught:
        validator.validate(next(read_chunks(path, "csv", 10)))
    assert caught.value.file == str(path)


def test_other_delimiters_and_encodings_read_the_same(tmp_path: Path) -> None:
    semicolons = tmp_path / "semi.csv"
    semicolons.write_bytes("id;email;first_name\n1;a@example.com;José\n".encode("cp1252"))
    tabs = tmp_path / "tabs.jsonl"
    tabs.write_bytes(
        '{"id": "1", "email": "a@example.com", "first_name": "José"}\n'.encode("latin-1")
    )
    csv = next(read_chunks(semicolons, "csv", 10, delimiter=";", encoding="cp1252")).frame
    jsonl = next(read_chunks(tabs, "jsonl", 10, encoding="latin-1")).frame
    assert csv.to_dict("records") == jsonl.to_dict("records")
    assert csv.iloc[0]["first_name"] == "José"


def test_a_header_split_by_another_delimiter_is_named_in_the_hint(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("id;email\n1;a@example.com\n", encoding="utf-8")
    validator = ProfileValidator(SCHEMA, file=str(path))
    with pytest.raises(ProfileDataError) as caught:
        validator.validate(next(read_chunks(path, "csv", 10)))
    assert "';'-separated" in str(caught.value) and "profiles.delimiter" in str(caught.value)
    with pytest.raises(ProfileDataError) as caught:
        infer_schema(pd.DataFrame(columns=["id\temail"]))
    assert "(tab)-separated" in str(caught.value)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_text_that_is_not_utf8_says_which_encoding_to_set(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"p.{fmt}"
    line = "id,email\n1,josé@example.com\n" if fmt == "csv" else '{"id": "é"}\n'
    path.write_bytes(line.encode("cp1252"))
    with pytest.raises(ProfileDataError) as caught:
        list(read_chunks(path, fmt, 10))
    assert caught.value.file == str(path)
    assert "not utf-8 text" in str(caught.value) and "profiles.encoding" in str(caught.value)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileDataError, match="not found"):
        next(read_chunks(tmp_path / "nope.csv", "csv", 10))


def test_count_rows_counts_data_rows(csv_file: Path) -> None:
    assert count_rows(csv_file, "csv") == 13


def test_to_records_gives_plain_python_values_and_leaves_missing_out() -> None:
    from datetime import UTC, datetime

    from segments.profiles.schema import to_records

    frame = pd.DataFrame(
        {
            "n": np.array([1, 2], dtype="int64"),
            "ni": pd.array([3, None], dtype="Int64"),
            "f": [1.5, np.nan],
            "fi": [2.0, np.nan],  # a float column the schema calls int
            "b": np.array([True, False]),
            "bi": np.array([True, False]),  # bools the schema calls int
            "nb": pd.array([None, True], dtype="boolean"),
            "t": pd.to_datetime(["2026-01-02T03:04:05Z", None], utc=True),
            "d": pd.to_datetime(["2026-01-02", "2026-02-03"]).tz_localize("UTC"),
            "s": ["x", None],
            "l": [[1], None],
        }
    )
    types = {
        "n": "int", "ni": "int", "f": "float", "fi": "int", "b": "bool", "bi": "int",
        "nb": "bool", "t": "datetime", "d": "date", "s": "string", "l": "list",
    }  # fmt: skip
    first, second = to_records(frame, types)
    assert first == {
        "n": 1, "ni": 3, "f": 1.5, "fi": 2, "b": True, "bi": 1, "t": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "d": datetime(2026, 1, 2).date(), "s": "x", "l": [1],
    }  # fmt: skip
    assert second == {"n": 2, "b": False, "bi": 0, "nb": True, "d": datetime(2026, 2, 3).date()}
    assert [type(first[k]) for k in ("n", "ni", "fi", "bi")] == [int, int, int, int]
    assert type(first["b"]) is bool and first["t"].tzinfo is UTC


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_an_unreadable_profile_file_is_a_profile_error(
    tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / f"p.{fmt}"
    path.write_text("id,email\n1,a@example.com\n" if fmt == "csv" else '{"id": "1"}\n')

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(pd, "read_csv", refuse)
    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(ProfileDataError, match="cannot read the profile file: Permission denied"):
        list(read_chunks(path, fmt, 10))


def test_suppression_list_dialects_and_their_hints(tmp_path: Path) -> None:
    from segments.errors import ConfigError
    from segments.profiles.validate import load_suppression

    path = tmp_path / "suppressed.csv"
    path.write_bytes("email;reason\nJOSÉ@example.com;bounce\n".encode("cp1252"))
    assert load_suppression(path, "email", delimiter=";", encoding="cp1252") == {"josé@example.com"}
    with pytest.raises(ConfigError, match="not utf-8 text") as caught:
        load_suppression(path, "email")
    assert "suppression.encoding" in str(caught.value)
    with pytest.raises(ConfigError, match="no 'email' column") as caught:
        load_suppression(path, "email", encoding="cp1252")
    assert "suppression.delimiter" in str(caught.value)


NA_CSV = """id,email,first_name,last_name,country,total_spent
1,a@example.com,None,NA,NA,n/a
2,b@example.com, NaN ,Na,US,#N/A
3,c@example.com,null,Kim,US,NULL
4,d@example.com,n/A,Lee,US,-
5,e@example.com,<NA>,Nil,US,5
"""


def test_csv_spellings_of_no_value_are_missing_in_any_case_and_padding(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(NA_CSV, encoding="utf-8")
    frame = next(read_chunks(path, "csv", 10)).frame
    assert list(frame["first_name"]) == ["", "", "", "", ""]
    assert list(frame["total_spent"]) == ["", "", "", "-", "5"]
    # "NA" is Namibia and a surname, "Nil" a given name, "-" a value some fields use
    assert list(frame["country"]) == ["NA", "US", "US", "US", "US"]
    assert list(frame["last_name"]) == ["NA", "Na", "Kim", "Lee", "Nil"]


def test_na_values_can_be_chosen_or_turned_off(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(NA_CSV, encoding="utf-8")
    off = next(read_chunks(path, "csv", 10, na_values=[])).frame
    assert list(off["first_name"]) == ["None", " NaN ", "null", "n/A", "<NA>"]
    own = next(read_chunks(path, "csv", 10, na_values=["na", " - "])).frame
    assert list(own["country"]) == ["", "US", "US", "US", "US"]
    assert list(own["total_spent"]) == ["n/a", "#N/A", "NULL", "", "5"]


def test_jsonl_strings_spelling_no_value_are_missing(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    rows = [
        {"id": "1", "email": "a@example.com", "first_name": " None ", "tags": ["null"]},
        {"id": "2", "email": "b@example.com", "first_name": "N/A", "total_spent": "NaN"},
        {"id": "3", "email": "c@example.com", "first_name": "Ana", "total_spent": 4},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    valid, rejected = validate(path, "jsonl")
    assert rejected == []
    first, second, third = to_records(valid, SCHEMA.types())
    assert "first_name" not in first and "first_name" not in second
    assert second["total_spent"] == 0.0 and third == {**third, "first_name": "Ana"}
    raw = next(read_chunks(path, "jsonl", 10, na_values=[])).frame
    assert list(raw["first_name"]) == [" None ", "N/A", "Ana"]


INFER_CSV = """id,email,zip,orders,total,opt_in,signed_up_at,birthday,phone,code,account,mixed,bad_date,answer
007,a@example.com,02134,3,10.50,true,2026-01-02T03:04:05Z,1990-01-02,+14155551234,1E10,1234567890123456,1,2026-02-30,yes
8,b@example.com,10001,,0,FALSE,2026-01-02 03:04,1991-12-31,+442079460000,2E10,1,x,2026-02-01,No
9,c@example.com,,12,-3,N/A,2026-01-02,,,,,2,,
"""


def test_inferred_csv_types_need_every_present_value_to_parse(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(INFER_CSV, encoding="utf-8")
    schema = infer_file_schema(path, "csv", 10)
    assert schema.types() == {
        "id": "string",  # ids and addresses are text, whatever they look like
        "email": "string",
        "zip": "string",  # a leading zero
        "orders": "int",
        "total": "float",
        "opt_in": "bool",
        "signed_up_at": "datetime",
        "birthday": "date",
        "phone": "string",  # a leading +
        "code": "string",  # no exponents
        "account": "string",  # more than 15 digits
        "mixed": "string",
        "bad_date": "string",  # 2026-02-30 is no date
        "answer": "bool",
    }
    assert schema.fields["id"].required and schema.fields["email"].required
    assert not schema.fields["orders"].required
    validator = ProfileValidator(schema, file=str(path))
    valid, rejected = validator.validate(next(read_chunks(path, "csv", 10)))
    assert rejected == []
    first, second, third = to_records(valid, schema.types())
    assert first["id"] == "007" and first["zip"] == "02134" and first["total"] == 10.5
    assert second["opt_in"] is False and "opt_in" not in third and third["orders"] == 12
    assert first["birthday"].isoformat() == "1990-01-02"


def test_inferred_jsonl_and_parquet_types_keep_their_own(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    rows = [
        {"id": 1, "email": "a@example.com", "vip": True, "n": 2, "x": 1.5, "day": "2026-01-02"},
        {"id": 2, "email": "b@example.com", "vip": None, "n": 3, "x": 2, "day": None},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert infer_file_schema(path, "jsonl", 10).types() == {
        "id": "string",
        "email": "string",
        "vip": "bool",
        "n": "int",
        "x": "float",
        "day": "date",
    }
    frame = pd.DataFrame(
        {
            "id": [1, 2],
            "email": ["a@example.com", "b@example.com"],
            "since": [pd.Timestamp("2026-01-02").date(), None],
        }
    )
    frame.to_parquet(tmp_path / "p.parquet")
    types = infer_file_schema(tmp_path / "p.parquet", "parquet", 10).types()
    assert types == {"id": "string", "email": "string", "since": "date"}
