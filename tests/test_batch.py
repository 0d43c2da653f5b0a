"""The pipeline's unit: segment_chunk (audience side) and render_batch (content side).

Both are pure and their inputs pickle: a chunk segmented here and rendered in a
fresh process gives the bytes the build wrote.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from renderer import BuildOptions, build_campaign, load_campaign
from renderer.campaign import demo_campaign_path
from renderer.coupons import CouponCodes
from renderer.preview import validated_chunks
from renderer.runtime import render_batch
from segments.batch import SegmentedBatch, segment_chunk
from segments.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

_RENDER_IN_FRESH_PROCESS = """
import hashlib, json, pickle, sys
from renderer.runtime import render_batch
runtime, batch = pickle.loads(sys.stdin.buffer.read())
result = render_batch(runtime, batch)
print(json.dumps({
    "rendered": {item.id: hashlib.sha256(item.html.encode()).hexdigest()
                 for item in result.rendered},
}))
"""


@pytest.fixture(scope="module")
def demo_build(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    out = tmp_path_factory.mktemp("batch") / "out"
    campaign = load_campaign(demo_campaign_path())
    build_campaign(campaign, BuildOptions(out=out, limit=300))
    lines = (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return {entry["id"]: entry for entry in map(json.loads, lines)}


def _first_chunk() -> tuple[object, SegmentedBatch]:
    campaign = load_campaign(demo_campaign_path())
    runtime, chunk = next(validated_chunks(campaign, None))
    return runtime, segment_chunk(chunk.up_to(300), runtime.segment_plan())  # type: ignore[attr-defined]


def test_a_chunk_rendered_from_pickled_inputs_in_a_fresh_process_is_what_the_build_wrote(
    demo_build: dict[str, dict[str, object]],
) -> None:
    runtime, batch = _first_chunk()
    part = batch.take(range(60))
    codes = {int(e["row"]): str(e["coupon"]) for e in demo_build.values() if "coupon" in e}
    CouponCodes(codes).give(part.rows, part.records)  # as the build's parent gave them
    payload = pickle.dumps((runtime, part))
    done = subprocess.run(
        [sys.executable, "-c", _RENDER_IN_FRESH_PROCESS],
        input=payload,
        capture_output=True,
        cwd=ROOT,
        env={  # the unsubscribe secret tests/conftest.py sets, so the tokens are the build's
            "PYTHONPATH": str(ROOT),
            "PATH": "/usr/bin:/bin",
            "MAILSMITH_UNSUBSCRIBE_SECRET": os.environ["MAILSMITH_UNSUBSCRIBE_SECRET"],
        },
        check=True,
    )
    result = json.loads(done.stdout)
    rendered = result["rendered"]
    held = [i for i in range(len(part)) if part.held_out[i]]
    assert held, "the first 60 demo rows include held-out recipients"
    written = {
        part.ids[i]: demo_build[part.ids[i]]["html_sha256"]
        for i in range(len(part))
        if part.ids[i] in demo_build and not demo_build[part.ids[i]]["holdout"]
    }
    assert len(written) > 40
    assert rendered == written
    for index in held:
        assert demo_build[part.ids[index]]["holdout"] is True


def test_segment_chunk_is_pure_and_its_result_pickles() -> None:
    runtime, first = _first_chunk()
    _, second = _first_chunk()
    assert pickle.loads(pickle.dumps(first)) == first
    assert first == second
    assert first.input_rows == 300
    assert first.input_rows == len(first) + len(first.rejected)
    assert sum(first.holdouts().values()) >= sum(1 for keys in first.held_out if keys)


def test_render_batch_renders_nothing_for_held_out_rows() -> None:
    runtime, batch = _first_chunk()
    result = render_batch(runtime, batch.take(range(40)))  # type: ignore[arg-type]
    sent = {batch.rows[i] for i in range(40) if not batch.held_out[i]}
    assert {item.row for item in result.rendered} | {r.row for r in result.rejected} == sent


def test_forced_variants_must_exist() -> None:
    runtime, _ = _first_chunk()
    with pytest.raises(ConfigError, match="no experiment 'nosuch'") as error:
        runtime.segment_plan({"nosuch": "B"})  # type: ignore[attr-defined]
    assert "subject_test: A, B" in str(error.value)
    with pytest.raises(ConfigError, match="has no variant 'Z'") as error:
        runtime.segment_plan({"subject_test": "Z"})  # type: ignore[attr-defined]
    assert "A, B" in str(error.value)


def test_only_segment_chunk_assigns_variants_and_segments_rows() -> None:
    """Nothing else reimplements the unit: row membership and variant assignment are
    computed in segments/batch.py only (the segments report counts the whole population)."""
    allowed = {
        "assign_frame": {"segments/batch.py"},
        "sample_mask": {"segments/batch.py"},
        "evaluate_frame": {"segments/batch.py", "renderer/reports/segments.py"},
    }
    for path in [*ROOT.glob("renderer/**/*.py"), *ROOT.glob("segments/**/*.py"), ROOT / "cli.py"]:
        relative = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", None))
                if name in allowed and relative not in allowed[name]:
                    if relative.startswith("segments/") and name == "evaluate_frame":
                        continue  # the rule engine's own layers
                    pytest.fail(f"{relative}:{node.lineno} calls {name}: use segment_chunk")
