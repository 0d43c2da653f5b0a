"""How ``--workers`` scales: the same build with 1, 2, ... worker processes, on all cores.

The unit of work (render a sub-batch and write its files) runs in the workers; the
parent reads and validates the profiles (the audience pre-pass is serial), evaluates
the segments, and appends the manifest lines in order. Each build runs in a fresh
process; the best of ``--repeat`` counts. Speed-ups are against the one-worker
build of the same run. No target: the issue's targets are for one core
(``bench_build.py``).

    python bench/bench_workers.py [--n 20000] [--workers 1,2,3] [--repeat 2] [--out-root DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import command_line, machine_line, note, peak_rss_mib, source_line  # noqa: E402
from make_profiles import WORK_DIR, make_bench_campaign  # noqa: E402

from renderer import BuildOptions, build_campaign, load_campaign  # noqa: E402


def child_main(campaign_path: str, out: str, workers: str) -> None:
    campaign = load_campaign(campaign_path)
    started = time.perf_counter()
    summary = build_campaign(campaign, BuildOptions(out=Path(out), workers=int(workers)))
    seconds = time.perf_counter() - started
    result = {"seconds": seconds, "input_rows": summary["input_rows"], "rss": peak_rss_mib()}
    print(json.dumps(result))


def run_build(campaign: Path, out: Path, workers: int) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, __file__, "--child", str(campaign), str(out), str(workers)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    shutil.rmtree(out, ignore_errors=True)
    result: dict[str, float] = json.loads(output)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="recipients in each build")
    parser.add_argument("--workers", default="1,2,3", help="comma-separated worker counts")
    parser.add_argument("--repeat", type=int, default=2, help="builds per count; the best counts")
    parser.add_argument("--out-root", type=Path, default=WORK_DIR, help="where builds write")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(*args.child)
        return
    print(f"$ {command_line()}")
    print(machine_line())
    print(source_line())
    counts = [int(c) for c in args.workers.split(",")]
    campaign = make_bench_campaign(args.n)
    out = args.out_root / "mailsmith-bench-workers"
    best: dict[int, dict[str, float]] = {}
    for count in counts:
        for _ in range(args.repeat):
            run = run_build(campaign, out, count)
            note(f"{count} worker(s): {run['seconds']:.2f} s")
            if count not in best or run["seconds"] < best[count]["seconds"]:
                best[count] = run
    base = best[counts[0]]["input_rows"] / best[counts[0]]["seconds"]
    print()
    print(f"{args.n:,} rows, {os.cpu_count()} cores, output under {args.out_root}")
    print(f"{'workers':>8}{'seconds':>10}{'rows/s':>10}{'speed-up':>10}{'parent peak MiB':>17}")
    for count in counts:
        run = best[count]
        rate = run["input_rows"] / run["seconds"]
        speedup = f"{rate / base:.2f}x"
        print(f"{count:>8}{run['seconds']:>10.2f}{rate:>10,.0f}{speedup:>10}{run['rss']:>17.1f}")


if __name__ == "__main__":
    main()
