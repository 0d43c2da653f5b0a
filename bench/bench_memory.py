"""Peak memory of the render pass: the same build at N and k*N recipients, in fresh processes.

The demo campaign's audience stage (events, percentiles, clusters) keeps the
population's derived features in memory, so it grows with the audience by
design (see docs/performance.md). This script measures the render pass alone:
the demo campaign with profile-only segments (bench/segments_profile_only.yaml)
and no events, so nothing population-wide is held.

    python bench/bench_memory.py [--n 20000] [--factor 5] [--cpu 0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_profiles import WORK_DIR, coupon_pool, write_profiles  # noqa: E402


def campaign_for(count: int) -> Path:
    profiles, _ = write_profiles(count)
    demo = HERE.parent / "demo"
    data = yaml.safe_load((demo / "campaign.yaml").read_text(encoding="utf-8"))
    data.pop("events", None)
    data.pop("drift", None)
    data.pop("features", None)
    data["profiles"] = str(profiles)
    data["segments"] = str(HERE / "segments_profile_only.yaml")
    data["suppression"] = str(demo / "suppression.csv")
    coupon_pool(data, count)
    path = WORK_DIR / f"campaign-plain-{count}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


CHILD = """
import sys
from pathlib import Path
from renderer import BuildOptions, build_campaign, load_campaign
s = build_campaign(load_campaign(sys.argv[1]), BuildOptions(out=Path(sys.argv[2])))
peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(s["input_rows"], s["rendered"], int(peak) / 1024)
"""


def peak_rss_mib(campaign: Path, cpu: int) -> tuple[float, float, str]:
    out = Path(tempfile.mkdtemp(dir=WORK_DIR)) / "out"
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(campaign), str(out)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE.parent,
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    printed = process.stdout.read().strip() if process.stdout else ""
    status = process.wait()
    seconds = time.perf_counter() - started
    shutil.rmtree(out.parent, ignore_errors=True)
    if status != 0:
        raise SystemExit(f"build failed for {campaign}")
    # the child's own VmHWM: a child's ru_maxrss starts at its parent's RSS (Linux)
    rows, rendered, peak = printed.split()
    return float(peak), seconds, f"{rows} {rendered}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--factor", type=int, default=5)
    parser.add_argument("--cpu", type=int, default=0)
    args = parser.parse_args()
    rows = []
    for count in (args.n, args.n * args.factor):
        rss, seconds, printed = peak_rss_mib(campaign_for(count), args.cpu)
        rows.append((count, rss, seconds, printed))
        rate = count / seconds
        print(f"{count:>9,} rows: peak RSS {rss:7.1f} MiB, {seconds:6.1f} s, {rate:7.0f} rows/s")
        print(f"           (input rows, rendered: {printed})")
    ratio = rows[1][1] / rows[0][1]
    verdict = "PASS" if ratio <= 1.10 else "FAIL"
    print(f"peak RSS ratio {args.factor}x rows: {ratio:.3f} (flat = at most 1.10): {verdict}")


if __name__ == "__main__":
    main()
