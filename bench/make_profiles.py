"""Write N synthetic profiles for the demo campaign, and a campaign file that reads them.

The profiles cycle through the *clean* rows of ``demo/profiles.csv`` (the rows
the demo campaign's validator accepts), each copy with its own id and address
(``C00000001``, ``user1@example.com``), so no row is rejected: a build of it
measures rendering, not rejection (the demo's experiments still hold some out).
When the demo campaign reads behavioural events, each copy gets the events of the
profile it copies, under its new id, so derived features and clusters come out as
in the demo. The output is deterministic and goes to ``bench/_work/`` (gitignored):

    bench/_work/profiles-<N>.csv
    bench/_work/events-<N>.csv      # only when the demo campaign has `events:`
    bench/_work/campaign-<N>.yaml   # demo/campaign.yaml reading the files above;
                                    # its other files (segments, suppression) stay in demo/

    python bench/make_profiles.py [--n 20000] [--out bench/_work]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from renderer import demo_campaign_path, load_campaign  # noqa: E402
from renderer.specs import (
    make_validator,  # noqa: E402
    schema_of,  # noqa: E402
)
from segments.profiles.read import read_chunks  # noqa: E402

WORK_DIR = Path(__file__).resolve().parent / "_work"


@dataclass
class DemoData:
    """The demo campaign's clean profiles (raw text) and, when it has them, their events."""

    columns: list[str]
    rows: list[dict[str, str]]
    event_columns: list[str]
    events: dict[str, list[dict[str, str]]]  # source profile id -> its events


def load_demo(campaign_path: Path | None = None) -> DemoData:
    """Read the demo profiles the campaign's validator accepts, and their events."""
    campaign = load_campaign(campaign_path or demo_campaign_path())
    schema = schema_of(campaign)
    if schema is None:
        raise SystemExit("the demo campaign must declare its schema")
    validator = make_validator(campaign, schema)
    source = campaign.profiles
    columns: list[str] = []
    rows: list[dict[str, str]] = []
    for chunk in read_chunks(campaign.path(source.path), source.resolved_format, source.chunk_size):
        columns = columns or [str(c) for c in chunk.frame.columns]
        valid, _ = validator.validate(chunk)
        rows.extend(chunk.frame.loc[valid.index].to_dict("records"))
    event_columns: list[str] = []
    events: dict[str, list[dict[str, str]]] = defaultdict(list)
    events_spec = getattr(campaign, "events", None)
    if events_spec is not None:
        with campaign.path(events_spec.path).open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            event_columns = list(reader.fieldnames or [])
            for event in reader:
                events[event["profile_id"]].append(event)
    return DemoData(columns, rows, event_columns, events)


def write_profiles(count: int, out_dir: Path = WORK_DIR) -> tuple[Path, Path | None]:
    """Write ``count`` profiles (and their events, if any); return both paths."""
    demo = load_demo()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"profiles-{count}.csv"
    events_path = out_dir / f"events-{count}.csv" if demo.event_columns else None
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=demo.columns, lineterminator="\n")
        writer.writeheader()
        for number in range(1, count + 1):
            row = dict(demo.rows[(number - 1) % len(demo.rows)])
            row["id"] = f"C{number:08d}"
            row["email"] = f"user{number}@example.com"
            writer.writerow(row)
    if events_path is not None:
        with events_path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=demo.event_columns, lineterminator="\n")
            writer.writeheader()
            for number in range(1, count + 1):
                source_id = demo.rows[(number - 1) % len(demo.rows)]["id"]
                for event in demo.events.get(source_id, []):
                    writer.writerow({**event, "profile_id": f"C{number:08d}"})
    return path, events_path


def write_campaign(profiles: Path, events: Path | None, out_dir: Path = WORK_DIR) -> Path:
    """A copy of demo/campaign.yaml reading ``profiles`` (and ``events``).

    Every other relative file it names is made absolute, into demo/; a saved
    cluster model (``<name>.clusters.json``, kept next to the campaign) is copied
    beside the copy, so the build reuses it as the demo's does.
    """
    demo = demo_campaign_path()
    data: dict[str, Any] = yaml.safe_load(demo.read_text(encoding="utf-8"))
    for key, value in data.items():
        if isinstance(value, str) and (demo.parent / value).is_file():
            data[key] = str((demo.parent / value).resolve())
        elif isinstance(value, dict) and isinstance(value.get("path"), str):
            value["path"] = str((demo.parent / value["path"]).resolve())
        elif isinstance(value, dict) and isinstance(value.get("catalog"), str):  # recommendations
            value["catalog"] = str((demo.parent / value["catalog"]).resolve())
    i18n = data.get("i18n")
    if isinstance(i18n, dict):  # the catalogs folder (a folder: not caught above)
        i18n["catalogs"] = str((demo.parent / i18n.get("catalogs", "locales")).resolve())
    data["profiles"] = str(profiles.resolve())
    if events is not None:
        data["events"] = str(events.resolve())
    with profiles.open("rb") as handle:
        coupon_pool(data, sum(1 for _ in handle), out_dir)
    model = demo.parent / f"{data['name']}.clusters.json"
    if model.is_file():
        shutil.copyfile(model, out_dir / model.name)
    path = out_dir / f"campaign-{profiles.stem.removeprefix('profiles-')}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def coupon_pool(data: dict[str, Any], rows: int, out_dir: Path = WORK_DIR) -> None:
    """The demo's ``coupons:`` given a pool of ``rows`` codes (at least one per recipient:
    the demo's 1,000 codes run out past about 3,000 profiles), as an absolute path."""
    if "coupons" not in data:
        return
    pool = out_dir / f"coupons-{rows}.csv"
    if not pool.is_file():
        out_dir.mkdir(parents=True, exist_ok=True)
        codes = "".join(f"BENCH-{number:09d}\n" for number in range(rows))
        pool.write_text("code\n" + codes, encoding="utf-8")
    data["coupons"] = {**data["coupons"], "pool": str(pool.resolve())}


def make_bench_campaign(count: int, out_dir: Path = WORK_DIR) -> Path:
    """Profiles (and events) and a campaign file for ``count`` recipients; the campaign path."""
    return write_campaign(*write_profiles(count, out_dir), out_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="number of profiles (default 20000)")
    parser.add_argument(
        "--out", type=Path, default=WORK_DIR, help="output folder (default bench/_work)"
    )
    args = parser.parse_args()
    profiles, events = write_profiles(args.n, args.out)
    campaign = write_campaign(profiles, events, args.out)
    print(f"wrote {args.n:,} profiles: {profiles}")
    if events is not None:
        print(f"events: {events}")
    print(f"campaign: {campaign}")


if __name__ == "__main__":
    main()
