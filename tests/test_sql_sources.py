"""SQL sources: profiles and events from SQLite and PostgreSQL build what the same rows
from CSV build (manifest, emails, rejections), and a bad source is a located error.

The data is the demo's (its first profiles, with bad addresses and a refused consent,
plus a duplicate id and an invalid int of our own) copied into a database with a row
number column ``n`` that the query orders by, so rows keep their CSV numbers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cli import app
from renderer import BuildOptions, build_campaign, load_campaign
from renderer.specs import sql_warnings
from segments.profiles.sqlread import mask_secrets, masked
from tests.conftest import copy_demo_campaign

ROWS = 120  # the demo's first rows: bad addresses (rows 23, 50), no consent (94, 105)
INVALID_INT_ROW = 80  # its `orders` becomes "lots": an invalid_value rejection
DUPLICATE_ROW = 100  # its id becomes row 90's: a duplicate_id rejection
runner = CliRunner()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo campaign with ROWS profiles (an invalid int, a duplicate id) and
    the events of those profiles plus the file's first 300 rows (unknown ids, a bad
    timestamp)."""
    folder = tmp_path_factory.mktemp("sql-demo")
    campaign = copy_demo_campaign(folder, ROWS)
    profiles = pd.read_csv(folder / "profiles.csv", dtype=str, keep_default_na=False)
    profiles.loc[INVALID_INT_ROW - 1, "orders"] = "lots"
    profiles.loc[DUPLICATE_ROW - 1, "id"] = profiles.loc[89, "id"]
    profiles.to_csv(folder / "profiles.csv", index=False)
    events = pd.read_csv(folder / "events.csv", dtype=str, keep_default_na=False)
    kept = events["profile_id"].isin(profiles["id"]) | (events.index < 300)
    events[kept].to_csv(folder / "events.csv", index=False)
    return campaign


@pytest.fixture(scope="module")
def csv_build(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("csv-build") / "out"
    build_campaign(load_campaign(demo), BuildOptions(out=out))
    return out


def load_tables(url: str, folder: Path, *, typed: bool) -> None:
    """The campaign folder's profiles.csv and events.csv as tables ``profiles`` and
    ``events`` with a row number ``n``: every value as text (``typed`` False, as the CSV
    reader sees it), or typed as pandas reads them (numbers, booleans; NULL for empty)."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        for name in ("profiles", "events"):
            path = folder / f"{name}.csv"
            frame = (
                pd.read_csv(path) if typed else pd.read_csv(path, dtype=str, keep_default_na=False)
            )
            frame.insert(0, "n", range(1, len(frame) + 1))
            frame.to_sql(name, engine, if_exists="replace", index=False, chunksize=5000)
    finally:
        engine.dispose()


def with_sources(campaign: Path, name: str, profiles: str, events: str | None = None) -> Path:
    """A copy of ``campaign`` (beside it, as ``name``) whose profiles (and events) are
    the given YAML flow mappings."""
    text = campaign.read_text(encoding="utf-8")
    text = re.sub(r"^profiles: .*$", f"profiles: {profiles}", text, count=1, flags=re.M)
    if events is not None:
        text = re.sub(r"^events: .*$", f"events: {events}", text, count=1, flags=re.M)
    path = campaign.with_name(name)
    path.write_text(text, encoding="utf-8")
    return path


def assert_same_build(expected: Path, actual: Path) -> None:
    """Manifest, rejections and every email byte for byte."""
    for name in ("manifest.jsonl", "errors.jsonl", "events_errors.jsonl"):
        assert (actual / name).read_bytes() == (expected / name).read_bytes(), name
    for folder in ("html", "text"):
        files = sorted(p.relative_to(expected) for p in (expected / folder).rglob("*"))
        assert files == sorted(p.relative_to(actual) for p in (actual / folder).rglob("*"))
        for name in files:
            if (expected / name).is_file():
                assert (actual / name).read_bytes() == (expected / name).read_bytes(), name


def rejections(out: Path) -> list[dict[str, Any]]:
    lines = (out / "errors.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


QUERY = '{url: "sqlite:///demo.db", query: "SELECT *, \'1%%: :x\' AS note FROM %s ORDER BY n"}'


def test_sqlite_chunks_validate_as_the_csv_rows(demo: Path) -> None:
    """The quick check (the builds below are in the slow set): the rows of a query, in
    chunks of 32, give the CSV file's valid rows and rejections (row, id, field, reason)."""
    from renderer.specs import make_validator, profile_file, schema_of

    load_tables(f"sqlite:///{demo.parent / 'demo.db'}", demo.parent, typed=False)
    chunked = QUERY.replace("}", ", chunk_size: 32}") % "profiles"

    def validated(campaign: Any) -> tuple[pd.DataFrame, list[Any]]:
        validator = make_validator(campaign, schema_of(campaign))
        parts = [validator.validate(chunk) for chunk in profile_file(campaign).chunks()]
        return pd.concat([valid for valid, _ in parts]), [r for _, found in parts for r in found]

    expected = validated(load_campaign(demo))
    actual = validated(load_campaign(with_sources(demo, "chunks.yaml", chunked)))
    pd.testing.assert_frame_equal(actual[0], expected[0])
    assert actual[1] == expected[1]
    reasons = {(r.row, r.field, r.reason) for r in actual[1]}
    assert (DUPLICATE_ROW, "id", "duplicate_id") in reasons
    assert (INVALID_INT_ROW, "orders", "invalid_value") in reasons


@pytest.mark.slow
def test_sqlite_query_source_builds_what_csv_builds(
    demo: Path, csv_build: Path, tmp_path: Path
) -> None:
    load_tables(f"sqlite:///{demo.parent / 'demo.db'}", demo.parent, typed=False)
    chunked = QUERY.replace("}", ", chunk_size: 32}") % "profiles"  # rows 90, 100: 2 chunks
    campaign = with_sources(demo, "sqlite-query.yaml", chunked, QUERY % "events")
    out = tmp_path / "out"
    summary = build_campaign(load_campaign(campaign), BuildOptions(out=out))
    assert_same_build(csv_build, out)
    reasons = {(r["row"], r["field"], r["reason"]) for r in rejections(out)}
    assert {(23, "email", "invalid_email"), (DUPLICATE_ROW, "id", "duplicate_id")} <= reasons
    assert (INVALID_INT_ROW, "orders", "invalid_value") in reasons
    assert not [w for w in summary["warnings"] if "ORDER BY" in w]


@pytest.mark.slow
def test_sqlite_typed_tables_build_what_csv_builds(
    demo: Path, csv_build: Path, tmp_path: Path
) -> None:
    """Integers, floats and booleans as SQLite stores them, NULL for an empty cell."""
    load_tables(f"sqlite:///{demo.parent / 'typed.db'}", demo.parent, typed=True)
    table = '{url: "sqlite:///typed.db", table: %s, order_by: [n]}'
    campaign = with_sources(demo, "sqlite-table.yaml", table % "profiles", table % "events")
    out = tmp_path / "out"
    build_campaign(load_campaign(campaign), BuildOptions(out=out))
    assert_same_build(csv_build, out)


@pytest.mark.slow
def test_personas_render_with_the_audience_of_a_database(demo: Path) -> None:
    """Snapshots and previews: the personas' derived fields come from the real profiles
    and events, read from the database as from the files."""
    from renderer.fixtures import prepare_fixtures

    load_tables(f"sqlite:///{demo.parent / 'demo.db'}", demo.parent, typed=False)
    expected = prepare_fixtures(load_campaign(demo))
    both = with_sources(demo, "personas.yaml", QUERY % "profiles", QUERY % "events")
    events_only = with_sources(demo, "personas-events.yaml", "profiles.csv", QUERY % "events")
    for campaign in (both, events_only):
        actual = prepare_fixtures(load_campaign(campaign))
        assert actual.names() == expected.names() != []
        population = actual.runtime.audience.population
        assert population is not None and len(population) > len(expected.names())
        pd.testing.assert_frame_equal(population, expected.runtime.audience.population)
        for name in expected.names():
            assert actual.render(name).html == expected.render(name).html, name


def test_a_query_without_order_by_warns(demo: Path) -> None:
    unordered = '{url: "sqlite:///demo.db", query: "SELECT * FROM profiles"}'
    campaign = load_campaign(with_sources(demo, "unordered.yaml", unordered))
    (warning,) = sql_warnings(campaign)
    assert warning.startswith("profiles.query has no ORDER BY")


def _build_error(campaign: Path, tmp_path: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["build", str(campaign), "--out", str(tmp_path / "o"), "-q"])
    assert "Traceback" not in result.output
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    ("profiles", "key", "message"),
    [
        ('{url: "nosuch://x/y", table: p}', "url", "no driver for 'nosuch'"),
        ('{url: "not a url", table: p}', "url", "not a database URL"),
        ('{url: "sqlite:///missing.db", table: p}', "url", "no SQLite database file at"),
        ('{url: "sqlite:///demo.db", table: nosuch}', "table", "no such table: nosuch"),
        ('{url: "sqlite:///demo.db", query: "SELEC * FROM profiles"}', "query", "syntax error"),
        ('{url: "sqlite:///demo.db", table: profiles, order_by: [zz]}', "table", "no such column"),
        ('{url: "sqlite:///${MAILSMITH_NO_SUCH_VAR}", table: p}', "url", "MAILSMITH_NO_SUCH_VAR"),
    ],
)
def test_a_bad_source_is_a_located_config_error(
    demo: Path, tmp_path: Path, profiles: str, key: str, message: str
) -> None:
    load_tables(f"sqlite:///{demo.parent / 'demo.db'}", demo.parent, typed=False)
    campaign = with_sources(demo, "bad.yaml", profiles)
    code, stderr = _build_error(campaign, tmp_path)
    assert code == 2, stderr
    line = next(i for i, t in enumerate(campaign.read_text().splitlines(), 1) if "profiles:" in t)
    assert f"bad.yaml:{line}: profiles.{key}: " in stderr
    assert message in stderr


def test_a_password_is_never_printed(demo: Path, tmp_path: Path) -> None:
    url = "postgresql://mail:s3cr3t-pw@127.0.0.1:1/crm"  # nothing listens on port 1
    campaign = with_sources(demo, "pw.yaml", f'{{url: "{url}", table: p}}')
    code, stderr = _build_error(campaign, tmp_path)
    assert code == 2
    assert "cannot connect to postgresql://mail:***@127.0.0.1:1/crm" in stderr
    assert "s3cr3t" not in stderr


def test_sqlalchemy_is_imported_only_to_read_a_database() -> None:
    """The `sql` extra stays optional: its one module (tests/test_layout.py) imports
    SQLAlchemy inside functions only, so a build from files never loads it."""
    import ast

    import segments.profiles.sqlread as module

    tree = ast.parse(Path(str(module.__file__)).read_text(encoding="utf-8"))
    top = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
    assert not [name for name in names if name.split(".")[0] == "sqlalchemy"]


def test_masking_covers_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILSMITH_TEST_PW", "hunter2")
    url = "postgresql://u:${MAILSMITH_TEST_PW}@db/x"
    assert masked(url) == "postgresql://u:***@db/x"
    assert mask_secrets("failed for hunter2 at u:hunter2@db", url) == "failed for *** at u:***@db"


# --- PostgreSQL: a real server (tests/pg.py); CI installs one and requires it ------------


@pytest.mark.slow
def test_postgres_sources_build_what_csv_builds(
    demo: Path, csv_build: Path, pg_url: str, tmp_path: Path
) -> None:
    """Typed PostgreSQL tables (bigint, double precision, boolean, text; NULL for empty):
    profiles by a query, events by a table, as the CSV build, rejections included."""
    load_tables(pg_url, demo.parent, typed=True)
    # sent as written: % and :name are not parameters (the extra column is not a field)
    sql = "SELECT *, '100%: a :name' AS note FROM profiles ORDER BY n"
    query = f'{{url: "{pg_url}", query: "{sql}"}}'
    table = f'{{url: "{pg_url}", table: events, order_by: [n]}}'
    campaign = with_sources(demo, "pg.yaml", query, table)
    out = tmp_path / "out"
    build_campaign(load_campaign(campaign), BuildOptions(out=out))
    assert_same_build(csv_build, out)
    reasons = {(r["row"], r["field"], r["reason"]) for r in rejections(out)}
    assert (INVALID_INT_ROW, "orders", "invalid_value") in reasons


@pytest.mark.slow
def test_postgres_errors_are_located_and_masked(
    demo: Path, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sa.engine.make_url(pg_url)
    monkeypatch.setenv("MAILSMITH_TEST_PW", "pg-s3cret")
    with_password = url.set(password="PASSWORD").render_as_string(hide_password=False)
    with_password = with_password.replace("PASSWORD", "${MAILSMITH_TEST_PW}")
    for name, source, key, message in [
        ("pgtable.yaml", f'{{url: "{with_password}", table: nosuch}}', "table", "nosuch"),
        ("pgquery.yaml", f'{{url: "{with_password}", query: "SELEC 1"}}', "query", "syntax"),
        (
            "pgdb.yaml",
            f'{{url: "{url.set(database="nosuchdb", password="pg-s3cret").render_as_string(False)}", table: p}}',
            "url",
            "nosuchdb",
        ),
    ]:
        campaign = with_sources(demo, name, source)
        code, stderr = _build_error(campaign, tmp_path)
        assert code == 2, stderr
        assert f"profiles.{key}: " in stderr and message in stderr, stderr
        assert "pg-s3cret" not in stderr


@pytest.mark.slow
def test_postgres_native_types_build_what_csv_builds(
    demo: Path, csv_build: Path, pg_url: str, tmp_path: Path
) -> None:
    """Profiles with timestamptz, json and boolean columns (the demo's first rows have
    no invalid date or list to lose in the conversion) build what the CSV text builds."""
    profiles = pd.read_csv(demo.parent / "profiles.csv", dtype=str, keep_default_na=False)
    profiles = profiles.replace("", None)
    types: dict[str, Any] = {"email_opt_in": sa.Boolean()}
    for name in ("signed_up_at", "last_purchase_at", "cart_updated_at"):
        profiles[name] = pd.to_datetime(profiles[name], utc=True, format="ISO8601")
        types[name] = sa.DateTime(timezone=True)
    for name in ("cart_items", "recommendations"):
        profiles[name] = profiles[name].map(lambda v: json.loads(v) if isinstance(v, str) else None)
        types[name] = sa.JSON()
    profiles["email_opt_in"] = profiles["email_opt_in"].map({"true": True, "false": False})
    profiles.insert(0, "n", range(1, len(profiles) + 1))
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        profiles.to_sql("typed_profiles", engine, if_exists="replace", index=False, dtype=types)
    finally:
        engine.dispose()
    load_tables(pg_url, demo.parent, typed=False)  # the events, as text
    table = f'{{url: "{pg_url}", table: typed_profiles, order_by: [n]}}'
    events = f'{{url: "{pg_url}", query: "SELECT * FROM events ORDER BY n"}}'
    out = tmp_path / "out"
    build_campaign(
        load_campaign(with_sources(demo, "pgtyped.yaml", table, events)), BuildOptions(out=out)
    )
    assert_same_build(csv_build, out)


@pytest.mark.parametrize(
    ("profiles", "message"),
    [
        ('{url: "sqlite:///demo.db"}', "needs a `query` or a `table`"),
        ('{url: "sqlite:///demo.db", table: p, query: "SELECT 1"}', "needs a `query` or a `table`"),
        ('{path: profiles.csv, url: "sqlite:///demo.db", table: p}', "not both"),
        ("{path: profiles.csv, table: p}", "need a database `url`"),
        ('{url: "sqlite:///demo.db", query: "SELECT 1", order_by: [n]}', "write ORDER BY"),
    ],
)
def test_a_source_must_be_a_file_or_a_table_or_a_query(
    demo: Path, profiles: str, message: str
) -> None:
    from segments.errors import ConfigError

    campaign = with_sources(demo, "shape.yaml", profiles)
    with pytest.raises(ConfigError) as raised:
        load_campaign(campaign)
    assert message in str(raised.value)
    assert raised.value.line == next(
        i for i, t in enumerate(campaign.read_text().splitlines(), 1) if t.startswith("profiles:")
    )
