"""One address, one email: normalized addresses, ``duplicate_email`` with the first row."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from renderer import BuildOptions, build_campaign
from renderer.campaign import adhoc_campaign
from segments.profiles import FieldDef, ProfileSchema, ProfileValidator, read_chunks
from segments.profiles.emails import FirstRows, normalize_email

SCHEMA = ProfileSchema(
    {
        "id": FieldDef("id", "string", required=True),
        "email": FieldDef("email", "string", required=True),
    },
    "id",
    "email",
)


def rejections(
    tmp_path: Path, emails: list[str], chunk_size: int = 100, rules: tuple[str, ...] = ()
) -> list[dict[str, object]]:
    path = tmp_path / "profiles.csv"
    lines = ["id,email", *(f"C{i},{email}" for i, email in enumerate(emails, 1))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    validator = ProfileValidator(SCHEMA, file=str(path), email_rules=rules)
    found = []
    for chunk in read_chunks(path, "csv", chunk_size=chunk_size):
        found += [r.to_dict() for r in validator.validate(chunk)[1]]
    return found


def test_address_case_is_one_mailbox_and_the_detail_names_the_first_row(tmp_path: Path) -> None:
    found = rejections(tmp_path, ["b@example.com", "A@example.com", "a@EXAMPLE.com"])
    assert found == [
        {
            "row": 3,
            "id": "C3",
            "field": "email",
            "reason": "duplicate_email",
            "detail": "address in field 'email' already used by row 2",
        }
    ]
    assert "example" not in str(found[0]["detail"])  # messages name fields, never values


def test_unicode_nfc_variants_and_idna_domains_are_one_address(tmp_path: Path) -> None:
    composed, decomposed = "jos\u00e9@example.com", "jose\u0301@example.com"
    assert normalize_email(composed) == normalize_email(decomposed)
    assert normalize_email("ana@B\u00fccher.Example") == "ana@xn--bcher-kva.example"
    found = rejections(
        tmp_path,
        [composed, decomposed, "ana@b\u00fccher.example", "ana@xn--bcher-kva.example"],
    )
    assert [(r["row"], r["reason"], r["detail"]) for r in found] == [
        (2, "duplicate_email", "address in field 'email' already used by row 1"),
        (4, "duplicate_email", "address in field 'email' already used by row 3"),
    ]


def test_gmail_dots_and_plus_tags_only_when_enabled(tmp_path: Path) -> None:
    emails = ["jane.doe@gmail.com", "janedoe@googlemail.com", "jane.doe+news@gmail.com"]
    assert rejections(tmp_path, emails) == []
    assert [r["row"] for r in rejections(tmp_path, emails, rules=("plus_tags",))] == [3]
    both = rejections(tmp_path, emails, rules=("gmail_dots", "plus_tags"))
    assert [(r["row"], r["detail"]) for r in both] == [
        (2, "address in field 'email' already used by row 1"),
        (3, "address in field 'email' already used by row 1"),
    ]
    # dots matter everywhere but Gmail
    assert rejections(tmp_path, ["a.b@example.com", "ab@example.com"], rules=("gmail_dots",)) == []


def test_duplicates_are_found_across_chunks(tmp_path: Path) -> None:
    emails = [f"user{i}@example.com" for i in range(20)] + [
        "USER3@example.com",
        "user19@Example.COM",
    ]
    found = rejections(tmp_path, emails, chunk_size=3)
    assert [(r["row"], r["detail"]) for r in found] == [
        (21, "address in field 'email' already used by row 4"),
        (22, "address in field 'email' already used by row 20"),
    ]


def test_an_earlier_rejected_row_does_not_claim_the_address(tmp_path: Path) -> None:
    # row 2 repeats row 1's id: rejected as duplicate_id, so row 3 gets the address
    path = tmp_path / "profiles.csv"
    path.write_text("id,email\nC1,a@example.com\nC1,b@example.com\nC3,B@example.com\n")
    validator = ProfileValidator(SCHEMA, file=str(path))
    found = [
        r.to_dict()
        for c in read_chunks(path, "csv", chunk_size=10)
        for r in validator.validate(c)[1]
    ]
    assert [(r["row"], r["reason"]) for r in found] == [(2, "duplicate_id")]


def test_first_rows_finds_each_text_with_its_row() -> None:
    seen = FirstRows()
    seen.add(pd.Series(["a", "b"]), [5, 7])
    seen.add(pd.Series(["c"]), [9])
    assert list(seen.first_rows(pd.Series(["c", "x", "a", "b"]))) == [9, -1, 5, 7]
    assert len(seen) == 3


@pytest.mark.parametrize("workers", [1, 2])
def test_a_build_rejects_the_same_rows_with_workers(tmp_path: Path, workers: int) -> None:
    template = tmp_path / "t.mjml"
    template.write_text(
        "<mjml><mj-body><mj-section><mj-column><mj-text>Hi {{ id }}</mj-text>"
        "</mj-column></mj-section></mj-body></mjml>",
        encoding="utf-8",
    )
    profiles = tmp_path / "p.csv"
    rows = [f"C{i},user{i % 30}@Example.com" for i in range(1, 61)]
    profiles.write_text("id,email\n" + "\n".join(rows) + "\n", encoding="utf-8")
    campaign = adhoc_campaign(template, profiles)
    campaign = campaign.model_copy(
        update={"profiles": campaign.profiles.model_copy(update={"chunk_size": 7})}
    )
    out = tmp_path / "out"
    summary = build_campaign(campaign, BuildOptions(out=out, workers=workers))
    assert summary["rendered"] == 30 and summary["rejected"] == 30
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [(e["row"], e["reason"]) for e in errors] == [
        (row, "duplicate_email") for row in range(31, 61)
    ]
    assert errors[0]["detail"] == "address in field 'email' already used by row 1"


def test_the_suppression_list_is_compared_as_addresses_are(tmp_path: Path) -> None:
    path = tmp_path / "profiles.csv"
    path.write_text(
        "id,email\nC1,jane.doe@gmail.com\nC2,ana@b\u00fccher.example\nC3,bo@example.com\n",
        encoding="utf-8",
    )
    suppressed = frozenset({"janedoe@googlemail.com", "ana@xn--bcher-kva.example"})

    def rejected_rows(rules: tuple[str, ...]) -> list[int]:
        validator = ProfileValidator(
            SCHEMA, file=str(path), suppressed_emails=suppressed, email_rules=rules
        )
        chunks = read_chunks(path, "csv", chunk_size=10)
        return [r.row for c in chunks for r in validator.validate(c)[1]]

    assert rejected_rows(()) == [2]
    assert rejected_rows(("gmail_dots",)) == [1, 2]
