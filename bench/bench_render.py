"""The render alone (one recipient: subject, preheader, HTML and text, no I/O), in one run.

For the demo campaign and for the bench campaign (``bench/make_profiles.py``: the
demo's clean rows copied ``--n`` times), on the same recipients, pinned to one core:

* **baseline**: ``CampaignRuntime.render_one`` of the commit given by ``--baseline``
  (checked out into a temporary git worktree and measured in a child process, twice:
  before and after this process's own figures; the faster run counts);
* **two-pass**: this checkout's ``render_one`` with the one-pass render switched off
  (``CompiledTemplate.fused_enabled = False``: HTML and text rendered separately);
* **new**: this checkout's ``render_one``;
* **full**: this checkout's ``render_one`` on the campaign as written (tracked links,
  signed unsubscribe tokens...): the baseline and the other figures use the campaign
  without the keys the baseline does not know (``NEWER_KEYS``; ``unsubscribe:`` becomes
  the plain ``unsubscribe_url`` it replaced), so that all render the same work;
* **floor**: the same bytes made by joining each layout's static strings with the
  recipient's escaped values, computed beforehand (what any render must at least
  do: escape and join). Checked byte for byte against ``render_one``.

Each figure is the best of ``--repeat`` passes over the sample, in microseconds per
recipient, with the ratios, and where the new render's time goes (context, headers,
layout, the rest). Wall clock on a shared machine is noisy: the ratios from one run
are what to compare; the load average is printed.

    python bench/bench_render.py [--baseline main] [--n 20000] [--sample 2000]
        [--repeat 7] [--cpu 0]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(os.environ.get("MAILSMITH_BENCH_ROOT") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_build import Recipient, load_recipients  # noqa: E402

from renderer import CampaignRuntime, demo_campaign_path, load_campaign  # noqa: E402
from renderer.specs import schema_of  # noqa: E402

# campaign keys newer than the baseline: left out of the compared campaign
NEWER_KEYS = ("tracking", "sender", "to_name", "recommendations", "coupons", "i18n", "output")
PLAIN_UNSUBSCRIBE = "https://shop.example.com/unsubscribe?rid={{ recipient_id | urlencode }}"

_SENTINEL_RE = re.compile("\x00(\\d+)\x01")  # what the recording render prints for a value


def make_runtime(campaign_path: Path) -> CampaignRuntime:
    campaign = load_campaign(campaign_path)
    schema = schema_of(campaign)
    if schema is None:
        raise SystemExit("the benchmark campaign must declare its schema")
    return CampaignRuntime(campaign, schema, campaign.reference_time())


def comparable(path: Path) -> Path:
    """A copy of the campaign at ``path`` (beside it, so its relative paths hold) without
    :data:`NEWER_KEYS`, with a plain ``unsubscribe_url`` for an ``unsubscribe:`` block."""
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key in NEWER_KEYS:
        data.pop(key, None)
    if data.pop("unsubscribe", None) is not None:
        data["unsubscribe_url"] = PLAIN_UNSUBSCRIBE
    copy = path.with_name(f".{path.stem}.bench-render.yaml")
    copy.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return copy


def per_recipient_us(repeat: int, sample: list[Recipient], work: Callable[[], object]) -> float:
    """Best of ``repeat`` runs of ``work`` (one pass over ``sample``), in us of this
    process's CPU time per recipient (on a loaded machine, wall time counts the waits)."""
    work()  # warm up: layouts compiled, caches filled
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best / len(sample) * 1e6


def render_all(runtime: CampaignRuntime, sample: list[Recipient]) -> Callable[[], object]:
    return lambda: [runtime.render_one(r.row, r.record, r.segments, r.variants) for r in sample]


def child_main(campaign: str, sample_size: int, repeat: int) -> None:
    """In the baseline's checkout: render_one's us per recipient, as JSON."""
    runtime = make_runtime(Path(campaign))
    sample = load_recipients(runtime, sample_size)
    print(json.dumps({"render_one": per_recipient_us(repeat, sample, render_all(runtime, sample))}))


def baseline_us(checkout: Path, campaign: Path, args: argparse.Namespace) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout), "MAILSMITH_BENCH_ROOT": str(checkout)}
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(campaign), str(args.sample), str(args.repeat)],
        env=env,
        cwd=checkout,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"baseline measurement failed:\n{done.stderr[-3000:]}")
    return float(json.loads(done.stdout.splitlines()[-1])["render_one"])


# --- the floor: static strings and escaped values, joined -------------------------


@dataclass
class FloorCase:
    """One recipient's output as static strings and raw values (recorded by a render)."""

    html: list[str]
    html_values: list[Any]
    text: list[str]
    text_values: list[Any]


def record_floor_case(runtime: CampaignRuntime, recipient: Recipient) -> FloorCase:
    """Render ``recipient`` with every printed value recorded and a sentinel printed instead."""
    context, shape_key = runtime._prepare(recipient.record, recipient.segments, recipient.variants)
    template = runtime.template
    shape = template.shape(shape_key) if shape_key is not None else template.layout_for(context)
    fused = shape.fused
    if fused is None:
        raise SystemExit("the demo layout is not fused: no floor")
    namespace = fused.root_render_func.__globals__
    html_values: list[Any] = []
    text_values: list[Any] = []

    def html_value(value: Any) -> str:
        if hasattr(value, "__html__"):
            return str(value.__html__())
        html_values.append(value)
        return f"\x00{len(html_values) - 1}\x01"

    def text_value(value: Any) -> str:
        text_values.append(value)
        return f"\x00{len(text_values) - 1}\x01"

    def url_value(value: Any, kind: str, after: str) -> str:
        return html_value(value)

    saved = dict(namespace)
    env: Any = runtime.env
    namespace["msj_escape"], namespace["str"] = html_value, text_value
    env.url = url_value
    try:
        _, html, text = template.render_layout(context, shape_key)
    finally:
        namespace.clear()
        namespace.update(saved)
        del env.url
    html_parts, text_parts = _SENTINEL_RE.split(html), _SENTINEL_RE.split(text)
    return FloorCase(
        html_parts[::2],
        [html_values[int(i)] for i in html_parts[1::2]],  # in output order (head after body)
        text_parts[::2],
        [text_values[int(i)] for i in text_parts[1::2]],
    )


def floor_render(case: FloorCase, escape: Callable[[Any], str]) -> tuple[str, str]:
    """What a hand-written render of the layout does at least: escape, join."""
    html = [case.html[0]]
    for value, static in zip(case.html_values, case.html[1:], strict=True):
        html.append(escape(value))
        html.append(static)
    text = [case.text[0]]
    for value, static in zip(case.text_values, case.text[1:], strict=True):
        text.append(str(value))
        text.append(static)
    return "".join(html), "".join(text)


def measure_campaign(
    label: str, campaign: Path, base: Path | None, args: argparse.Namespace
) -> None:
    """The figures of one campaign, printed."""
    full = make_runtime(campaign)
    full_sample = load_recipients(full, args.sample)
    campaign = comparable(campaign)
    try:
        runtime = make_runtime(campaign)
        sample = load_recipients(runtime, args.sample)
        compare(label, campaign, runtime, sample, base, args)
    finally:
        campaign.unlink()
    us = per_recipient_us(args.repeat, full_sample, render_all(full, full_sample))
    print(f"{'render_one, the campaign as written (this checkout)':<52}{us:>8.1f}")
    print(f"  (with {', '.join(k for k in NEWER_KEYS if k in full.campaign.model_fields_set)})")


def compare(
    label: str,
    campaign: Path,
    runtime: CampaignRuntime,
    sample: list[Recipient],
    base: Path | None,
    args: argparse.Namespace,
) -> None:
    """The figures on the comparable campaign: baseline, two-pass, new, floor."""
    from renderer.compile.fusedgen import escape_str

    template = runtime.template
    figures: dict[str, float] = {}
    before = baseline_us(base, campaign, args) if base is not None else None
    template.fused_enabled = False
    figures["two-pass"] = per_recipient_us(args.repeat, sample, render_all(runtime, sample))
    template.fused_enabled = True
    figures["new"] = per_recipient_us(args.repeat, sample, render_all(runtime, sample))
    after = baseline_us(base, campaign, args) if base is not None else None
    if before is not None and after is not None:
        figures["baseline"] = min(before, after)
    cases = [record_floor_case(runtime, r) for r in sample]
    expected = [runtime.render_one(r.row, r.record, r.segments, r.variants) for r in sample]
    same = all(
        floor_render(c, escape_str) == (e.html, e.text)
        for c, e in zip(cases, expected, strict=True)
    )
    figures["floor"] = per_recipient_us(
        args.repeat, sample, lambda: [floor_render(c, escape_str) for c in cases]
    )
    print(f"\n{label}: {len(sample):,} recipients, {len(template.shapes)} layouts")
    print(f"{'render (us per recipient, best of ' + str(args.repeat) + ')':<52}{'us':>8}")
    names = {
        "baseline": f"render_one at {args.baseline} (child process)",
        "two-pass": "render_one, one-pass render off (this checkout)",
        "new": "render_one (this checkout)",
        "floor": "floor: static strings + escaped values, joined",
    }
    for key, name in names.items():
        if key in figures:
            print(f"{name:<52}{figures[key]:>8.1f}")
    reference = figures.get("baseline", figures["two-pass"])
    print(f"speed-up new vs {'baseline' if 'baseline' in figures else 'two-pass'}: "
          f"{reference / figures['new']:.2f}x (target >= 2x)")  # fmt: skip
    print(f"speed-up new vs two-pass (same process): {figures['two-pass'] / figures['new']:.2f}x")
    print(f"new / floor: {figures['new'] / figures['floor']:.1f}x the floor")
    print(f"floor output byte-identical to render_one: {'yes' if same else 'NO'}")
    breakdown(runtime, sample, args.repeat, figures["new"])


def breakdown(runtime: CampaignRuntime, sample: list[Recipient], repeat: int, total: float) -> None:
    """Where the new render's time goes: context, headers, layout, the rest."""
    contexts = [runtime._prepare(r.record, r.segments, r.variants) for r in sample]
    template = runtime.template
    parts = {
        "context dict (CampaignRuntime.context)": per_recipient_us(
            repeat,
            sample,
            lambda: [runtime.context(r.record, r.segments, r.variants) for r in sample],
        ),
        "context + headers (subject, preheader, URL, shape key)": per_recipient_us(
            repeat,
            sample,
            lambda: [runtime._prepare(r.record, r.segments, r.variants) for r in sample],
        ),
        "layout: HTML and text (render_layout)": per_recipient_us(
            repeat, sample, lambda: [template.render_layout(c, k) for c, k in contexts]
        ),
    }
    print("where the new render's time goes (us per recipient):")
    for name, value in parts.items():
        print(f"  {name:<58}{value:>7.1f}")
    rest = total - list(parts.values())[1] - list(parts.values())[2]
    print(f"  {'the rest (guard, checks, Rendered, recipient key)':<58}{rest:>7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=None, help="commit to compare with (e.g. main)")
    parser.add_argument("--n", type=int, default=20_000, help="rows of the bench campaign")
    parser.add_argument("--sample", type=int, default=2_000, help="recipients rendered per pass")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--cpu", type=int, default=0)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    from _common import start_run
    from make_profiles import make_bench_campaign

    start_run(args.cpu)
    campaigns = {
        "demo campaign": demo_campaign_path(),
        "bench campaign": make_bench_campaign(args.n),
    }
    with tempfile.TemporaryDirectory() as work:
        base = None
        if args.baseline:
            base = Path(work) / "baseline"
            subprocess.run(
                ["git", "worktree", "add", "-q", "--detach", str(base), args.baseline],
                cwd=ROOT,
                check=True,
            )
        try:
            for label, path in campaigns.items():
                measure_campaign(label, Path(path), base, args)
        finally:
            if base is not None:
                subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT)


if __name__ == "__main__":
    main()
