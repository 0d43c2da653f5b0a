"""Where an end-to-end build spends its time: ``build_campaign`` under cProfile.

Builds ``--n`` recipients from ``bench/make_profiles.py`` (pinned to one core),
prints the build's phases (cumulative time of the functions that do each) and
the top ``--top`` functions by own time (tottime). cProfile slows Python-heavy
code more than C code, so read the shares, not the absolute seconds.

``--wall`` runs the build without a profiler instead, timing four phases with
``perf_counter`` around the functions that do them: real microseconds per input
row, for the arithmetic in docs/performance.md.

    python bench/profile_build.py [--n 20000] [--top 15] [--cpu 0] [--out-root DIR] [--wall]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import start_run  # noqa: E402
from make_profiles import WORK_DIR, make_bench_campaign  # noqa: E402

from renderer import BuildOptions, build_campaign, load_campaign  # noqa: E402
from renderer.build import driver  # noqa: E402
from renderer.build.output import EmailFiles, OutputWriter  # noqa: E402
from renderer.runtime import CampaignRuntime  # noqa: E402

# --wall: (label, owner, attribute) of the functions timed without a profiler
WALL_PHASES = [
    (
        "audience pre-pass: read, validate, events, features",
        driver,
        "prepare_audience",
    ),
    ("render: headers, HTML, text (render_one)", CampaignRuntime, "render_one"),
    ("write: encode, SHA-256, 2 files, manifest line", EmailFiles, "write"),
    ("write: manifest lines, errors", OutputWriter, "write_lines"),
]

# (label, file suffix, function name): the calls each phase of a chunk goes through
PHASES = [
    (
        "audience pre-pass (events, features, clusters)",
        "segments/audience/prepass.py",
        "prepare_audience",
    ),
    ("runtime setup + template compile", "renderer/runtime.py", "__init__"),
    ("read CSV chunks (pandas)", "segments/profiles/read.py", "_csv_chunks"),
    ("validate + type rows (in the pre-pass if any)", "segments/profiles/validate.py", "validate"),
    ("  keep validated chunks for the render pass", "segments/profiles/spool.py", "add"),
    ("read the validated chunks back", "segments/profiles/spool.py", "__iter__"),
    (
        "evaluate segments (join derived fields + rules)",
        "segments/audience/document.py",
        "evaluate_frame",
    ),
    (
        "  rules, vectorized (SegmentSet.evaluate_frame)",
        "segments/rules/ruleset.py",
        "evaluate_frame",
    ),
    ("typed frame -> dict records", "segments/profiles/schema.py", "to_records"),
    ("render (render_batch)", "renderer/runtime.py", "render_batch"),
    (
        "  compiled HTML+text (CompiledTemplate)",
        "renderer/compile/template.py",
        "render_layout|render",
    ),
    ("  subject/preheader/unsubscribe", "renderer/runtime.py", "_render_headers"),
    ("write files + manifest lines (EmailFiles.write)", "renderer/build/output.py", "write"),
    (
        "audience report + drift (finish_audience)",
        "segments/audience/prepass.py",
        "finish_audience",
    ),
    ("swap output in (OutputWriter.commit)", "renderer/build/output.py", "commit"),
]


def phase_times(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Cumulative seconds of each phase's function (0 when it never ran)."""
    table = stats.stats  # type: ignore[attr-defined]
    found = []
    for label, suffix, name in PHASES:
        # "a|b": the first name that ran (an engine change may rename the entry point)
        seconds = 0.0
        for candidate in name.split("|"):
            seconds = sum(
                ct
                for (file, _, func), (_, _, _, ct, _) in table.items()
                if func == candidate and file.endswith(suffix)
            )
            if seconds:
                break
        found.append((label, seconds))
    return found


def wall_phases(campaign: Any, out: Path) -> None:
    """The build without a profiler, four phases timed around their functions."""
    spent = {label: 0.0 for label, _, _ in WALL_PHASES}

    def timed(label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - started

        return wrapper

    for label, owner, name in WALL_PHASES:
        setattr(owner, name, timed(label, getattr(owner, name)))
    started = time.perf_counter()
    summary = build_campaign(campaign, BuildOptions(out=out))
    seconds = time.perf_counter() - started
    rows = summary["input_rows"]
    print(
        f"\n{rows:,} rows, {summary['rendered']:,} rendered in {seconds:.2f} s "
        f"without a profiler ({rows / seconds:,.0f} rows/s)"
    )
    print(f"\n{'phase (wall clock)':<56}{'s':>7}{'us/row':>8}{'share':>8}")
    other = seconds - sum(spent.values())
    for label, phase_s in [*spent.items(), ("everything else (chunks, segments, records)", other)]:
        print(f"{label:<56}{phase_s:>7.2f}{phase_s / rows * 1e6:>8.0f}{phase_s / seconds:>8.1%}")
    print(f"{'total':<56}{seconds:>7.2f}{seconds / rows * 1e6:>8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="recipients in the build")
    parser.add_argument("--top", type=int, default=15, help="functions to list by own time")
    parser.add_argument("--cpu", type=int, default=0, help="the one core to run on")
    parser.add_argument(
        "--out-root", type=Path, default=WORK_DIR, help="where the build writes (/dev/shm: no disk)"
    )
    parser.add_argument("--wall", action="store_true", help="time phases without a profiler")
    args = parser.parse_args()
    start_run(args.cpu)
    campaign = load_campaign(make_bench_campaign(args.n))
    out = args.out_root / "out-profile"
    shutil.rmtree(out, ignore_errors=True)
    if args.wall:
        wall_phases(campaign, out)
        shutil.rmtree(out, ignore_errors=True)
        return
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    summary = build_campaign(campaign, BuildOptions(out=out))
    profiler.disable()
    seconds = time.perf_counter() - started
    shutil.rmtree(out, ignore_errors=True)

    stats = pstats.Stats(profiler)
    print(
        f"\n{summary['input_rows']:,} rows, {summary['rendered']:,} rendered in {seconds:.1f} s "
        f"under cProfile ({summary['input_rows'] / seconds:,.0f} recipients/s)"
    )
    print(f"\n{'phase (cumulative)':<60}{'s':>8}{'share':>8}")
    for label, phase_s in phase_times(stats):
        print(f"{label:<60}{phase_s:>8.2f}{phase_s / seconds:>8.1%}")
    listing = io.StringIO()
    stats.stream = listing  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(args.top)
    print(f"\ntop {args.top} by own time (tottime):")
    print(listing.getvalue().split("\n", 4)[-1].rstrip())


if __name__ == "__main__":
    main()
