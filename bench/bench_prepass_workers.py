"""The audience pre-pass and the whole build with ``--workers 1`` and ``--workers 2``.

With workers, the pre-pass validates the profile chunks and cleans the event chunks in
the worker processes; the parent reads the files, finds the duplicate ids across
chunks (from the workers' id fingerprints), folds the events and derives features,
clusters and percentiles. Each figure is from a fresh child process (the best of
``--repeat``), all in the same run; the ratios are against ``--workers 1``.

    pre-pass s     prepare_audience alone (with its spool, as a build runs it); and the
                   CPU seconds of the parent and of the workers in it (less sensitive
                   to other load than the wall-clock seconds: the parent's share
                   bounds what more workers can gain)
    recipients/s   a whole build (``--format jsonl``: no per-recipient files), input rows/s

    python bench/bench_prepass_workers.py [--n 50000] [--build-n 20000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import command_line, machine_line, note, source_line  # noqa: E402
from make_profiles import WORK_DIR, make_bench_campaign  # noqa: E402

from renderer import BuildOptions, build_campaign, load_campaign  # noqa: E402
from renderer.build.pool import WorkerPool  # noqa: E402
from renderer.specs import audience_spec, schema_of  # noqa: E402
from segments.audience.prepass import prepare_audience  # noqa: E402
from segments.chunkmap import SERIAL  # noqa: E402
from segments.profiles.spool import ChunkSpool  # noqa: E402


def child_prepass(campaign_path: str, workers: int) -> dict[str, float]:
    campaign = load_campaign(campaign_path)
    schema = schema_of(campaign)
    assert schema is not None
    with tempfile.TemporaryDirectory() as folder:
        spool = ChunkSpool(Path(folder))
        pool = WorkerPool(workers, Path(folder)) if workers > 1 else None
        started = time.perf_counter()
        cpu = time.process_time()
        audience = prepare_audience(
            audience_spec(campaign, schema),
            campaign.reference_time(),
            spool=spool,
            mapper=pool or SERIAL,
        )
        seconds = time.perf_counter() - started
        parent_cpu = time.process_time() - cpu
        if pool is not None:
            pool.close()  # the workers are waited for: their CPU time is counted below
        spool.close()
    workers_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    population = audience.population
    return {
        "seconds": seconds,
        "rows": len(population) if population is not None else 0,
        "parent_cpu": parent_cpu,
        "workers_cpu": workers_cpu.ru_utime + workers_cpu.ru_stime,
    }


def child_build(campaign_path: str, workers: int) -> dict[str, float]:
    campaign = load_campaign(campaign_path)
    out = Path(tempfile.mkdtemp(prefix="bench-prepass-")) / "out"
    try:
        started = time.perf_counter()
        summary = build_campaign(campaign, BuildOptions(out=out, workers=workers, format="jsonl"))
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)
    return {"seconds": seconds, "rows": summary["input_rows"]}


def run_child(kind: str, campaign: Path, workers: int) -> dict[str, float]:
    """Seconds (and CPU seconds) of one run in a fresh child process."""
    command = [sys.executable, __file__, "--child", kind, str(campaign), str(workers)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def bench_campaign(count: int) -> Path:
    """The campaign of ``count`` profiles in bench/_work, written unless it is there."""
    path = WORK_DIR / f"campaign-{count}.yaml"
    if path.is_file() and (WORK_DIR / f"events-{count}.csv").is_file():
        return path  # (make_profiles.py writes the same bytes every time)
    return make_bench_campaign(count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="profiles for the pre-pass runs")
    parser.add_argument("--build-n", type=int, default=20_000, help="profiles for the builds")
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, path, workers = args.child
        run = child_prepass if kind == "prepass" else child_build
        print(json.dumps(run(path, int(workers))))
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"$ {command_line()}")
    print(machine_line())
    print(source_line())
    note(f"campaigns of {args.n:,} and {args.build_n:,} profiles (with events)")
    prepass_campaign = bench_campaign(args.n)
    build_campaign_path = bench_campaign(args.build_n)
    prepass = {1: float("inf"), 2: float("inf")}
    cpu: dict[int, dict[str, float]] = {}
    builds = {1: 0.0, 2: 0.0}
    for _ in range(args.repeat):  # 1 and 2 alternate: a change of load hits both
        for workers in (1, 2):
            note(f"pre-pass, --workers {workers}")
            run = run_child("prepass", prepass_campaign, workers)
            if run["seconds"] < prepass[workers]:
                prepass[workers], cpu[workers] = run["seconds"], run
            note(f"build, --workers {workers}")
            rate = args.build_n / run_child("build", build_campaign_path, workers)["seconds"]
            builds[workers] = max(builds[workers], rate)
    print(f"\n{'':>12}{'pre-pass s':>12}{'(profiles)':>12}{'build rcpt/s':>14}{'(profiles)':>12}")
    for workers in (1, 2):
        print(
            f"{'--workers ' + str(workers):>12}{prepass[workers]:>12.2f}{args.n:>12,}"
            f"{builds[workers]:>14,.0f}{args.build_n:>12,}"
        )
    for workers in (1, 2):
        print(
            f"pre-pass CPU s, --workers {workers}: parent {cpu[workers]['parent_cpu']:.2f}, "
            f"workers {cpu[workers]['workers_cpu']:.2f}"
        )
    print(
        f"ratio 2 vs 1: pre-pass {prepass[1] / prepass[2]:.2f}x faster, "
        f"build {builds[2] / builds[1]:.2f}x the recipients/s"
    )
    print(machine_line())


if __name__ == "__main__":
    main()
