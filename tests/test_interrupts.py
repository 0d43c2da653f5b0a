"""A build stopped from outside: SIGTERM, Ctrl-C, or its process killed outright.

Each test runs ``mailsmith build`` in a child process (with two workers) on the demo
campaign, waits until the build writes its staging folder, and stops it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from renderer import BuildOptions, build_campaign, load_campaign
from renderer.build.output import MARKER
from renderer.campaign import demo_campaign_path

CLI = [sys.executable, "-c", "from cli import app; app()", "build"]


def _sigint_as_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_build(out: Path) -> subprocess.Popen[bytes]:
    """The demo build into ``out``, with workers, once its staging folder exists."""
    child = subprocess.Popen(
        [*CLI, "--out", str(out), "--workers", "2", "--quiet"],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # as a terminal's foreground job: a test run started in the background (`cmd &`
        # in a script) ignores SIGINT, the child would inherit that and never see Ctrl-C
        preexec_fn=_sigint_as_default,
    )
    deadline = time.monotonic() + 60
    while not list(out.parent.glob(f".{out.name}.partial-*")):
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the build never started writing"
        time.sleep(0.01)
    return child


def processes_writing(out: Path) -> list[int]:
    """Processes whose command line names ``out`` (the build and its forked workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(out).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def wait_until_gone(out: Path, seconds: float = 20) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := processes_writing(out)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_build_removes_its_partial_output(tmp_path: Path, stop: int) -> None:
    out = tmp_path / "out"
    child = start_build(out)
    child.send_signal(stop)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr.decode()
    assert b"Interrupted" in stderr and b"Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []  # no output, no staging folder
    assert wait_until_gone(out) == []  # and no worker left behind


@pytest.mark.slow
def test_workers_die_with_a_killed_build_and_the_next_build_clears_its_leftovers(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    child = start_build(out)
    deadline = time.monotonic() + 60
    while len(processes_writing(out)) < 3:  # the build and its two workers
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()
        time.sleep(0.01)
    child.kill()  # SIGKILL: no cleanup can run in the build itself
    child.communicate(timeout=60)
    assert wait_until_gone(out) == []  # the kernel stopped the workers (PR_SET_PDEATHSIG)
    leftovers = list(tmp_path.glob(".out.partial-*"))
    assert len(leftovers) == 1 and (leftovers[0] / MARKER).exists()
    # a staging folder of a live process (this test's parent) is somebody's build: kept
    live = leftovers[0].with_name(leftovers[0].name.rsplit("-", 1)[0] + f"-{os.getppid()}")
    shutil.copytree(leftovers[0], live, dirs_exist_ok=True, ignore=lambda *_: ["html", "text"])
    build_campaign(load_campaign(demo_campaign_path()), BuildOptions(out=out, limit=30))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "out"])
