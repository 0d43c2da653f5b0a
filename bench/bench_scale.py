"""Issue #13's throughput targets: every output format, 1 and 2 workers, against the naive
pipeline measured in the same run.

One run measures, on the demo-sized campaign (~40 KB email) at ``--n`` profiles
(``bench/make_profiles.py``):

* the naive pipeline (Jinja -> MJML -> premailer, per recipient, no I/O) on
  ``--naive-sample`` recipients, extrapolated to recipients/s;
* ``mailsmith build --format F --workers W`` end to end, each in a fresh subprocess
  (interpreter start, load, audience, segment, render, write, manifest; timed from
  the spawn to the exit), for each format of ``--formats`` and each of ``--workers``;
  output on local disk under ``--out-root``, deleted after each build.

It prints recipients/s, the ratio to naive and to the same format with one worker,
and PASS/FAIL against the targets of issue #13; and checks that the manifests of all
builds are the same bytes once the fields naming where the email went (``html``,
``text``, ``shard``, ``shard_row``) are left out. ``jsonl.zst`` in ``--formats``
builds JSONL with ``output.compression: zstd``. A quick look: ``--n 5000``.

    python bench/bench_scale.py [--n 200000] [--formats files,jsonl,parquet] \
        [--workers 1,2] [--naive-sample 200] [--repeat 1] [--out-root DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import command_line, machine_line, note, source_line  # noqa: E402
from bench_build import load_recipients, rate_naive  # noqa: E402
from make_profiles import WORK_DIR, make_bench_campaign  # noqa: E402

from renderer import CampaignRuntime, load_campaign  # noqa: E402
from renderer.specs import schema_of  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WHERE_FIELDS = ("html", "text", "shard", "shard_row")  # differ by format, nothing else may

# issue #13, "Targets": (format, workers) -> (recipients/s, x naive, x one worker)
TARGETS: dict[tuple[str, int], tuple[float, float | None, float | None]] = {
    ("jsonl", 1): (6_000, 75, None),
    ("parquet", 1): (6_000, 75, None),
    ("jsonl", 2): (10_000, None, 1.7),
    ("parquet", 2): (10_000, None, 1.7),
    ("files", 2): (5_000, None, None),
}


def naive_rate(campaign_path: Path, sample: int) -> tuple[float, int]:
    """Recipients/s of Jinja -> MJML -> premailer per recipient (in this process, best
    of 2), and the sample size actually used."""
    campaign = load_campaign(campaign_path)
    schema = schema_of(campaign)
    if schema is None:
        raise SystemExit("the benchmark campaign must declare its schema")
    runtime = CampaignRuntime(campaign, schema, campaign.reference_time())
    recipients = load_recipients(runtime, sample)
    return rate_naive(runtime, recipients, "premailer", 2), len(recipients)


def zstd_campaign(campaign: Path) -> Path:
    """The same campaign with ``output.compression: zstd``."""
    data = yaml.safe_load(campaign.read_text(encoding="utf-8"))
    data.setdefault("output", {})["compression"] = "zstd"
    path = campaign.with_name(campaign.stem + "-zstd.yaml")
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def run_build(campaign: Path, out: Path, format: str, workers: int) -> dict[str, Any]:
    """``mailsmith build`` in a subprocess, timed from spawn to exit; its summary, the
    digest of its manifest without the WHERE_FIELDS, and the size of its output."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-c", "import cli; cli.app()", "build", str(campaign)]
    command += ["--out", str(out), "--format", format.removesuffix(".zst")]
    command += ["--workers", str(workers), "-q"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{format} x{workers} failed ({done.returncode}):\n{done.stderr}")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    result = {
        "seconds": seconds,
        "rows": summary["input_rows"],
        "rendered": summary["rendered"],
        "shards": summary.get("output", {}).get("shards", 0),
        "digest": manifest_digest(out / "manifest.jsonl"),
        "bytes": sum(p.stat().st_size for p in out.rglob("*") if p.is_file()),
    }
    shutil.rmtree(out, ignore_errors=True)
    return result


def manifest_digest(path: Path) -> str:
    """sha256 of the manifest's lines with the fields naming the email's place left out."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for line in handle:
            entry = orjson.loads(line)
            for key in WHERE_FIELDS:
                entry.pop(key, None)
            digest.update(orjson.dumps(entry) + b"\n")
    return digest.hexdigest()


def verdicts(key: tuple[str, int], rate: float, vs_naive: float, vs_one: float | None) -> list[str]:
    """PASS/FAIL for each target of ``key``; empty when the issue sets none."""
    if key not in TARGETS:
        return []
    minimum, naive_times, one_times = TARGETS[key]
    found = [f"{'PASS' if rate >= minimum else 'FAIL'} >= {minimum:,.0f}/s"]
    if naive_times is not None:
        found.append(f"{'PASS' if vs_naive >= naive_times else 'FAIL'} >= {naive_times}x naive")
    if one_times is not None and vs_one is not None:
        found.append(f"{'PASS' if vs_one >= one_times else 'FAIL'} >= {one_times}x 1 worker")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="profiles in each build")
    parser.add_argument("--formats", default="files,jsonl,parquet", help="also: jsonl.zst")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--naive-sample", type=int, default=200, help="recipients, naive")
    parser.add_argument("--repeat", type=int, default=1, help="builds of each; the best counts")
    parser.add_argument("--out-root", type=Path, default=WORK_DIR, help="where builds write")
    args = parser.parse_args()
    print(f"$ {command_line()}")
    print(machine_line())
    print(source_line())
    formats = args.formats.split(",")
    counts = [int(c) for c in args.workers.split(",")]
    note(f"writing {args.n:,} profiles")
    campaign = make_bench_campaign(args.n)
    naive, sample = naive_rate(campaign, args.naive_sample)
    note(f"naive premailer: {naive:,.1f}/s on {sample} recipients")
    runs: dict[tuple[str, int], dict[str, Any]] = {}
    for format in formats:
        source = zstd_campaign(campaign) if format == "jsonl.zst" else campaign
        for workers in counts:
            for _ in range(args.repeat):
                run = run_build(source, args.out_root / "mailsmith-bench-scale", format, workers)
                note(f"{format} x{workers}: {run['seconds']:.1f} s")
                best = runs.get((format, workers))
                if best is None or run["seconds"] < best["seconds"]:
                    runs[(format, workers)] = run
    report(args, naive, sample, runs, counts)


def report(
    args: argparse.Namespace,
    naive: float,
    sample: int,
    runs: dict[tuple[str, int], dict[str, Any]],
    counts: list[int],
) -> None:
    print()
    print(f"{args.n:,} profiles, output under {args.out_root}, end to end per subprocess")
    print(f"naive Jinja -> MJML -> premailer: {naive:,.1f} recipients/s ({sample} recipients)")
    header = f"{'format':<10}{'workers':>8}{'seconds':>9}{'rows/s':>9}{'x naive':>9}"
    print(header + f"{'x 1 wkr':>9}{'shards':>8}{'MB out':>8}  targets")
    for (format, workers), run in runs.items():
        rate = run["rows"] / run["seconds"]
        one = runs.get((format, counts[0]))
        vs_one = rate / (one["rows"] / one["seconds"]) if one and workers != counts[0] else None
        checks = verdicts((format.removesuffix(".zst"), workers), rate, rate / naive, vs_one)
        print(
            f"{format:<10}{workers:>8}{run['seconds']:>9.1f}{rate:>9,.0f}{rate / naive:>9.1f}"
            f"{'' if vs_one is None else f'{vs_one:.2f}':>9}{run['shards']:>8}"
            f"{run['bytes'] / 1e6:>8,.0f}  {', '.join(checks)}"
        )
    digests = {run["digest"] for run in runs.values()}
    same = "PASS" if len(digests) == 1 else "FAIL"
    print(f"{same}: the {len(runs)} manifests are identical apart from {', '.join(WHERE_FIELDS)}")


if __name__ == "__main__":
    main()
