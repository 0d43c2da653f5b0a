"""``--executor dask``: the same build on a real ``distributed.LocalCluster`` of processes
gives the same bytes as a local one; the options are checked; a stopped build stops its
cluster. A cluster takes seconds to start, so all but one build here are in the slow set."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from renderer import BuildOptions, ConfigError, build_campaign, load_campaign
from renderer.campaign import Campaign
from segments.errors import ProfileDataError
from segments.profiles.read import count_rows, read_chunks
from tests.conftest import AS_OF, copy_demo_campaign
from tests.test_bundle_output import small_campaign, tree_digest

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def campaign_file(folder: Path) -> Path:
    """The demo campaign on 300 of its profiles (and two hostile ones) as a file, read in
    chunks of 120 rows, shards of 50 (as :func:`small_campaign`)."""
    path = copy_demo_campaign(folder, rows=300)
    text = path.read_text(encoding="utf-8")
    text = text.replace("profiles: profiles.csv", "profiles: {path: profiles.csv, chunk_size: 120}")
    path.write_text(text + "output: {shard_size: 50}\n", encoding="utf-8")
    return path


def build(campaign: Campaign, out: Path, format: str, **options: Any) -> dict[str, Any]:
    return build_campaign(campaign, BuildOptions(out=out, as_of=AS_OF, format=format, **options))


def counts(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary without its timing and options (the executor is not an option of it)."""
    return {k: v for k, v in summary.items() if k not in ("timing", "options")}


@pytest.mark.slow  # a cluster start-up
def test_a_dask_build_gives_the_bytes_of_a_local_build(tmp_path: Path) -> None:
    campaign = small_campaign(tmp_path / "campaign")
    local = build(campaign, tmp_path / "local", "jsonl")
    dask = build(campaign, tmp_path / "dask", "jsonl", executor="dask", workers=2)
    assert tree_digest(tmp_path / "dask") == tree_digest(tmp_path / "local")
    assert counts(dask) == counts(local) and dask["rejected"] > 0 and dask["holdout"] > 0
    assert len(list((tmp_path / "dask" / "emails").iterdir())) > 2  # several shards


@pytest.mark.slow  # two cluster start-ups
@pytest.mark.parametrize("format", ["files", "parquet"])
def test_the_cli_dask_build_matches_the_local_one_in_every_format(
    tmp_path: Path, format: str
) -> None:
    config = campaign_file(tmp_path / "campaign")
    build(load_campaign(config), tmp_path / "local", format, workers=2)
    args = ["build", str(config), "--out", str(tmp_path / "dask"), "--format", format, "-q"]
    args += ["--as-of", AS_OF.strftime("%Y-%m-%dT%H:%M:%S"), "--executor", "dask", "--workers", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert tree_digest(tmp_path / "dask") == tree_digest(tmp_path / "local")


def test_scheduler_without_the_dask_executor_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["build", "--out", str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:8786"]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--executor dask" in result.stderr
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError) as raised:
        BuildOptions(executor="ray")
    assert raised.value.field == "--executor" and "dask" in str(raised.value.hint)


@pytest.mark.slow  # the connection is retried for a second
def test_an_unreachable_scheduler_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from renderer.build import dask_executor

    monkeypatch.setattr(dask_executor, "CONNECT_SECONDS", 1)
    out = tmp_path / "out"
    args = ["build", "--out", str(out), "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in result.stderr
    assert "dask scheduler" in result.stderr  # the hint: how to start one
    assert list(tmp_path.iterdir()) == []  # no output, no staging folder


@pytest.mark.slow
def test_a_build_on_a_scheduler_of_its_own_matches_the_local_one(tmp_path: Path) -> None:
    from distributed import LocalCluster

    campaign = small_campaign(tmp_path / "campaign")
    build(campaign, tmp_path / "local", "parquet")
    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        build(campaign, tmp_path / "dask", "parquet", executor="dask", scheduler=address)
    assert tree_digest(tmp_path / "dask") == tree_digest(tmp_path / "local")


# --- a stopped build stops its cluster ----------------------------------------------------


def descendants(pid: int) -> list[int]:
    """The processes ``pid`` started, and theirs (Dask forks its workers from a server)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if Path(f"/proc/{pid}").exists()]


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_dask_build_stops_its_workers_and_removes_its_output(
    tmp_path: Path, stop: int
) -> None:
    out = tmp_path / "out"
    child = subprocess.Popen(
        [sys.executable, "-c", "from cli import app; app()", "build", "--out", str(out)]
        + ["--executor", "dask", "--workers", "2", "--quiet"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        # the workers write emails (a local cluster's processes are the build's children)
        while not list(tmp_path.glob(".out.partial-*/html")):
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the build never started writing"
            time.sleep(0.05)
        workers = descendants(child.pid)
        assert len(workers) >= 2
        if stop == signal.SIGINT:  # Ctrl-C: a terminal signals every process of the group
            for pid in [child.pid, *workers]:
                os.kill(pid, stop)
        else:
            child.send_signal(stop)
        sent = time.monotonic()
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert time.monotonic() - sent < 15, stderr.decode()
    assert child.returncode == 130, stderr.decode()
    assert b"Interrupted" in stderr and b"Traceback" not in stderr, stderr.decode()
    assert list(tmp_path.iterdir()) == []  # no output, no staging folder
    deadline = time.monotonic() + 10
    while alive(workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(workers) == []


# --- profiles as a partitioned Parquet dataset ---------------------------------------------


def parquet_campaign(folder: Path, profiles: str) -> Path:
    """:func:`campaign_file` reading its profiles (as text columns) from Parquet: one file
    ``profiles.parquet`` and the same rows in three files ``parts/part-N.parquet`` of
    uneven sizes, so chunks straddle files; ``profiles`` says which the campaign reads."""
    config = campaign_file(folder)
    frame = pd.read_csv(folder / "profiles.csv", dtype=str, keep_default_na=False)
    frame.to_parquet(folder / "profiles.parquet", index=False)
    (folder / "parts").mkdir()
    for number, (start, end) in enumerate([(0, 70), (70, 200), (200, len(frame))]):
        part = frame.iloc[start:end]
        part.to_parquet(folder / "parts" / f"part-{number}.parquet", index=False)
    text = config.read_text(encoding="utf-8").replace("path: profiles.csv", f"path: {profiles}")
    config.write_text(text, encoding="utf-8")
    return config


def test_a_parquet_dataset_reads_as_one_file_with_rows_numbered_on(tmp_path: Path) -> None:
    config = parquet_campaign(tmp_path / "campaign", "profiles.parquet")
    folder = config.parent

    def chunks(path: Path, fmt: str = "parquet") -> list[pd.DataFrame]:
        return [chunk.frame for chunk in read_chunks(path, fmt, 120)]

    whole = chunks(folder / "profiles.parquet")
    assert [len(frame) for frame in whole] == [120, 120, 62]
    for dataset in (chunks(folder / "parts" / "*.parquet"), chunks(folder / "parts", "")):
        assert len(dataset) == len(whole)
        for got, expected in zip(dataset, whole, strict=True):
            pd.testing.assert_frame_equal(got, expected)  # the row numbers are the index
    assert count_rows(folder / "parts", "") == count_rows(folder / "parts/*.parquet", "parquet")
    assert count_rows(folder / "parts", "") == 302


def test_a_dataset_whose_files_disagree_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "parts").mkdir()
    pd.DataFrame({"id": ["1", "2"], "email": ["a@x.org", "b@x.org"]}).to_parquet(
        tmp_path / "parts" / "a.parquet"
    )
    pd.DataFrame({"id": [3], "email": [[1, 2]]}).to_parquet(tmp_path / "parts" / "b.parquet")
    with pytest.raises(ProfileDataError) as raised:
        list(read_chunks(tmp_path / "parts", "parquet", 5))
    assert raised.value.file == str(tmp_path / "parts" / "b.parquet")
    assert "do not match" in str(raised.value)
    with pytest.raises(ProfileDataError, match="not found"):
        list(read_chunks(tmp_path / "nothing" / "*.parquet", "parquet", 5))


@pytest.mark.slow  # three builds
@pytest.mark.parametrize("dataset", ["parts/*.parquet", "parts"])
def test_a_dataset_build_gives_the_bytes_of_the_one_file_build(
    tmp_path: Path, dataset: str
) -> None:
    one = load_campaign(parquet_campaign(tmp_path / "one", "profiles.parquet"))
    many = load_campaign(parquet_campaign(tmp_path / "many", dataset))
    for format in ("jsonl", "files"):
        single = build(one, tmp_path / f"single-{format}", format)
        split = build(many, tmp_path / f"split-{format}", format)
        assert single["rejected"] and counts(split) == counts(single)
        assert tree_digest(tmp_path / f"split-{format}") == tree_digest(
            tmp_path / f"single-{format}"
        )
