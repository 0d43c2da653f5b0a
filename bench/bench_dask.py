"""``--executor dask`` against the process pool: the same campaign, ``--workers 2`` each.

Issue 13's target: Dask with two local worker processes renders at least 80% of the
``--workers 2`` rate, with the same bytes. Each build runs in a fresh process (the Dask
one starts its ``LocalCluster`` inside it, so its start-up counts), the two executors in
turn so they share the machine's load; the best of ``--repeat`` counts. Besides the wall
rate, the CPU seconds of each build's whole process tree (the build, its workers, Dask's
fork server: this process is their subreaper, so it reaps and counts them all) say what
the executor costs whatever else runs on the machine. The manifests of every build must
be byte-identical, or the run fails.

    python bench/bench_dask.py [--n 20000] [--workers 2] [--format files] [--repeat 2]
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import command_line, machine_line, note, source_line  # noqa: E402
from make_profiles import WORK_DIR, make_bench_campaign  # noqa: E402

from renderer import BuildOptions, build_campaign, load_campaign  # noqa: E402

EXECUTORS = ("local", "dask")
PR_SET_CHILD_SUBREAPER = 36


def child_main(campaign_path: str, out: str, executor: str, workers: str, format: str) -> None:
    campaign = load_campaign(campaign_path)
    options = BuildOptions(out=Path(out), workers=int(workers), executor=executor, format=format)
    started = time.perf_counter()
    summary = build_campaign(campaign, options)
    seconds = time.perf_counter() - started
    digest = hashlib.sha256((Path(out) / "manifest.jsonl").read_bytes()).hexdigest()
    print(json.dumps({"seconds": seconds, "input_rows": summary["input_rows"], "sha": digest}))


def reap_all(seconds: float = 30) -> None:
    """Wait for every process left to this one (orphaned workers, Dask's fork server)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_build(
    campaign: Path, out: Path, executor: str, workers: int, format: str
) -> dict[str, float | str]:
    shutil.rmtree(out, ignore_errors=True)
    before = children_cpu()
    command = [sys.executable, __file__, "--child", str(campaign), str(out), executor]
    command += [str(workers), format]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    reap_all()
    shutil.rmtree(out, ignore_errors=True)
    result: dict[str, float | str] = json.loads(output)
    result["cpu"] = children_cpu() - before
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="recipients in each build")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of each")
    parser.add_argument("--format", default="files", help="files, jsonl or parquet")
    parser.add_argument("--repeat", type=int, default=2, help="builds per executor; best counts")
    parser.add_argument("--out-root", type=Path, default=WORK_DIR, help="where builds write")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(*args.child)
        return
    if sys.platform.startswith("linux"):  # orphans come back here, to be counted
        ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1)
    print(f"$ {command_line()}")
    print(machine_line())
    print(source_line())
    campaign = make_bench_campaign(args.n)
    out = args.out_root / "mailsmith-bench-dask"
    best: dict[str, dict[str, float | str]] = {}
    digests = set()
    for _ in range(args.repeat):
        for executor in EXECUTORS:  # in turn: both see the same load
            run = run_build(campaign, out, executor, args.workers, args.format)
            note(f"{executor}: {run['seconds']:.2f} s, {run['cpu']:.1f} CPU s")
            digests.add(run["sha"])
            if executor not in best or float(run["seconds"]) < float(best[executor]["seconds"]):
                best[executor] = run
    print()
    cores = os.cpu_count()
    print(f"{args.n:,} rows, --workers {args.workers}, --format {args.format}, {cores} cores")
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'executor':>9}{'seconds':>10}{'rows/s':>10}{'CPU s':>8}{'CPU ms/row':>12}")
    rates = {}
    for executor in EXECUTORS:
        run = best[executor]
        seconds, cpu, rows = float(run["seconds"]), float(run["cpu"]), float(run["input_rows"])
        rates[executor] = (rows / seconds, cpu)
        label = "pool" if executor == "local" else executor
        line = f"{label:>9}{seconds:>10.2f}{rows / seconds:>10,.0f}{cpu:>8.1f}"
        print(f"{line}{cpu / rows * 1000:>12.3f}")
    ratio = rates["dask"][0] / rates["local"][0]
    print(f"dask / pool rate: {ratio:.0%} (target at least 80%)")
    print(f"dask / pool CPU: {rates['dask'][1] / rates['local'][1]:.2f}x")
    same = len(digests) == 1
    print(f"manifests byte-identical across all builds: {'yes' if same else 'NO'}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
