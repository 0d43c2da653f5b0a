"""A whole ``mailsmith build`` at this checkout against another commit, in one run.

The baseline commit is checked out into a temporary git worktree; the bench campaign
(``bench/make_profiles.py``: the demo's clean rows copied ``--n`` times, with their
events) is written once and built by each checkout in turn (A B A B ...), every build
in a fresh process pinned to one core (``--cpu``), its output on ``--out-root``. Each
pair gives a ratio (baseline time / this time: above 1 means this checkout is faster),
so a machine that drifts during the run affects both sides alike. Prints every run,
the medians, and whether the two manifests are byte-identical.

    python bench/bench_versions.py --baseline df81a47 [--n 20000] [--repeat 5] [--cpu 0]
        [--out-root /dev/shm] [--instructions]

``--instructions`` counts instead of timing: each checkout builds once under valgrind's
cachegrind (``--cache-sim=no``), both at once, and the ratio is of instructions executed
(whole process: start-up, imports, build). Wall time on a shared VM drifts by 10-30%
between identical runs; an instruction count is the same on every run, so it shows a
change of 1%. It does not see cache misses or I/O waits, so read it beside the timings.
A build runs about 50x slower under valgrind: use ``--n 3000``.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import machine_line, source_line  # noqa: E402
from make_profiles import make_bench_campaign  # noqa: E402

_BUILD = "import sys; from cli import app; sys.argv[0] = 'mailsmith'; app()"


def run_build(checkout: Path, campaign: Path, out: Path, cpu: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one build by ``checkout``, in a fresh process."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-c", _BUILD, "build", str(campaign), "--out", str(out), "-q"]
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=checkout,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        assert process.stderr is not None
        raise SystemExit(f"build by {checkout} failed:\n{process.stderr.read().decode()}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="commit to compare with")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cpu", type=int, default=0)
    parser.add_argument("--out-root", type=Path, default=None)
    parser.add_argument("--instructions", action="store_true", help="count, under cachegrind")
    args = parser.parse_args()
    print(machine_line())
    print(source_line())
    runs = f"{args.repeat} pairs; cpu {args.cpu}"
    runs = "one build each, counted" if args.instructions else runs
    print(f"baseline: {args.baseline}; {args.n:,} rows; {runs}")
    campaign = make_bench_campaign(args.n)
    with tempfile.TemporaryDirectory(dir=args.out_root) as work:
        base = Path(work) / "checkout"
        subprocess.run(
            ["git", "worktree", "add", "-q", "--detach", str(base), args.baseline],
            cwd=ROOT,
            check=True,
        )
        try:
            if args.instructions:
                count_instructions(base, campaign, Path(work), args)
            else:
                compare(base, campaign, Path(work), args)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT)


def compare(base: Path, campaign: Path, work: Path, args: argparse.Namespace) -> None:
    sides = {"baseline": base, "this": ROOT}
    times: dict[str, list[float]] = {"baseline": [], "this": []}
    cpu: dict[str, list[float]] = {"baseline": [], "this": []}
    run_build(ROOT, campaign, work / "warmup", args.cpu)  # page cache, bytecode
    for number in range(1, args.repeat + 1):
        for side, checkout in sides.items():
            wall, seconds = run_build(checkout, campaign, work / f"out-{side}", args.cpu)
            times[side].append(wall)
            cpu[side].append(seconds)
            print(f"pair {number} {side:>8}: {wall:7.2f} s wall, {seconds:7.2f} s CPU, "
                  f"{args.n / wall:8,.0f} rows/s")  # fmt: skip
    ratios = [b / t for b, t in zip(times["baseline"], times["this"], strict=True)]
    for side in sides:
        wall = statistics.median(times[side])
        print(f"median {side:>8}: {wall:.2f} s wall ({args.n / wall:,.0f} rows/s), "
              f"{statistics.median(cpu[side]):.2f} s CPU")  # fmt: skip
    print(f"ratio baseline/this per pair: {', '.join(f'{r:.3f}' for r in ratios)}")
    print(f"median ratio: {statistics.median(ratios):.3f} (above 1: this checkout is faster)")
    cpu_ratios = [b / t for b, t in zip(cpu["baseline"], cpu["this"], strict=True)]
    print(f"median CPU-time ratio: {statistics.median(cpu_ratios):.3f} (steadier when busy)")
    manifests = [work / f"out-{side}" / "manifest.jsonl" for side in sides]
    same = filecmp.cmp(*manifests, shallow=False)
    print(f"manifests byte-identical: {'yes' if same else 'NO'}")


def count_instructions(base: Path, campaign: Path, work: Path, args: argparse.Namespace) -> None:
    """Both builds under cachegrind at once; instructions executed and their ratio."""
    python = os.path.realpath(sys.executable)  # not a pyenv shim: valgrind must run Python
    running = {}
    for side, checkout in {"baseline": base, "this": ROOT}.items():
        command = ["valgrind", "--tool=cachegrind", "--cache-sim=no",
                   f"--cachegrind-out-file={work / f'{side}.cg'}", python, "-c", _BUILD,
                   "build", str(campaign), "--out", str(work / f"out-{side}"), "-q"]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(checkout)}
        running[side] = subprocess.Popen(
            command, cwd=checkout, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
    counts = {}
    for side, process in running.items():
        _, log = process.communicate()
        found = re.search(rb"I\s+refs:\s+([\d,]+)", log)
        if process.returncode != 0 or found is None:
            raise SystemExit(f"{side} build under valgrind failed:\n{log.decode()[-2000:]}")
        counts[side] = int(found.group(1).replace(b",", b""))
        print(f"{side:>8}: {counts[side]:,} instructions")
    ratio = counts["baseline"] / counts["this"]
    print(f"instruction ratio baseline/this: {ratio:.4f} (above 1: this checkout runs fewer)")
    manifests = [work / f"out-{side}" / "manifest.jsonl" for side in running]
    same = filecmp.cmp(*manifests, shallow=False)
    print(f"manifests byte-identical: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
