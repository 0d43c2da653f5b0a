"""``build --resume``: a build killed outright (SIGKILL) continues where its journal
stopped, and gives the same bytes as a build that was never stopped.

Each kill runs ``mailsmith build`` in a child process on a copy of the demo campaign
with small chunks (many checkpoints), waits until the build's journal holds some
checkpoints (or only until its staging folder appears) and kills it with SIGKILL. The
output trees are compared file by file (sha256; summary.json without its timing).
"""

from __future__ import annotations

import csv
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from renderer import BuildOptions, build_campaign, load_campaign
from renderer.build.fingerprint import fingerprint_changes
from renderer.build.folder import MARKER, OWNER
from renderer.build.journal import JOURNAL, BuildJournal, Checkpoint, read_journal
from tests.conftest import copy_demo_campaign
from tests.test_build import tree_digest
from tests.test_interrupts import wait_until_gone

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-c", "from cli import app; app()", "build"]
runner = CliRunner()


def small_campaign(folder: Path, rows: int, chunk_size: int, shard_size: int = 10) -> Path:
    """The demo campaign with ``rows`` profiles (and their events) read ``chunk_size`` at
    a time."""
    path = copy_demo_campaign(folder, rows)
    with (folder / "profiles.csv").open(encoding="utf-8", newline="") as handle:
        ids = {row["id"] for row in csv.DictReader(handle)}
    events = (folder / "events.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in events[1:] if line.split(",", 1)[0] in ids]
    (folder / "events.csv").write_text("".join([events[0], *kept]), encoding="utf-8")
    text = path.read_text(encoding="utf-8").replace(
        "profiles: profiles.csv", f"profiles: {{path: profiles.csv, chunk_size: {chunk_size}}}"
    )
    path.write_text(text + f"output: {{shard_size: {shard_size}}}\n", encoding="utf-8")
    return path


def staging_folders(out: Path) -> list[Path]:
    return list(out.parent.glob(f".{out.name}.partial-*"))


def checkpoints(out: Path) -> int:
    """Checkpoints in the journal of the build writing ``out`` (-1: no journal yet)."""
    for folder in staging_folders(out):
        try:
            return (folder / JOURNAL).read_bytes().count(b"\n") - 1
        except FileNotFoundError:
            pass
    return -1


def kill_build(campaign: Path, out: Path, after: int, *options: str) -> None:
    """Start a build and SIGKILL it once its journal holds ``after`` checkpoints (0: as
    soon as it has a staging folder). Its workers die with it (PR_SET_PDEATHSIG)."""
    child = subprocess.Popen(
        [*CLI, str(campaign), "--out", str(out), "--quiet", *options],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    while not (staging_folders(out) if after == 0 else checkpoints(out) >= after):
        assert child.poll() is None, child.communicate()[1].decode()
        assert time.monotonic() < deadline, "the build never got there"
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    assert wait_until_gone(out) == []
    assert len(staging_folders(out)) == 1 and not out.exists()


def resume(campaign: Path, out: Path, *options: str) -> str:
    """``build --resume`` (in this process); its stderr."""
    result = runner.invoke(
        app, ["build", str(campaign), "--out", str(out), "-q", "--resume", *options]
    )
    assert result.exit_code == 0, result.output
    return result.stderr


def reference(campaign: Path, out: Path, format: str) -> dict[str, str]:
    build_campaign(load_campaign(campaign), BuildOptions(out=out, format=format))
    return tree_digest(out)


@pytest.mark.slow  # three builds, one killed
def test_a_killed_build_resumed_gives_the_bytes_of_an_uninterrupted_one(tmp_path: Path) -> None:
    campaign = small_campaign(tmp_path / "campaign", rows=60, chunk_size=10)
    out = tmp_path / "out"
    kill_build(campaign, out, 2, "--format", "jsonl")
    note = resume(campaign, out, "--format", "jsonl")
    assert "resumed the killed build" in note and "were complete" in note
    assert staging_folders(out) == []
    assert tree_digest(out) == reference(campaign, tmp_path / "ref", "jsonl")
    assert not (out / JOURNAL).exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("format", "workers"), [("files", "1"), ("files", "2"), ("jsonl", "2"), ("parquet", "1")]
)
def test_kills_at_random_points_then_resume_give_identical_output(
    tmp_path: Path, format: str, workers: str
) -> None:
    """Killed twice at random points (once before the first checkpoint may be written),
    resumed each time with another number of workers: the bytes of one build."""
    campaign = small_campaign(tmp_path / "campaign", rows=300, chunk_size=10)
    expected = reference(campaign, tmp_path / "ref", format)
    chosen = random.Random(f"{format}-{workers}")
    for attempt in range(2):
        out = tmp_path / f"out{attempt}"
        options = ("--format", format, "--workers", workers)
        kill_build(campaign, out, chosen.choice([0, 1, 2]), *options)
        kill_build_resumed(campaign, out, chosen.randrange(4, 20), *options)
        other = "1" if workers == "2" else "2"
        resume(campaign, out, "--format", format, "--workers", other)
        assert tree_digest(out) == expected, f"attempt {attempt}"


def kill_build_resumed(campaign: Path, out: Path, after: int, *options: str) -> None:
    """Resume the killed build of ``out`` in a child process and kill that one too."""
    kill_build(campaign, out, after, "--resume", *options)


@pytest.mark.slow
def test_resume_refuses_changed_inputs_and_a_plain_build_starts_again(tmp_path: Path) -> None:
    campaign = small_campaign(tmp_path / "campaign", rows=60, chunk_size=10)
    out = tmp_path / "out"
    kill_build(campaign, out, 1)
    [killed] = staging_folders(out)
    profiles = campaign.parent / "profiles.csv"
    profiles.write_text(profiles.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    result = runner.invoke(app, ["build", str(campaign), "--out", str(out), "--resume"])
    assert result.exit_code == 2
    assert "cannot resume the killed build" in result.stderr
    assert "profiles.csv changed" in result.stderr and "without --resume" in result.stderr
    assert staging_folders(out) == [killed]  # left for a resume once the file is back
    result = runner.invoke(app, ["build", str(campaign), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert f"removed {killed.name}" in result.stderr and "--resume" in result.stderr
    assert staging_folders(out) == [] and (out / "manifest.jsonl").exists()


def test_a_torn_or_broken_last_line_of_the_journal_is_ignored(tmp_path: Path) -> None:
    journal = BuildJournal.create(tmp_path, {"fingerprint": 1})
    journal.commit(Checkpoint(1, 10, 0, 1, {"rows": 5}))
    journal.commit(Checkpoint(2, 20, 0, 2, {"rows": 10}))
    journal.close()
    whole = (tmp_path / JOURNAL).read_bytes()
    assert read_journal(tmp_path).checkpoint.chunks == 2
    (tmp_path / JOURNAL).write_bytes(whole[:-5])  # killed in the middle of the write
    contents = read_journal(tmp_path)
    assert contents.checkpoint == Checkpoint(1, 10, 0, 1, {"rows": 5})
    assert contents.intact == whole.index(b"\n", whole.index(b"\n") + 1) + 1
    broken = whole.replace(b'"chunks":2', b'"chunks":3')  # its checksum no longer matches
    (tmp_path / JOURNAL).write_bytes(broken)
    assert read_journal(tmp_path).checkpoint.chunks == 1
    (tmp_path / JOURNAL).write_bytes(whole[:10])
    assert read_journal(tmp_path).fingerprint is None


def test_a_fingerprint_names_what_changed_but_not_the_number_of_workers(tmp_path: Path) -> None:
    stored = {
        "fingerprint": 1,
        "mailsmith": "1",
        "as_of": "2026-11-20T09:00:00+00:00",
        "as_of_given": False,
        "options": {"format": "jsonl", "limit": None},
        "campaign": {"name": "a", "output": {"shard_size": 10}},
        "base_dir": "/c",
        "files": {"/c/profiles.csv": [10, 1], "/c/t.mjml": [5, 1]},
    }
    later = {**stored, "as_of": "2026-11-21T09:00:00+00:00"}  # the clock's: the killed one's
    assert fingerprint_changes(stored, later) == []
    changed = {
        **later,
        "as_of_given": True,
        "options": {"format": "jsonl", "limit": 5},
        "campaign": {"name": "a", "output": {"shard_size": 20}},
        "files": {"/c/profiles.csv": [11, 2], "/c/new.mjml": [1, 1]},
    }
    assert fingerprint_changes(stored, changed) == [
        "as_of changed (2026-11-20T09:00:00+00:00 to 2026-11-21T09:00:00+00:00)",
        "option limit changed",
        "the campaign's settings changed (output)",
        "/c/new.mjml was added",
        "/c/profiles.csv changed",
        "/c/t.mjml was removed",
    ]


def test_resume_with_nothing_to_resume_builds_anew(tmp_path: Path) -> None:
    """No killed build, or only one of an older mailsmith (no journal, removed): a note
    says so, and the build starts from the first row."""
    campaign = small_campaign(tmp_path / "campaign", rows=20, chunk_size=10)
    out = tmp_path / "out"
    host = OWNER.rsplit("-", 1)[0]
    stale = tmp_path / f".out.partial-{host}-{_dead_pid()}"
    stale.mkdir()
    (stale / MARKER).write_text("mailsmith build output\n")
    note = resume(campaign, out, "--limit", "5")
    assert "nothing to resume" in note and f"removed {stale.name}" in note
    assert not stale.exists()
    assert json.loads((out / "summary.json").read_text())["input_rows"] == 5


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid
