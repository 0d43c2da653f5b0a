"""SQL sources: the same campaign built from Parquet files, PostgreSQL and SQLite.

The bench campaign of ``make_profiles.py`` (``--n`` recipients and their events),
written once as Parquet files (profiles and events typed as pandas reads the CSV),
and the same frames loaded into a PostgreSQL server (``MAILSMITH_PG_URL``, else a
throwaway cluster, see tests/pg.py; loaded with COPY) and into a SQLite file, each
table with an index on its ordering columns. Each source is built in a fresh process
(``--format jsonl``, one process), best of ``--repeat``; loading is not timed. The
manifests must be byte-identical. Target (issue 13): PostgreSQL at least 80% of the
Parquet rate.

    python bench/bench_sql.py [--n 50000] [--repeat 1] [--format jsonl]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import command_line, machine_line, note, peak_rss_mib, source_line  # noqa: E402
from make_profiles import WORK_DIR, make_bench_campaign  # noqa: E402

from renderer import BuildOptions, build_campaign, load_campaign  # noqa: E402

TARGET = 0.80  # PostgreSQL rate / Parquet rate


def child_main(campaign_path: str, out: str, fmt: str) -> None:
    campaign = load_campaign(campaign_path)
    started, cpu = time.perf_counter(), _cpu()
    summary = build_campaign(campaign, BuildOptions(out=Path(out), format=fmt))
    seconds, cpu = time.perf_counter() - started, _cpu() - cpu
    digest = hashlib.sha256((Path(out) / "manifest.jsonl").read_bytes()).hexdigest()
    read, read_cpu = _read_only(campaign)
    result = {"seconds": seconds, "cpu": cpu, "rows": summary["input_rows"], "rss": peak_rss_mib()}
    print(json.dumps({**result, "read": read, "read_cpu": read_cpu, "manifest": digest}))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _read_only(campaign: Any) -> tuple[float, float]:
    """Seconds (wall, this process's CPU) to read the profiles and the events, raw."""
    from renderer.specs import profile_file
    from segments.features.events import read_event_chunks
    from segments.profiles.sqlread import read_sql_event_chunks

    started, cpu = time.perf_counter(), _cpu()
    for _ in profile_file(campaign).chunks():
        pass
    events = campaign.events
    chunks = (
        read_sql_event_chunks(campaign.sql_source("events"), 25_000)
        if events.is_sql
        else read_event_chunks(campaign.path(events.path), 25_000)
    )
    for _ in chunks:
        pass
    return time.perf_counter() - started, _cpu() - cpu


def run_build(campaign: Path, out: Path, fmt: str) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, __file__, "--child", str(campaign), str(out), fmt]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    shutil.rmtree(out, ignore_errors=True)
    result: dict[str, Any] = json.loads(output)
    return result


def frames(campaign: Path) -> dict[str, pd.DataFrame]:
    """The bench campaign's profiles and events, typed as pandas reads the CSV files."""
    data = yaml.safe_load(campaign.read_text(encoding="utf-8"))
    return {"profiles": pd.read_csv(data["profiles"]), "events": pd.read_csv(data["events"])}


def with_sources(campaign: Path, name: str, profiles: Any, events: Any) -> Path:
    data = yaml.safe_load(campaign.read_text(encoding="utf-8"))
    data["profiles"], data["events"] = profiles, events
    path = campaign.with_name(name)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def _pg_copy(table: Any, conn: Any, keys: list[str], data_iter: Any) -> None:
    """pandas ``to_sql`` method: PostgreSQL COPY (NaN arrives as None already)."""
    columns = ", ".join(f'"{k}"' for k in keys)
    with conn.connection.driver_connection.cursor() as cursor:
        with cursor.copy(f'COPY "{table.name}" ({columns}) FROM STDIN') as copy:
            for row in data_iter:
                copy.write_row(row)


def load_database(url: str, data: dict[str, pd.DataFrame]) -> None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    copy = _pg_copy if engine.dialect.name == "postgresql" else None
    try:
        for name, frame in data.items():
            frame.to_sql(
                name, engine, if_exists="replace", index=False, chunksize=50_000, method=copy
            )
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE INDEX profiles_id ON profiles (id)")
            conn.exec_driver_sql("CREATE INDEX events_order ON events (profile_id, timestamp)")
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()


def postgres_url() -> tuple[str, Any]:
    """``MAILSMITH_PG_URL``, or a throwaway cluster (and the server, to stop)."""
    if os.environ.get("MAILSMITH_PG_URL"):
        return os.environ["MAILSMITH_PG_URL"], None
    from tests.pg import pg_bindir, start_server

    bindir = pg_bindir()
    if bindir is None:
        sys.exit("no PostgreSQL: set MAILSMITH_PG_URL or install postgresql (initdb, pg_ctl)")
    server = start_server(bindir)
    return server.url, server


def prepare(n: int) -> tuple[dict[str, Path], Any]:
    """The three campaigns (parquet, postgresql, sqlite) and the server to stop."""
    base = make_bench_campaign(n)
    work = base.parent
    note("typing the CSV files")
    data = frames(base)
    # events sorted as the tables are read (profile_id, timestamp), in every source
    data["events"] = data["events"].sort_values(["profile_id", "timestamp"], kind="stable")
    for name, frame in data.items():
        frame.to_parquet(work / f"{name}-{n}.parquet", index=False)
    parquet = with_sources(
        base,
        f"campaign-{n}-parquet.yaml",
        str(work / f"profiles-{n}.parquet"),
        str(work / f"events-{n}.parquet"),
    )
    note("loading SQLite")
    sqlite_file = work / f"bench-{n}.db"
    sqlite_file.unlink(missing_ok=True)
    load_database(f"sqlite:///{sqlite_file}", data)
    note("loading PostgreSQL")
    pg, server = postgres_url()
    load_database(pg, data)
    sqlite = f"sqlite:///{sqlite_file.name}"
    campaigns = {
        "parquet": parquet,
        "postgresql": with_sources(
            base,
            f"campaign-{n}-pg.yaml",
            {"url": pg, "table": "profiles"},
            {"url": pg, "table": "events"},
        ),
        "sqlite": with_sources(
            base,
            f"campaign-{n}-sqlite.yaml",
            {"url": sqlite, "table": "profiles"},
            {"url": sqlite, "table": "events"},
        ),
    }
    return campaigns, server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="recipients (issue 13: 200000)")
    parser.add_argument("--repeat", type=int, default=1, help="builds per source; the best counts")
    parser.add_argument("--format", default="jsonl", help="output format (files, jsonl, parquet)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(*args.child)
        return
    print(f"$ {command_line()}")
    print(machine_line())
    print(source_line())
    campaigns, server = prepare(args.n)
    try:
        best: dict[str, dict[str, Any]] = {}
        for _ in range(args.repeat):
            for source, campaign in campaigns.items():
                run = run_build(campaign, WORK_DIR / "mailsmith-bench-sql", args.format)
                note(f"{source}: {run['seconds']:.2f} s")
                if source not in best or run["seconds"] < best[source]["seconds"]:
                    best[source] = run
    finally:
        if server is not None:
            server.stop()
    report(args.n, args.format, best)


def report(n: int, fmt: str, best: dict[str, dict[str, Any]]) -> None:
    base = best["parquet"]["rows"] / best["parquet"]["seconds"]
    print()
    print(f"{n:,} recipients, --format {fmt}, one process, loadavg {os.getloadavg()[0]:.1f}")
    cpu_base = best["parquet"]["rows"] / best["parquet"]["cpu"]
    print("build: wall-clock and this process's CPU (a database server's own CPU is not in it);")
    print("read: the profiles and events read raw, nothing else")
    print(
        f"{'source':>12}{'seconds':>9}{'rows/s':>9}{'ratio':>7}{'cpu s':>8}{'rows/cpu s':>11}"
        f"{'ratio':>7}{'read s':>8}{'read cpu':>9}{'peak MiB':>10}"
    )
    for source, run in best.items():
        rate, cpu_rate = run["rows"] / run["seconds"], run["rows"] / run["cpu"]
        print(
            f"{source:>12}{run['seconds']:>9.2f}{rate:>9,.0f}{rate / base:>6.2f}x"
            f"{run['cpu']:>8.2f}{cpu_rate:>11,.0f}{cpu_rate / cpu_base:>6.2f}x"
            f"{run['read']:>8.2f}{run['read_cpu']:>9.2f}{run['rss']:>10.1f}"
        )
    same = len({run["manifest"] for run in best.values()}) == 1
    print(f"manifests byte-identical: {'yes' if same else 'NO'}")
    ratio = best["parquet"]["seconds"] / best["postgresql"]["seconds"]
    verdict = "met" if ratio >= TARGET else "NOT met"
    print(f"target PostgreSQL >= {TARGET:.0%} of the Parquet rate (wall): {ratio:.0%}, {verdict}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
