"""Bundle outputs (``output.format: jsonl | parquet``): the same emails as ``files``, in
shards the manifest points into, byte-identical across re-runs and worker counts."""

from __future__ import annotations

import hashlib
import json
import weakref
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import zstandard
from typer.testing import CliRunner

from cli import app
from renderer import BuildOptions, ConfigError, build_campaign, load_campaign
from renderer.build.bundle import BundleFiles
from renderer.build.executors import SUB_BATCH, ChunkJob, run_chunk
from renderer.campaign import Campaign
from renderer.preview import validated_chunks
from renderer.runtime import Rendered
from tests.conftest import AS_OF, copy_demo_campaign

runner = CliRunner()
FORMATS = ("files", "jsonl", "parquet")


def small_campaign(folder: Path, **output: Any) -> Campaign:
    """300 demo profiles (and two hostile ones) in chunks of 120 rows, shards of 50."""
    demo = load_campaign(copy_demo_campaign(folder, rows=300))
    return demo.model_copy(
        update={
            "profiles": demo.profiles.model_copy(update={"chunk_size": 120}),
            "output": demo.output.model_copy(update={"shard_size": 50, **output}),
        }
    )


def build(campaign: Campaign, out: Path, format: str, workers: int = 1) -> dict[str, Any]:
    options = BuildOptions(out=out, as_of=AS_OF, format=format, workers=workers)
    return build_campaign(campaign, options)


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under root, the timing part of summary.json left out."""
    digests = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name == "summary.json":
            summary = json.loads(data)
            summary.pop("timing")
            data = json.dumps(summary, sort_keys=True).encode()
        digests[str(path.relative_to(root))] = hashlib.sha256(data).hexdigest()
    return digests


def manifest(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def read_shard(path: Path) -> list[dict[str, Any]]:
    """A shard's rows as dicts, whatever its format."""
    if path.suffix == ".zst":  # one frame of unknown size: read it as a stream
        data = zstandard.ZstdDecompressor().stream_reader(path.read_bytes()).read()
        return [json.loads(line) for line in data.decode("utf-8").splitlines()]
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
    for row in rows:
        row["variants"] = dict(row["variants"])  # a map column reads as (key, value) pairs
    return rows


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    """The small campaign built once in each format (and as zstd JSONL), one process."""
    root = tmp_path_factory.mktemp("bundle")
    campaign = small_campaign(root / "campaign")
    builds = {f: (root / f, build(campaign, root / f, f)) for f in FORMATS}
    zstd = campaign.model_copy(
        update={"output": campaign.output.model_copy(update={"compression": "zstd"})}
    )
    builds["jsonl.zst"] = (root / "zstd", build(zstd, root / "zstd", "jsonl"))
    return builds


@pytest.mark.slow  # four builds (the module's fixture)
def test_the_three_formats_give_the_same_emails(
    builds: dict[str, tuple[Path, dict[str, Any]]],
) -> None:
    files_out, files_summary = builds["files"]
    expected = {e["id"]: e for e in manifest(files_out) if not e["holdout"]}
    assert len(expected) == files_summary["rendered"] > 100
    for format in ("jsonl", "parquet", "jsonl.zst"):
        out, summary = builds[format]
        assert summary["rendered"] == files_summary["rendered"]
        shards = {p.name: read_shard(p) for p in sorted((out / "emails").iterdir())}
        assert all(name.endswith(f".{format}") for name in shards) and len(shards) > 3
        for entry in manifest(out):
            if entry["holdout"]:
                continue
            reference = expected[entry["id"]]
            row = shards[Path(entry["shard"]).name][entry["shard_row"]]
            assert row["html"] == (files_out / reference["html"]).read_text(encoding="utf-8")
            assert row["text"] == (files_out / reference["text"]).read_text(encoding="utf-8")
            for key in ("id", "email", "subject", "preheader", "segments", "variants"):
                assert row[key] == reference[key] == entry[key]
            assert row["sha256"] == entry["html_sha256"] == reference["html_sha256"]
            assert row["sha256"] == hashlib.sha256(row["html"].encode()).hexdigest()


@pytest.mark.slow  # four builds (the module's fixture)
def test_the_manifest_keeps_its_lines_with_shard_and_row(
    builds: dict[str, tuple[Path, dict[str, Any]]],
) -> None:
    reference = manifest(builds["files"][0])
    paths = {"html", "text", "shard", "shard_row"}
    for format in ("jsonl", "parquet", "jsonl.zst"):
        out, summary = builds[format]
        entries = manifest(out)
        assert [{k: v for k, v in e.items() if k not in paths} for e in entries] == [
            {k: v for k, v in e.items() if k not in paths} for e in reference
        ]
        sent = [e for e in entries if not e["holdout"]]
        assert not any("html" in e or "text" in e for e in sent)
        # every shard row is listed once, in shard order, and nothing else is in a shard
        listed = [(e["shard"], e["shard_row"]) for e in sent]
        in_shards = [
            (str(p.relative_to(out)), row)
            for p in sorted((out / "emails").iterdir())
            for row in range(len(read_shard(p)))
        ]
        assert listed == in_shards
        total = summary["rendered"] + summary["rejected"] + summary["holdout"]
        assert summary["input_rows"] == total + summary["excluded"] + summary["not_sampled"]
        assert len(sent) == summary["rendered"] and len(entries) - len(sent) == summary["holdout"]


@pytest.mark.slow  # four builds per format, two of them with a process pool
@pytest.mark.parametrize("format", ["jsonl", "parquet"])
def test_bundle_builds_are_byte_identical_across_runs_and_workers(
    builds: dict[str, tuple[Path, dict[str, Any]]], tmp_path: Path, format: str
) -> None:
    out, _ = builds[format]
    first = tree_digest(out)
    campaign = small_campaign(tmp_path / "campaign")
    build(campaign, tmp_path / "again", format)
    assert tree_digest(tmp_path / "again") == first
    build(campaign, tmp_path / "again", format, workers=2)  # over the earlier bundle build
    assert tree_digest(tmp_path / "again") == first


def test_parquet_shards_have_one_row_group_and_typed_columns(
    builds: dict[str, tuple[Path, dict[str, Any]]],
) -> None:
    out, _ = builds["parquet"]
    for path in (out / "emails").iterdir():
        shard = pq.ParquetFile(path)
        assert shard.metadata.num_row_groups == 1
        assert shard.schema_arrow.names == [
            *("id", "email", "subject", "preheader", "html", "text"),
            *("segments", "variants", "sha256"),
        ]
        assert set(shard.metadata.metadata or {}) == {b"ARROW:schema"}  # no time in it


@pytest.mark.slow  # a build each
def test_without_text_the_text_column_is_null(tmp_path: Path) -> None:
    campaign = small_campaign(tmp_path / "campaign", text=False, format="parquet")
    summary = build_campaign(campaign, BuildOptions(out=tmp_path / "out", as_of=AS_OF, limit=60))
    rows = [row for p in (tmp_path / "out" / "emails").iterdir() for row in read_shard(p)]
    assert len(rows) == summary["rendered"] > 0
    assert all(row["text"] is None and row["html"] for row in rows)
    assert not any("text_sha256" in e for e in manifest(tmp_path / "out"))


def test_an_unknown_format_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        BuildOptions(format="csv")
    assert raised.value.field == "--format" and "jsonl" in str(raised.value.hint)
    result = runner.invoke(app, ["build", "--out", str(tmp_path / "out"), "--format", "zip"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "unknown output format" in result.stderr
    assert not (tmp_path / "out").exists()
    path = copy_demo_campaign(tmp_path / "campaign", rows=5)
    text = path.read_text(encoding="utf-8") + "output:\n  format: csv\n"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_campaign(path)
    assert "output.format" in str(raised.value) and raised.value.line is not None


@pytest.mark.slow  # a build each
def test_cli_format_option_overrides_the_campaign(tmp_path: Path) -> None:
    path = copy_demo_campaign(tmp_path / "campaign", rows=60)
    path.write_text(path.read_text(encoding="utf-8") + "output:\n  format: parquet\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["build", str(path), "--out", str(out), "--format", "jsonl", "-q"])
    assert result.exit_code == 0, result.output
    entries = [e for e in manifest(out) if not e["holdout"]]
    assert entries and {e["shard"] for e in entries} == {"emails/emails-00000.jsonl"}
    assert not (out / "html").exists() and not (out / "text").exists()


def test_summary_states_format_compression_and_shards(
    builds: dict[str, tuple[Path, dict[str, Any]]],
) -> None:
    expected = {
        "files": {"format": "files", "compression": None, "shard_size": None},
        "jsonl": {"format": "jsonl", "compression": "none", "shard_size": 50},
        "parquet": {"format": "parquet", "compression": "zstd", "shard_size": 50},
        "jsonl.zst": {"format": "jsonl", "compression": "zstd", "shard_size": 50},
    }
    for name, (out, summary) in builds.items():
        on_disk = json.loads((out / "summary.json").read_text())["output"]
        assert on_disk == summary["output"]
        shards = len(list((out / "emails").iterdir())) if name != "files" else 0
        assert summary["output"] == {**expected[name], "shards": shards}
        assert name == "files" or shards > 3


def test_zstd_shards_are_single_frames_without_size_or_checksum(
    builds: dict[str, tuple[Path, dict[str, Any]]],
) -> None:
    out, _ = builds["jsonl.zst"]
    names = sorted(p.name for p in (out / "emails").iterdir())
    assert names[0] == "emails-00000.jsonl.zst" and all(n.endswith(".jsonl.zst") for n in names)
    for path in (out / "emails").iterdir():
        frame = zstandard.get_frame_parameters(path.read_bytes())
        assert frame.content_size == zstandard.CONTENTSIZE_UNKNOWN and not frame.has_checksum


@pytest.mark.slow  # three builds, one with a process pool
def test_zstd_builds_are_byte_identical_across_runs_and_workers(
    builds: dict[str, tuple[Path, dict[str, Any]]], tmp_path: Path
) -> None:
    out, _ = builds["jsonl.zst"]
    first = tree_digest(out)
    campaign = small_campaign(tmp_path / "campaign", compression="zstd")
    build(campaign, tmp_path / "again", "jsonl")
    assert tree_digest(tmp_path / "again") == first
    build(campaign, tmp_path / "again", "jsonl", workers=2)
    assert tree_digest(tmp_path / "again") == first


def rendered(row: int) -> Rendered:
    html = f"<p>{row}</p>" * 200
    return Rendered(row, f"r{row}", f"r{row}@example.com", f"k{row}", ("all",), {"e": "A"},
                    "Subject", "Preheader", html, "text")  # fmt: skip


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_jsonl_shards_are_written_as_they_go(tmp_path: Path, compression: Any) -> None:
    files = BundleFiles(tmp_path, "jsonl", 1000, text=True, compression=compression)
    writer = files.open(0)
    sizes = []
    for row in range(1, 201):
        writer.write(rendered(row))
        assert not writer.rows  # nothing held for the shard
        sizes.append((tmp_path / writer.path).stat().st_size)
    assert sizes[-1] > sizes[0]  # bytes reach the file before the shard is closed
    writer.close()
    rows = read_shard(tmp_path / writer.path)
    assert [r["id"] for r in rows] == [f"r{row}" for row in range(1, 201)]


def test_cli_says_the_format_and_number_of_shards(tmp_path: Path) -> None:
    path = copy_demo_campaign(tmp_path / "campaign", rows=60)
    text = "output:\n  format: jsonl\n  compression: zstd\n  shard_size: 20\n"
    path.write_text(path.read_text(encoding="utf-8") + text)
    result = runner.invoke(app, ["build", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    shards = len(list((tmp_path / "out" / "emails").glob("emails-*.jsonl.zst")))
    assert shards >= 2
    assert f"Output: jsonl (zstd), {shards} shards of up to 20 rows." in result.stdout


class WatchedOutput:
    """Bundle shards, with a weak reference to each email written: which are still held
    when the part is done."""

    def __init__(self, files: BundleFiles) -> None:
        self.files = files
        self.shard_size = files.shard_size
        self.written: list[weakref.ref[Rendered]] = []
        self.held_at_close = -1

    def open(self, shard: int) -> WatchedOutput:
        self.sink = self.files.open(shard)
        return self

    def write(self, item: Rendered) -> bytes:
        self.written.append(weakref.ref(item))
        return self.sink.write(item)

    def close(self) -> None:
        self.held_at_close = sum(ref() is not None for ref in self.written)
        self.sink.close()


def test_a_part_does_not_hold_its_emails_once_written(tmp_path: Path) -> None:
    demo = load_campaign(copy_demo_campaign(tmp_path / "campaign", rows=330))
    campaign = demo.model_copy(
        update={"profiles": demo.profiles.model_copy(update={"chunk_size": 400})}
    )
    runtime, chunk = next(validated_chunks(campaign, AS_OF))
    output = WatchedOutput(BundleFiles(tmp_path / "out", "jsonl", 1000, text=True))
    result = run_chunk(ChunkJob(runtime, runtime.segment_plan(), output), chunk)
    assert result.rendered == len(output.written) > SUB_BATCH
    assert output.held_at_close <= SUB_BATCH  # the last sub-batch's, at most
