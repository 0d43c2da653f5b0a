"""Helpers shared by the benchmark scripts: one core, best-of-N timing, typed profiles."""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from renderer import Campaign  # noqa: E402
from renderer.specs import (
    make_validator,  # noqa: E402
    schema_of,  # noqa: E402
)
from segments.profiles.read import read_chunks  # noqa: E402
from segments.profiles.schema import ProfileSchema  # noqa: E402

_STARTED = time.perf_counter()


def note(message: str) -> None:
    """Progress on stderr, so a long run shows where it is."""
    print(f"[{time.perf_counter() - _STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


def pin_to_cpu(cpu: int) -> None:
    """Run this process (and the children it starts) on one core only."""
    os.sched_setaffinity(0, {cpu})


def peak_rss_mib() -> float:
    """This process's own peak resident memory (``VmHWM``), in MiB.

    Not ``ru_maxrss`` from ``os.wait4``: on Linux a child's ``ru_maxrss`` starts
    from its parent's RSS at fork time, so a big benchmark parent inflates every
    child's figure (checked: a 600 MiB parent, a child running ``pass`` -> 613 MiB).
    """
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def file_creation_us(folder: Path, size: int = 45_000, count: int = 2_000) -> float:
    """Microseconds to create, write and close one ``size``-byte file under ``folder``.

    The build writes two files per email with the same calls; this is that cost
    on its own, measured on the spot (on some virtual disks it varies 10x over
    an hour), so a reader can tell file-system time from engine time.
    """
    work = folder / f".file-creation-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    data = b"x" * size
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    started = time.perf_counter()
    for number in range(count):
        handle = os.open(f"{work}/{number:06d}.html", flags, 0o644)
        os.write(handle, data)
        os.close(handle)
    seconds = time.perf_counter() - started
    shutil.rmtree(work)
    return seconds / count * 1e6


def best_of(repeats: int, work: Callable[[], object]) -> float:
    """The fastest of ``repeats`` runs of ``work``, in seconds (other load only slows a run)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def machine_line() -> str:
    """What ran the benchmark: cores, pinned core, Python, load average."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    pinned = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    return (
        f"nproc {os.cpu_count()}, pinned to cpu {pinned}, Python {platform.python_version()} "
        f"({platform.machine()}), load average {load}"
    )


def source_line() -> str:
    """Which code was measured: the commit, and whether the engine's files had local edits."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else "?"

    edited = git(
        "status", "--porcelain", "--", "renderer", "segments", "templates", "blocks", "demo"
    )
    state = f"{len(edited.splitlines())} engine files with local edits" if edited else "clean"
    return f"code: commit {git('rev-parse', '--short', 'HEAD')} ({state})"


def command_line() -> str:
    return "python " + shlex.join([os.path.relpath(sys.argv[0]), *sys.argv[1:]])


def typed_profiles(
    campaign: Campaign, limit: int | None = None
) -> tuple[pd.DataFrame, ProfileSchema]:
    """The campaign's valid profiles as one typed frame (what a build segments and renders)."""
    schema = schema_of(campaign)
    if schema is None:
        raise SystemExit("the benchmark campaign must declare its schema")
    validator = make_validator(campaign, schema)
    source = campaign.profiles
    frames: list[pd.DataFrame] = []
    rows = 0
    for chunk in read_chunks(campaign.path(source.path), source.resolved_format, source.chunk_size):
        valid, _ = validator.validate(chunk)
        frames.append(valid)
        rows += len(valid)
        if limit is not None and rows >= limit:
            break
    frame = pd.concat(frames) if len(frames) > 1 else frames[0]
    return (frame.iloc[:limit] if limit is not None else frame), schema


def start_run(cpu: int) -> None:
    """Pin to one core and print what produced the figures: command, machine, code."""
    pin_to_cpu(cpu)
    print(f"$ {command_line()}")
    print(machine_line())
    print(source_line())
