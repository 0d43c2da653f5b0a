"""Builds end to end: counts reconcile, outputs, byte-identical rebuilds, atomic writes, CLI."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import resource
import signal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app
from renderer import (
    BuildOptions,
    OutputError,
    UndefinedFieldError,
    build_campaign,
    load_campaign,
)
from renderer.build.output import OutputWriter
from renderer.campaign import demo_campaign_path
from renderer.runtime import recipient_key
from renderer.unsubscribe import verify_token
from tests.conftest import AS_OF, UNSUBSCRIBE_SECRET

runner = CliRunner()


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under root, except the timing part of summary.json."""
    digests = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name == "summary.json":
            summary = json.loads(data)
            summary.pop("timing")
            data = json.dumps(summary, sort_keys=True).encode()
        digests[str(path.relative_to(root))] = hashlib.sha256(data).hexdigest()
    return digests


def test_demo_build_counts_reconcile_and_match_the_files(
    demo_build: tuple[Path, dict[str, Any]],
) -> None:
    out, summary = demo_build
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert summary["input_rows"] == 2500
    assert summary["input_rows"] == summary["rendered"] + summary["rejected"] + summary["holdout"]
    sent = [m for m in manifest if not m["holdout"]]
    assert len(sent) == summary["rendered"] and len(errors) == summary["rejected"]
    assert len(manifest) - len(sent) == summary["holdout"]
    assert sum(summary["rejected_by_reason"].values()) == summary["rejected"]
    assert {"invalid_email", "duplicate_id", "no_consent", "suppressed", "invalid_value"} <= set(
        summary["rejected_by_reason"]
    )
    rows = sorted([m["row"] for m in manifest] + [e["row"] for e in errors])
    assert rows == list(range(1, 2501))  # nobody lost, nobody twice
    assert summary["as_of"] == AS_OF.isoformat()
    assert json.loads((out / "summary.json").read_text()) == summary


def test_the_demo_never_greets_anyone_with_a_spelling_of_no_value(
    demo_build: tuple[Path, dict[str, Any]],
) -> None:
    """The demo's profiles hold first names like "None", "NaN", "null" and "N/A"."""
    out, _ = demo_build
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    spelled = re.compile(r"(?:^|Hi )(?:none|nan|null|n/a),", re.IGNORECASE)
    greeted = 0
    for entry in manifest:
        if not entry["holdout"]:
            text = (out / entry["text"]).read_text(encoding="utf-8")
            assert not spelled.search(entry["subject"]), entry["id"]
            assert not spelled.search(text), entry["id"]
            greeted += "Hi " in text
    assert greeted > 100  # the greeting is there to be checked


def test_manifest_lines_describe_the_written_files(demo_build: tuple[Path, dict[str, Any]]) -> None:
    out, _ = demo_build
    for line in (out / "manifest.jsonl").read_text().splitlines()[:50]:
        entry = json.loads(line)
        if entry["holdout"]:
            assert "html" not in entry
            continue
        html = (out / entry["html"]).read_bytes()
        text = (out / entry["text"]).read_bytes()
        assert (
            len(html) == entry["html_bytes"]
            and hashlib.sha256(html).hexdigest() == entry["html_sha256"]
        )
        assert (
            len(text) == entry["text_bytes"]
            and hashlib.sha256(text).hexdigest() == entry["text_sha256"]
        )
        assert entry["id"] not in entry["html"]  # ids never raw in paths
        assert entry["key"] == recipient_key("autumn-retail-2026", entry["id"])
        assert entry["subject"] and entry["preheader"]
        assert "<" not in text.decode()[:200]
        # the unsubscribe link carries a token signed for this recipient, not the raw id
        token = re.search(r"unsubscribe\?token=([\w.=-]+)", html.decode())
        assert (
            token
            and verify_token(token[1], UNSUBSCRIBE_SECRET, "autumn-retail-2026") == (entry["id"])
        )


@pytest.mark.slow
def test_rebuild_is_byte_identical(demo_build: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, _ = demo_build
    again = tmp_path / "again"
    build_campaign(load_campaign(demo_campaign_path()), BuildOptions(out=again))
    assert tree_digest(again) == tree_digest(out)


def test_failed_build_leaves_the_previous_output_untouched(tmp_path: Path) -> None:
    campaign = load_campaign(demo_campaign_path())
    out = tmp_path / "out"
    build_campaign(campaign, BuildOptions(out=out, limit=20))
    before = tree_digest(out)
    broken = campaign.model_copy(update={"template": "does_not_exist.mjml"})
    with pytest.raises(Exception, match="not found"):
        build_campaign(broken, BuildOptions(out=out))
    assert tree_digest(out) == before
    assert not list(tmp_path.glob(".out.partial-*"))


def test_output_folder_with_foreign_files_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.docx").write_text("precious")
    with pytest.raises(OutputError, match="not empty"):
        build_campaign(load_campaign(demo_campaign_path()), BuildOptions(out=out, limit=5))
    assert (out / "thesis.docx").read_text() == "precious"


def test_limit_counts_input_rows(tmp_path: Path) -> None:
    summary = build_campaign(
        load_campaign(demo_campaign_path()), BuildOptions(out=tmp_path / "o", limit=100)
    )
    assert summary["input_rows"] == 100
    assert summary["rendered"] + summary["rejected"] + summary["holdout"] == 100


def test_cli_build_prints_a_reconciled_summary(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["build", "--out", str(tmp_path / "o"), "--limit", "300", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "input rows" in result.stdout and "Reconciled" in result.stdout
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["input_rows"] == 300


@pytest.mark.slow
def test_cli_max_rejected_fails_the_build(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["build", "--out", str(tmp_path / "o"), "--quiet", "--max-rejected", "1%"]
    )
    assert result.exit_code == 6
    assert "more than --max-rejected" in result.stderr
    ok = runner.invoke(
        app, ["build", "--out", str(tmp_path / "o"), "--quiet", "--max-rejected", "10%"]
    )
    assert ok.exit_code == 0


def test_cli_config_error_names_file_and_line(tmp_path: Path) -> None:
    text = demo_campaign_path().read_text().replace("missing_token: reject", "missing_token: maybe")
    bad = tmp_path / "campaign.yaml"
    bad.write_text(text)
    result = runner.invoke(app, ["build", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("missing_token"))
    assert f"{bad}:{line}: missing_token" in result.stderr
    assert result.stderr.startswith("Error:")


def test_cli_render_one_profile(tmp_path: Path) -> None:
    result = runner.invoke(app, ["render", "--profile", "C000001"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Subject: James, 3 picks we think you'll love")  # variant B
    assert "<html" in result.stdout
    text = runner.invoke(
        app, ["render", str(demo_campaign_path()), "--profile", "C000001", "--text"]
    )
    assert text.exit_code == 0 and "<html" not in text.stdout and "Unsubscribe" in text.stdout
    target = tmp_path / "one.html"
    written = runner.invoke(app, ["render", "--profile", "C000001", "-o", str(target)])
    assert written.exit_code == 0 and target.read_text().lower().startswith("<!doctype html>")


def test_cli_render_explains_a_rejected_profile() -> None:
    result = runner.invoke(app, ["render", "--profile", "C000023"])
    assert result.exit_code == 3
    assert "rejected" in result.stderr and "email" in result.stderr


def test_cli_adhoc_build_with_inferred_schema(tmp_path: Path) -> None:
    template = tmp_path / "hello.mjml"
    template.write_text(
        "<mjml><mj-body><mj-section><mj-column><mj-text>Hi {{ name | fallback('you') }}"
        "{% for t in tags %} #{{ t }}{% endfor %} {{ address.city }}</mj-text></mj-column></mj-section></mj-body></mjml>"
    )
    profiles = tmp_path / "people.jsonl"
    profiles.write_text(
        json.dumps(
            {
                "id": 1,
                "email": "a@example.com",
                "name": "Ana",
                "tags": ["x", "y"],
                "address": {"city": "Oslo"},
            }
        )
        + "\n"
        + json.dumps({"id": 2, "email": "b@example.com", "tags": [], "address": {"city": "Rome"}})
        + "\n"
    )
    out = tmp_path / "o"
    result = runner.invoke(
        app,
        [
            "build",
            "--template",
            str(template),
            "--profiles",
            str(profiles),
            "--out",
            str(out),
            "--quiet",
            "--subject",
            "Hello {{ name | fallback('') }}",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    first = (out / manifest[0]["html"]).read_text()
    assert "Hi Ana" in first and "#x" in first and "#y" in first and "Oslo" in first
    assert "Hi you" in (out / manifest[1]["html"]).read_text()
    assert manifest[0]["subject"] == "Hello Ana"


def test_every_command_has_help() -> None:
    for command in ([], ["build"], ["render"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.stdout


@pytest.mark.slow
def test_worker_processes_give_byte_identical_output(tmp_path: Path) -> None:
    demo = load_campaign(demo_campaign_path())
    # small chunks: workers render one chunk while the next is prepared
    campaign = demo.model_copy(
        update={"profiles": demo.profiles.model_copy(update={"chunk_size": 400})}
    )
    one = build_campaign(campaign, BuildOptions(out=tmp_path / "one"))
    two = build_campaign(campaign, BuildOptions(out=tmp_path / "two", workers=2))
    assert one["rendered"] == two["rendered"] > 0 and two["holdout"] > 0
    assert tree_digest(tmp_path / "one") == tree_digest(tmp_path / "two")
    limited = build_campaign(campaign, BuildOptions(out=tmp_path / "three", limit=1200, workers=2))
    assert limited["input_rows"] == 1200


def test_a_failure_in_a_worker_leaves_no_partial_output(tmp_path: Path) -> None:
    """The workers write files: they all stop before the staging folder is removed."""
    template = tmp_path / "t.mjml"
    template.write_text(
        "<mjml><mj-body><mj-section><mj-column><mj-text>Hi {{ nickname }}</mj-text>"
        "</mj-column></mj-section></mj-body></mjml>"
    )
    lines = ["id,email,nickname"]
    lines += [f"{i},p{i}@example.com,n{i}" for i in range(1, 4001)]
    lines[1001] = "1001,p1001@example.com,"  # no nickname, and missing_token: error
    (tmp_path / "p.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "c.yaml").write_text(
        "name: fails\ntemplate: t.mjml\nsubject: Hi\nmissing_token: error\n"
        "paths: {templates: ['.']}\nprofiles: {path: p.csv, chunk_size: 1000}\n"
    )
    campaign = load_campaign(tmp_path / "c.yaml")
    with pytest.raises(UndefinedFieldError):
        build_campaign(campaign, BuildOptions(out=tmp_path / "out", workers=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "p.csv", "t.mjml"]


def test_cli_fails_when_every_row_is_rejected(tmp_path: Path) -> None:
    template = tmp_path / "t.mjml"
    template.write_text(
        "<mjml><mj-body><mj-section><mj-column><mj-text>{{ nickname }}</mj-text>"
        "</mj-column></mj-section></mj-body></mjml>"
    )
    profiles = tmp_path / "p.csv"
    profiles.write_text("id,email\n1,a@example.com\n2,b@example.com\n")
    result = runner.invoke(
        app,
        [
            "build",
            "--template",
            str(template),
            "--profiles",
            str(profiles),
            "--out",
            str(tmp_path / "o"),
            "--quiet",
            "--no-check",  # else the unknown name refuses the build before any row is read
        ],
    )
    assert result.exit_code == 6  # nothing rendered while rows were rejected
    assert "2 of 2 rows rejected (mostly missing_field); see " in result.stderr
    errors = (tmp_path / "o" / "errors.jsonl").read_text().splitlines()
    assert len(errors) == 2 and all("t.mjml:1: 'nickname' is undefined" in e for e in errors)


@pytest.mark.slow  # two demo builds
def test_a_limited_build_equals_the_full_build_cut_at_the_limit(
    demo_build: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    full_out, _ = demo_build
    out = tmp_path / "o"
    build_campaign(load_campaign(demo_campaign_path()), BuildOptions(out=out, limit=777))

    def lines(folder: Path, name: str) -> list[dict[str, Any]]:
        found = [json.loads(x) for x in (folder / name).read_text().splitlines()]
        return sorted((x for x in found if x["row"] <= 777), key=lambda x: x["row"])

    for name in ("manifest.jsonl", "errors.jsonl"):
        assert lines(out, name) == lines(full_out, name)
    assert len(lines(out, "manifest.jsonl")) + len(lines(out, "errors.jsonl")) == 777


@pytest.mark.slow
def test_the_render_pass_reads_the_pre_pass_chunks_instead_of_validating_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from segments.profiles.validate import ProfileValidator

    calls = []
    validate = ProfileValidator.validate

    def counting(self: ProfileValidator, chunk: Any) -> Any:
        calls.append(len(chunk.frame))
        return validate(self, chunk)

    monkeypatch.setattr(ProfileValidator, "validate", counting)
    campaign = load_campaign(demo_campaign_path())
    summary = build_campaign(campaign, BuildOptions(out=tmp_path / "o"))
    assert sum(calls) == summary["input_rows"]  # each row validated once: in the pre-pass
    assert list(tmp_path.iterdir()) == [tmp_path / "o"]  # the spool leaves no file behind


def test_chunk_spool_gives_back_the_chunks_in_order(tmp_path: Path) -> None:
    import pandas as pd

    from segments.profiles.read import Rejection
    from segments.profiles.spool import ChunkSpool, ValidatedChunk

    spool = ChunkSpool(tmp_path)
    chunks = [
        ValidatedChunk(
            pd.DataFrame({"id": [f"a{i}", f"b{i}"]}, index=[3 * i + 1, 3 * i + 3]),
            [Rejection(3 * i + 2, f"r{i}", "email", "invalid_email", "bad")],
        )
        for i in range(3)
    ]
    for chunk in chunks:
        spool.add(chunk)
    spool.finish()
    back = list(spool)
    spool.close()
    assert [c.rejected for c in back] == [c.rejected for c in chunks]
    assert all(a.valid.equals(b.valid) for a, b in zip(back, chunks, strict=True))
    assert chunks[1].row_numbers() == [4, 5, 6] and chunks[1].rows == 3
    cut = chunks[1].up_to(5)
    assert cut.row_numbers() == [4, 5] and list(cut.valid["id"]) == ["a1"]
    assert list(tmp_path.iterdir()) == []  # anonymous file


def test_percentile_in_a_block_show_if_is_refused_with_the_block_file(tmp_path: Path) -> None:
    (tmp_path / "blocks").mkdir()
    (tmp_path / "blocks" / "big.mjml").write_text(
        "---\nname: big\nshow_if: {field: spent, op: gte, value: p75}\n---\n"
        "<mj-section><mj-column><mj-text>Big</mj-text></mj-column></mj-section>"
    )
    template = tmp_path / "t.mjml"
    template.write_text('<mjml><mj-body><mj-block name="big" /></mj-body></mjml>')
    profiles = tmp_path / "p.csv"
    profiles.write_text("id,email,spent\n1,a@example.com,10\n2,b@example.com,100\n")
    result = runner.invoke(
        app,
        ["build", "--template", str(template), "--profiles", str(profiles), "--out",
         str(tmp_path / "o"), "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 4, result.output
    assert "big.mjml" in result.output and "percentile (p75)" in result.output
    assert not (tmp_path / "o").exists()


def test_a_write_failure_is_an_output_error_and_keeps_the_previous_build(tmp_path: Path) -> None:
    """A full disk, a quota, a file-size limit: exit 5 naming the file, nothing half-written."""
    campaign = load_campaign(demo_campaign_path())
    out = tmp_path / "out"
    build_campaign(campaign, BuildOptions(out=out, limit=60))
    before = tree_digest(out)
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, limit[1]))  # emails are ~45 KB
    try:
        with pytest.raises(OutputError) as raised:
            build_campaign(campaign, BuildOptions(out=out, limit=60))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, handler)
    assert raised.value.exit_code == 5 and "cannot write the build" in str(raised.value)
    assert raised.value.file is not None and str(tmp_path) in raised.value.file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder left
    assert tree_digest(out) == before


def test_adhoc_build_reads_a_semicolon_separated_cp1252_export(tmp_path: Path) -> None:
    template = tmp_path / "t.mjml"
    template.write_text(
        "<mjml><mj-body><mj-section><mj-column><mj-text>Hi {{ first_name }}</mj-text>"
        "</mj-column></mj-section></mj-body></mjml>"
    )
    profiles = tmp_path / "export.csv"
    profiles.write_bytes("id;email;first_name\n1;a@example.com;José\n".encode("cp1252"))
    command = ["build", "--template", str(template), "--profiles", str(profiles), "--quiet"]
    out = tmp_path / "o"
    failed = runner.invoke(app, [*command, "--out", str(out)])
    assert failed.exit_code == 3 and "not utf-8 text" in failed.output
    assert "--encoding" in failed.output
    command += ["--out", str(out), "--encoding", "cp1252"]
    failed = runner.invoke(app, command)
    assert failed.exit_code == 3 and "';'-separated" in failed.output
    result = runner.invoke(app, [*command, "--delimiter", ";"])
    assert result.exit_code == 0, result.output
    (entry,) = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert "Hi José" in (out / entry["html"]).read_text(encoding="utf-8")


def test_one_build_at_a_time_per_output_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = OutputWriter(out)
    with pytest.raises(OutputError, match="another mailsmith build is writing"):
        OutputWriter(out)
    with pytest.raises(OutputError, match="another mailsmith build is writing"):
        build_campaign(load_campaign(demo_campaign_path()), BuildOptions(out=out, limit=10))
    OutputWriter(tmp_path / "elsewhere").abort()  # other folders are free
    first.commit({"input_rows": 0})
    second = OutputWriter(out)  # free again once the first build is done
    second.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no lock file left


def test_a_failure_between_the_two_renames_puts_the_previous_build_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    build_campaign(load_campaign(demo_campaign_path()), BuildOptions(out=out, limit=10))
    before = tree_digest(out)
    writer = OutputWriter(out)
    real_replace = os.replace

    def fail_second(source: Any, target: Any) -> None:
        if Path(source) == writer.staging:
            raise OSError(errno.EIO, "Input/output error")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", fail_second)
    with pytest.raises(OSError):
        writer.commit({"input_rows": 0})
    writer.abort()
    assert tree_digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.slow
def test_cli_workers_zero_means_one_per_core(tmp_path: Path) -> None:
    outs = []
    for workers in ("0", "1"):
        outs.append(tmp_path / f"w{workers}")
        command = ["build", "--out", str(outs[-1]), "--limit", "300", "--workers", workers]
        result = runner.invoke(app, [*command, "--quiet"])
        assert result.exit_code == 0, result.output
    assert tree_digest(outs[0]) == tree_digest(outs[1])


def test_cli_warns_when_the_profile_file_has_no_rows(tmp_path: Path) -> None:
    folder = tmp_path / ("long-folder-name-" * 6)  # a warning longer than the terminal
    folder.mkdir()
    template = folder / "t.mjml"
    template.write_text("<mjml><mj-body><mj-text>Hi</mj-text></mj-body></mjml>")
    profiles = folder / "p.csv"
    profiles.write_text("id,email\n")
    command = ["build", "--template", str(template), "--profiles", str(profiles)]
    result = runner.invoke(app, [*command, "--out", str(tmp_path / "o"), "--quiet"])
    assert result.exit_code == 0, result.output
    warning = f"Warning: {profiles} has no profile rows; nothing was rendered"
    assert warning in result.stderr.splitlines()


def adhoc_files(tmp_path: Path, total_spent: list[str]) -> list[str]:
    """An ad-hoc template, CSV and segments file (a numeric rule): the build command."""
    template = tmp_path / "t.mjml"
    template.write_text(
        "<mjml><mj-body><mj-section><mj-column><mj-text>Hi {{ first_name }}"
        "{% if 'big' in segments %}, big spender{% endif %}</mj-text>"
        "</mj-column></mj-section></mj-body></mjml>"
    )
    rows = [f"{i},p{i}@example.com,P{i},{v},0{i}134" for i, v in enumerate(total_spent, 1)]
    profiles = tmp_path / "p.csv"
    profiles.write_text("id,email,first_name,total_spent,zip\n" + "\n".join(rows) + "\n")
    segments = tmp_path / "s.yaml"
    segments.write_text("segments:\n  big: {field: total_spent, op: gte, value: 500}\n")
    return [
        "build",
        "--template",
        str(template),
        "--profiles",
        str(profiles),
        "--segments",
        str(segments),
        "--out",
        str(tmp_path / "o"),
        "--quiet",
    ]


def test_cli_adhoc_build_types_numbers_for_segment_rules(tmp_path: Path) -> None:
    result = runner.invoke(app, [*adhoc_files(tmp_path, ["750.50", "20", ""]), "--verbose"])
    assert result.exit_code == 0, result.output
    manifest = [
        json.loads(line) for line in (tmp_path / "o/manifest.jsonl").read_text().splitlines()
    ]
    assert [m["segments"] for m in manifest] == [["big"], [], []]
    assert "inferred total_spent: float" in result.stderr
    assert "inferred zip: string" in result.stderr  # leading zeros
    assert "inferred" not in result.stdout


def test_cli_adhoc_schema_file_types_what_inference_leaves_as_text(tmp_path: Path) -> None:
    command = adhoc_files(tmp_path, ["750.50", "unknown"])
    failed = runner.invoke(app, command)
    assert failed.exit_code == 2 and "string field 'total_spent'" in failed.stderr
    schema = tmp_path / "schema.yaml"
    schema.write_text("total_spent: float\n")
    result = runner.invoke(app, [*command, "--schema", str(schema), "--verbose"])
    assert result.exit_code == 0, result.output
    assert "inferred first_name: string" in result.stderr
    assert "total_spent" not in result.stderr  # declared, not inferred
    errors = (tmp_path / "o/errors.jsonl").read_text().splitlines()
    assert [json.loads(e)["field"] for e in errors] == ["total_spent"]


def test_cli_schema_is_for_adhoc_builds_only(tmp_path: Path) -> None:
    schema = tmp_path / "schema.yaml"
    schema.write_text("total_spent: float\n")
    result = runner.invoke(app, ["build", "--schema", str(schema), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--schema is for an ad-hoc build" in result.stderr


def test_a_type_error_in_the_subject_rejects_the_recipient(tmp_path: Path) -> None:
    template = tmp_path / "t.mjml"
    template.write_text("<mjml><mj-body><mj-text>Hi</mj-text></mj-body></mjml>")
    profiles = tmp_path / "p.csv"
    profiles.write_text("id,email,n\n1,a@example.com,x\n")
    command = ["build", "--template", str(template), "--profiles", str(profiles)]
    command += ["--subject", "{{ n + 1 }} picks", "--out", str(tmp_path / "o"), "--quiet"]
    result = runner.invoke(app, command)
    assert result.exit_code == 6, result.output  # nothing rendered, one row rejected
    (line,) = (tmp_path / "o/errors.jsonl").read_text().splitlines()
    assert json.loads(line)["reason"] == "render_error"
    assert "subject: TypeError while rendering" in json.loads(line)["detail"]
