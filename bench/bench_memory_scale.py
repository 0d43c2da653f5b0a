"""Issue #13's memory target: peak RSS of a whole build (parent and workers) at 100,000 and
1,000,000 profiles, their ratio (at most 1.2) and a 10,000,000 extrapolation.

Each build is ``mailsmith build`` in a fresh subprocess, validation and the
duplicate-id check included. While it runs, this script reads ``/proc`` every
``--interval`` seconds for the build and each of its worker processes: their RSS
summed at that moment (the peak of those sums is the figure: "parent + workers"), and
each one's own high-water mark ``VmHWM`` (their sum, an upper bound, is printed too).
Not ``ru_maxrss``: on Linux a forked worker's starts from its parent's RSS.

``--campaign plain`` (the default) is the demo campaign with profile-only segments
and no events (``bench/bench_memory.py``'s): what the render pass and the validator
hold. ``--campaign demo`` adds the demo's events, features and clusters (the audience
stage: its population-wide values are another helper's part of issue #13).

The 10,000,000 figure is a straight line through the two measured points
(``peak = fixed + per_profile x n``): whatever grows with n is taken to grow linearly,
as the duplicate-id fingerprints do (16 bytes per id, ``SeenTexts``).

    nice python bench/bench_memory_scale.py [--n 100000,1000000] [--workers 2] \
        [--format jsonl] [--campaign plain|demo] [--sample 2%] [--out-root DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from _common import command_line, machine_line, note, source_line  # noqa: E402
from make_profiles import WORK_DIR, coupon_pool, load_demo, make_bench_campaign  # noqa: E402

TARGET_RATIO = 1.2  # issue #13: peak RSS at 1M over peak RSS at 100k


def proc_kib(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` figure in KiB (0 once the process is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def children(pid: int) -> list[int]:
    """The process's children, and theirs (the pool's workers, the resource tracker)."""
    found: list[int] = []
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as listing:
            direct = [int(p) for p in listing.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return found
    for child in direct:
        found += [child, *children(child)]
    return found


def measured_build(campaign: Path, out: Path, args: argparse.Namespace) -> dict[str, float]:
    """One build, sampled until it exits: peak summed RSS, per-process peaks, seconds."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-c", "import cli; cli.app()", "build", str(campaign)]
    command += ["--out", str(out), "--format", args.format, "--workers", str(args.workers)]
    command += ["-q", *(["--sample", args.sample] if args.sample else [])]
    interval = args.interval
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    peak_sum = 0
    hwm: dict[int, int] = {}
    while process.poll() is None:
        pids = [process.pid, *children(process.pid)]
        peak_sum = max(peak_sum, sum(proc_kib(pid, "VmRSS") for pid in pids))
        for pid in pids:
            hwm[pid] = max(hwm.get(pid, 0), proc_kib(pid, "VmHWM"))
        time.sleep(interval)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"the build of {campaign} failed ({process.returncode})")
    shards = len(list((out / "emails").iterdir())) if (out / "emails").is_dir() else 0
    shutil.rmtree(out, ignore_errors=True)
    workers_hwm = [kib for pid, kib in hwm.items() if pid != process.pid]
    return {
        "seconds": seconds,
        "sum_mib": peak_sum / 1024,
        "parent_mib": hwm.get(process.pid, 0) / 1024,
        "worker_mib": max(workers_hwm, default=0) / 1024,
        "hwm_sum_mib": sum(hwm.values()) / 1024,
        "shards": shards,
    }


def plain_campaign(count: int) -> dict[str, Any]:
    """bench/bench_memory.py's campaign (profile-only segments, no events), reading
    ``count`` profiles written here without the events a demo copy would need."""
    demo = load_demo()
    path = WORK_DIR / f"profiles-plain-{count}.csv"
    if not path.exists():
        WORK_DIR.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=demo.columns, lineterminator="\n")
            writer.writeheader()
            for number in range(1, count + 1):
                row = dict(demo.rows[(number - 1) % len(demo.rows)])
                row["id"], row["email"] = f"C{number:08d}", f"user{number}@example.com"
                writer.writerow(row)
    data: dict[str, Any] = yaml.safe_load((ROOT / "demo" / "campaign.yaml").read_text())
    for key in ("events", "drift", "features"):
        data.pop(key, None)
    data["profiles"] = str(path)
    data["segments"] = str(HERE / "segments_profile_only.yaml")
    data["suppression"] = str(ROOT / "demo" / "suppression.csv")
    coupon_pool(data, count)
    return data


def campaign_file(kind: str, count: int, compression: str) -> Path:
    """The benchmark campaign for ``count`` profiles, with ``output.compression``."""
    if kind == "plain":
        data = plain_campaign(count)
    else:
        data = yaml.safe_load(make_bench_campaign(count).read_text(encoding="utf-8"))
    data.setdefault("output", {})["compression"] = compression
    target = WORK_DIR / f"campaign-memory-{kind}-{count}.yaml"
    target.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="100000,1000000", help="two profile counts")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--format", default="jsonl", help="files, jsonl or parquet")
    parser.add_argument("--compression", default="zstd", help="JSONL shards: none or zstd")
    parser.add_argument("--campaign", choices=("plain", "demo"), default="plain")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between samples")
    parser.add_argument(
        "--sample",
        help="render only this share (e.g. 2%%): every row is still read, "
        "validated, checked for duplicate ids and segmented; quicker on a loaded machine",
    )
    parser.add_argument("--out-root", type=Path, default=WORK_DIR, help="where builds write")
    args = parser.parse_args()
    print(f"$ {command_line()}")
    print(machine_line())
    print(source_line())
    small, large = (int(n) for n in args.n.split(","))
    results = {}
    for count in (small, large):
        note(f"writing {count:,} profiles")
        campaign = campaign_file(args.campaign, count, args.compression)
        out = args.out_root / "mailsmith-bench-memory-scale"
        note(f"building {count:,} ({args.format}, {args.workers} worker(s))")
        results[count] = measured_build(campaign, out, args)
        note(f"{count:,}: {results[count]}")
    report(args, small, large, results)


def report(
    args: argparse.Namespace, small: int, large: int, results: dict[int, dict[str, float]]
) -> None:
    print()
    what = f"{args.format}" + (f" ({args.compression})" if args.format == "jsonl" else "")
    sample = f", --sample {args.sample}" if args.sample else ""
    print(f"campaign {args.campaign}, {what}, --workers {args.workers}{sample}")
    print(
        f"{'profiles':>10}{'seconds':>9}{'rows/s':>8}{'peak MiB':>10}{'parent':>8}"
        f"{'worker':>8}{'sum HWM':>9}{'shards':>8}"
    )
    for count, run in results.items():
        print(
            f"{count:>10,}{run['seconds']:>9.0f}{count / run['seconds']:>8.0f}"
            f"{run['sum_mib']:>10.0f}{run['parent_mib']:>8.0f}{run['worker_mib']:>8.0f}"
            f"{run['hwm_sum_mib']:>9.0f}{run['shards']:>8}"
        )
    low, high = results[small]["sum_mib"], results[large]["sum_mib"]
    ratio = high / low
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    print(f"peak RSS {large:,} / {small:,}: {ratio:.3f} (target <= {TARGET_RATIO}): {verdict}")
    per_profile = (high - low) / (large - small)  # MiB per profile
    fixed = low - per_profile * small
    ten_million = fixed + per_profile * 10_000_000
    print(
        f"10,000,000 profiles, extrapolated: {ten_million:,.0f} MiB "
        f"(straight line through the two points: {fixed:,.0f} MiB fixed + "
        f"{per_profile * 1024 * 1024:,.1f} bytes per profile)"
    )


if __name__ == "__main__":
    main()
