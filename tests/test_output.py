"""The output folder and the build's atomicity under hostile conditions.

Files someone added to a build folder, a full disk, a profile or events file
rewritten while the build reads it: the build refuses or fails with a located
error, removes its staging folder and lock, and leaves the previous build as it was.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app
from renderer import (
    BuildOptions,
    OutputError,
    ProfileDataError,
    build_campaign,
    iter_build,
    load_campaign,
)
from renderer.build import driver
from renderer.campaign import Campaign, demo_campaign_path
from tests.test_build import tree_digest

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def small_campaign(
    folder: Path, rows: int = 300, chunk_size: int = 50, padding: int = 0, subject: str = "Hi"
) -> Path:
    """A campaign without a pre-pass (the render pass reads the profile file) in ``folder``;
    ``padding`` characters make each email longer."""
    filler = "x" * padding
    (folder / "t.mjml").write_text(
        "<mjml><mj-body><mj-section><mj-column><mj-text>Hi {{ first_name }}"
        f"<p>{filler}</p></mj-text></mj-column></mj-section></mj-body></mjml>"
    )
    lines = ["id,email,first_name"] + [f"{i},p{i}@example.com,Name{i}" for i in range(1, rows + 1)]
    (folder / "p.csv").write_text("\n".join(lines) + "\n")
    campaign = folder / "c.yaml"
    campaign.write_text(
        f"name: small\ntemplate: t.mjml\nsubject: {subject}\nas_of: '2026-11-20T09:00:00Z'\n"
        f"paths: {{templates: ['.']}}\nprofiles: {{path: p.csv, chunk_size: {chunk_size}}}\n"
    )
    return campaign


def leftovers(parent: Path, out: Path) -> list[str]:
    """Staging folders, set-aside builds and locks of ``out`` left in ``parent``."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{out.name}."))


def run_to_end(progress: Iterator[Any]) -> None:
    for _ in progress:
        pass


# --- files someone added to a build folder ------------------------------------------------


def test_files_added_to_a_build_folder_are_kept_and_the_next_build_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    campaign = load_campaign(small_campaign(tmp_path))
    build_campaign(campaign, BuildOptions(out=out))
    (out / "notes.txt").write_text("precious")
    (out / "html" / "mine").mkdir()
    (out / "html" / "mine" / "draft.html").write_text("precious too")
    for index in range(6):
        (out / f"report-{index}.csv").write_text("a,b\n")
    before = tree_digest(out)
    result = runner.invoke(app, ["build", str(tmp_path / "c.yaml"), "--out", str(out), "-q"])
    assert result.exit_code == 5, result.output
    message = " ".join(result.stderr.split())  # rich wraps long lines
    assert "8 files that are not part of the previous build" in message
    assert "html/mine/, notes.txt, report-0.csv" in message and "and 3 more" in message
    assert "--force" in message and "Traceback" not in result.output
    assert tree_digest(out) == before
    assert leftovers(tmp_path, out) == []


def test_force_replaces_a_build_folder_with_the_files_added_to_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_campaign(load_campaign(small_campaign(tmp_path)), BuildOptions(out=out, limit=10))
    (out / "notes.txt").write_text("dropped with the old build")
    command = ["build", str(tmp_path / "c.yaml"), "--out", str(out), "-q", "--force"]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert not (out / "notes.txt").exists() and (out / "manifest.jsonl").exists()
    assert leftovers(tmp_path, out) == []
    help_text = " ".join(runner.invoke(app, ["build", "--help"]).output.split())
    assert "--force" in help_text and "deleted with" in help_text


def test_force_never_replaces_a_folder_that_holds_no_build(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.docx").write_text("precious")
    with pytest.raises(OutputError, match="does not hold a mailsmith build"):
        build_campaign(load_campaign(small_campaign(tmp_path)), BuildOptions(out=out, force=True))
    assert (out / "thesis.docx").read_text() == "precious"
    assert leftovers(tmp_path, out) == []


def test_a_file_added_while_the_build_runs_is_kept_and_the_build_fails(tmp_path: Path) -> None:
    out = tmp_path / "out"
    campaign = load_campaign(small_campaign(tmp_path))
    build_campaign(campaign, BuildOptions(out=out))
    build, progress = iter_build(campaign, BuildOptions(out=out))
    next(progress)  # the first chunk is written: the build checked the folder long ago
    (out / "html" / "notes.txt").write_text("precious")
    before = tree_digest(out)
    with pytest.raises(OutputError, match="1 file that is not part of the previous build"):
        run_to_end(progress)
    assert tree_digest(out) == before
    assert leftovers(tmp_path, out) == []


@pytest.mark.slow  # several builds
def test_a_rebuild_into_an_untouched_build_folder_needs_no_force(tmp_path: Path) -> None:
    out = tmp_path / "out"
    demo = load_campaign(demo_campaign_path())  # every kind of file a build writes
    build_campaign(demo, BuildOptions(out=out, limit=20))
    assert (out / "events_errors.jsonl").exists() and (out / "feature_distributions.json").exists()
    assert build_campaign(demo, BuildOptions(out=out, limit=30))["input_rows"] == 30


# --- a full disk --------------------------------------------------------------------------

FSIZE_BUILD = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))
sys.argv = ["mailsmith", *sys.argv[2:]]
from cli import app
app()
"""


@pytest.mark.slow  # several builds
def test_a_file_size_limit_reached_by_the_manifest_leaves_nothing_behind(tmp_path: Path) -> None:
    """Emails fit, the manifest does not: its buffered lines fail again when it is closed."""
    out = tmp_path / "out"
    config = small_campaign(tmp_path, rows=600, chunk_size=100)
    build_campaign(load_campaign(config), BuildOptions(out=out, limit=20))
    before = tree_digest(out)
    child = subprocess.run(
        [sys.executable, "-c", FSIZE_BUILD, "60000", "build", str(config), "--out", str(out), "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "300"},
        timeout=300,
    )
    assert child.returncode == 5, child.stderr
    assert "Traceback" not in child.stderr and "cannot write the build" in child.stderr
    assert "manifest.jsonl" in child.stderr  # the file that could not be written
    assert leftovers(tmp_path, out) == []  # no staging folder, no lock
    assert tree_digest(out) == before


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB file system (tmpfs), where the mount is permitted (root, no container limits)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=True)  # even if a file is open


@pytest.mark.slow
def test_a_full_disk_leaves_nothing_behind_and_frees_the_space(
    tmp_path: Path, small_disk: Path
) -> None:
    """An email fills the disk; the manifest still buffers a line (about 4 KB: a long
    subject), which closing it cannot write either."""
    out = small_disk / "out"
    subject = "Hi " + "y" * 3500
    config = small_campaign(tmp_path, rows=2000, chunk_size=100, padding=5000, subject=subject)
    build_campaign(load_campaign(config), BuildOptions(out=out, limit=20))
    before = tree_digest(out)
    used = os.statvfs(small_disk)
    result = runner.invoke(app, ["build", str(config), "--out", str(out), "-q"])
    assert result.exit_code == 5, result.output
    message = " ".join(result.stderr.split())
    assert "No space left on device" in message and str(small_disk) in message
    assert "Traceback" not in result.output
    assert leftovers(small_disk, out) == []
    assert tree_digest(out) == before
    assert os.statvfs(small_disk).f_bfree == used.f_bfree  # the disk is as full as before


# --- an input file rewritten while the build reads it ------------------------------------


def test_a_profile_file_rewritten_between_chunks_fails_the_build(tmp_path: Path) -> None:
    out = tmp_path / "out"
    campaign = load_campaign(small_campaign(tmp_path))
    build_campaign(campaign, BuildOptions(out=out, limit=10))
    before = tree_digest(out)
    build, progress = iter_build(campaign, BuildOptions(out=out))
    next(progress)  # the first chunk is read and written
    with (tmp_path / "p.csv").open("a") as profiles:
        profiles.write("9001,late@example.com,Late\n")
    with pytest.raises(ProfileDataError, match="changed while the build read it") as raised:
        run_to_end(progress)
    assert raised.value.file == str(tmp_path / "p.csv")
    assert "run the build again" in str(raised.value)
    assert tree_digest(out) == before
    assert leftovers(tmp_path, out) == []


def demo_copy(folder: Path) -> Campaign:
    """The demo campaign (a pre-pass: events, clusters) with its files in ``folder``."""
    shipped = demo_campaign_path().parent
    for name in ("profiles.csv", "events.csv", "suppression.csv", "segments.yaml",
                 "autumn-retail-2026.clusters.json", "coupons.csv", "catalog.csv"):  # fmt: skip
        (folder / name).write_bytes((shipped / name).read_bytes())
    shutil.copytree(shipped / "locales", folder / "locales")
    config = folder / "campaign.yaml"
    config.write_bytes(demo_campaign_path().read_bytes())  # the template is a shipped one
    return load_campaign(config)


def rewriting_after_the_pre_pass(path: Path) -> Callable[..., Any]:
    """``prepare_audience``, then ``path`` gets one more line (an export still being written)."""
    real = driver.prepare_audience

    def prepare(*args: Any, **kwargs: Any) -> Any:
        audience = real(*args, **kwargs)
        last = path.read_text().splitlines()[-1]
        with path.open("a") as handle:
            handle.write(last + "\n")
        return audience

    return prepare


@pytest.mark.slow  # several builds
@pytest.mark.parametrize("name", ["profiles.csv", "events.csv"])
def test_an_input_file_rewritten_during_the_pre_pass_fails_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    campaign = demo_copy(tmp_path)
    out = tmp_path / "out"
    build_campaign(campaign, BuildOptions(out=out, limit=10))
    before = tree_digest(out)
    monkeypatch.setattr(driver, "prepare_audience", rewriting_after_the_pre_pass(tmp_path / name))
    with pytest.raises(ProfileDataError, match="changed while the build read it") as raised:
        build_campaign(campaign, BuildOptions(out=out))
    assert raised.value.file == str(tmp_path / name)
    assert tree_digest(out) == before
    assert leftovers(tmp_path, out) == []


def test_a_file_in_place_of_a_build_folder_is_foreign(tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_campaign(load_campaign(small_campaign(tmp_path)), BuildOptions(out=out, limit=3))
    shard = next((out / "text").iterdir())
    for email in shard.iterdir():
        email.unlink()
    shard.rmdir()
    shard.write_text("not a folder")
    with pytest.raises(OutputError, match=f"1 file .*: text/{shard.name}\\n"):
        build_campaign(load_campaign(tmp_path / "c.yaml"), BuildOptions(out=out))
    assert shard.read_text() == "not a folder"
