"""Build throughput and memory against the naive per-recipient pipeline, measured in one run.

Everything runs pinned to one core (``--cpu``, default 0). In this process:

* the naive pipeline (Jinja -> MJML -> CSS inlining, per recipient) with premailer
  on ``--premailer-sample`` recipients and with css-inline on ``--naive-sample``;
* the compiled engine's Jinja render alone (HTML only, ``shape.html.render``) and a
  whole ``CampaignRuntime.render_one`` (headers + HTML + text) on ``--render-sample``.

In fresh child processes: ``build_campaign`` end to end (audience pre-pass, read,
validate, segment, render, write files) on ``--n`` recipients, ``--repeat`` times, then once on
``--mem-factor`` x ``--n`` recipients; each child reports its own peak RSS (``VmHWM``
at the end of the build: see ``_common.peak_rss_mib`` for why not ``ru_maxrss``).
Memory counts as flat when the larger build's peak is at most 10% above the smaller's.

In-process figures are the best of ``--repeat`` runs. Profiles come from
``bench/make_profiles.py`` (the demo campaign's clean rows, copied); outputs go to
``--out-root`` (default ``bench/_work/``, on the repository's disk) and are deleted
at the end.

    python bench/bench_build.py [--n 20000] [--mem-factor 5] [--repeat 3] [--cpu 0] [--out-root DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    best_of,
    file_creation_us,
    note,
    peak_rss_mib,
    start_run,
    typed_profiles,
)  # noqa: E402
from make_profiles import WORK_DIR, make_bench_campaign  # noqa: E402

from renderer import BuildOptions, CampaignRuntime, NaivePipeline, build_campaign, load_campaign  # noqa: E402
from renderer.compile.inline import INLINERS  # noqa: E402
from renderer.specs import schema_of  # noqa: E402
from segments.experiments.assign import assign_frame  # noqa: E402
from segments.profiles.schema import to_records  # noqa: E402

TARGET_RATE = 3_000  # recipients/s end to end on one core
TARGET_RATIO = 75  # x the naive premailer pipeline
# "flat": peak RSS at mem-factor x N over peak RSS at N; identical runs differ by ~4%
TARGET_MEMORY_RATIO = 1.10


@dataclass
class Recipient:
    row: int
    record: dict[str, Any]
    segments: tuple[str, ...]
    variants: dict[str, str | None]
    context: dict[str, Any]


def load_recipients(runtime: CampaignRuntime, count: int) -> list[Recipient]:
    """Valid profiles as a build renders them: typed, segmented, variants assigned, holdouts
    left out, each with its full render context (subject, preheader, unsubscribe URL)."""
    frame, schema = typed_profiles(runtime.campaign, count + count // 2)  # room for holdouts
    membership = runtime.segments.evaluate_frame(frame, runtime.as_of)
    names = list(membership.columns)
    ids = frame[schema.id_field].astype(str)
    keys = [e.key for e in runtime.experiments]
    assigned = assign_frame(runtime.experiments, ids, membership) if keys else None
    records = to_records(frame, schema.types())
    derived = getattr(runtime.segments, "derived", None)  # fields derived from events, clusters
    if derived is not None:
        records = derived.fill_records(records, schema.id_field)
    recipients = []
    for i, (record, flags) in enumerate(zip(records, membership.to_numpy(), strict=True)):
        if assigned is not None and assigned["holdout"].iloc[i]:
            continue
        segments = tuple(n for n, hit in zip(names, flags, strict=True) if hit)
        variants = {k: assigned[k].iloc[i] for k in keys} if assigned is not None else {}
        context = runtime.full_context(record, segments, variants)
        recipients.append(Recipient(int(frame.index[i]), record, segments, variants, context))
        if len(recipients) == count:
            break
    return recipients


def rate_naive(
    runtime: CampaignRuntime, sample: list[Recipient], inliner: str, repeats: int
) -> float:
    naive = NaivePipeline(runtime.assembled, runtime.env, INLINERS[inliner])
    naive.render(sample[0].context)  # warm up (first-use imports, caches)
    seconds = best_of(repeats, lambda: [naive.render(r.context) for r in sample])
    return len(sample) / seconds


def rate_compiled_html(runtime: CampaignRuntime, sample: list[Recipient], repeats: int) -> float:
    template = runtime.template
    pairs = [(template.shape(template.shape_key(r.context)).html, r.context) for r in sample]
    seconds = best_of(repeats, lambda: [html.render(ctx) for html, ctx in pairs])
    return len(sample) / seconds


def rate_render_one(runtime: CampaignRuntime, sample: list[Recipient], repeats: int) -> float:
    seconds = best_of(
        repeats,
        lambda: [runtime.render_one(r.row, r.record, r.segments, r.variants) for r in sample],
    )
    return len(sample) / seconds


def measure_in_process(args: argparse.Namespace, campaign_path: Path) -> dict[str, float]:
    """Recipients/s of the naive pipelines and of the compiled renders, best of ``--repeat``."""
    campaign = load_campaign(campaign_path)
    schema = schema_of(campaign)
    if schema is None:
        raise SystemExit("the benchmark campaign must declare its schema")
    runtime = CampaignRuntime(campaign, schema, campaign.reference_time())
    largest = max(args.premailer_sample, args.naive_sample, args.render_sample)
    recipients = load_recipients(runtime, largest)
    # a small --n may hold fewer recipients than the samples ask for: use what there is
    for name in ("premailer_sample", "naive_sample", "render_sample"):
        setattr(args, name, min(getattr(args, name), len(recipients)))
    rates = {
        "premailer": rate_naive(
            runtime, recipients[: args.premailer_sample], "premailer", args.repeat
        ),
        "css-inline": rate_naive(
            runtime, recipients[: args.naive_sample], "css-inline", args.repeat
        ),
        "html": rate_compiled_html(runtime, recipients[: args.render_sample], args.repeat),
        "render_one": rate_render_one(runtime, recipients[: args.render_sample], args.repeat),
    }
    note("in-process: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in rates.items()))
    return rates


def run_child_build(campaign: Path, out: Path) -> dict[str, Any]:
    """``build_campaign`` in a fresh process; its summary, wall times and peak RSS (MiB).

    ``out`` is emptied first: a build replacing an earlier one deletes it inside its
    own (timed) commit.
    """
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", str(campaign), str(out)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    process_seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"child build failed with exit code {child.returncode}")
    result: dict[str, Any] = json.loads(output)
    result["process_seconds"] = process_seconds
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime  # the whole process, startup included
    return result


def child_main(campaign_path: str, out: str) -> None:
    """Inside the child: one build, timed around ``build_campaign`` only."""
    campaign = load_campaign(campaign_path)
    started = time.perf_counter()
    summary = build_campaign(campaign, BuildOptions(out=Path(out)))
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": seconds,
                "input_rows": summary["input_rows"],
                "rendered": summary["rendered"],
                "rejected": summary["rejected"],
                "holdout": summary.get("holdout", 0),
                "max_rss_mib": peak_rss_mib(),
            }
        )
    )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="recipients in the end-to-end build")
    parser.add_argument(
        "--mem-factor", type=int, default=5, help="memory run size, as a multiple of --n"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per measurement; the best counts"
    )
    parser.add_argument("--premailer-sample", type=int, default=100)
    parser.add_argument("--naive-sample", type=int, default=1_000)
    parser.add_argument("--render-sample", type=int, default=5_000)
    parser.add_argument("--cpu", type=int, default=0, help="the one core to run on")
    parser.add_argument(
        "--out-root",
        type=Path,
        default=WORK_DIR,
        help="where the builds write (default bench/_work; /dev/shm takes the disk out)",
    )
    parser.add_argument("--child", nargs=2, metavar=("CAMPAIGN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(*args.child)
        return
    start_run(args.cpu)
    big_n = args.n * args.mem_factor
    campaign_n = make_bench_campaign(args.n)
    campaign_big = make_bench_campaign(big_n)
    note(f"profiles written: {args.n:,} and {big_n:,}")

    rates = measure_in_process(args, campaign_n)
    outs = [args.out_root / "mailsmith-bench-n", args.out_root / "mailsmith-bench-big"]
    file_us = [file_creation_us(args.out_root)]
    builds = []
    for _ in range(args.repeat):
        builds.append(run_child_build(campaign_n, outs[0]))
        note(f"build of {args.n:,}: {builds[-1]['seconds']:.1f} s")
    big = run_child_build(campaign_big, outs[1])
    note(f"build of {big_n:,}: {big['seconds']:.1f} s")
    file_us.append(file_creation_us(args.out_root))
    report(args, rates, builds, big, big_n)
    print(
        f"file system under {args.out_root}: creating one 45 KB file took "
        f"{file_us[0]:,.0f} us before the builds and {file_us[1]:,.0f} us after "
        f"(a build creates 2 per email: {2 * file_us[0] / 1e3:.2f}-{2 * file_us[1] / 1e3:.2f} s "
        "per 1,000 emails)"
    )
    sys.stdout.flush()
    for out in outs:
        shutil.rmtree(out, ignore_errors=True)
    note("build outputs deleted")


def report(
    args: argparse.Namespace,
    rates: dict[str, float],
    builds: list[dict[str, Any]],
    big: dict[str, Any],
    big_n: int,
) -> None:
    best = min(builds, key=lambda b: b["seconds"])
    engine = best["input_rows"] / best["seconds"]
    big_rate = big["input_rows"] / big["seconds"]
    rss_n = max(b["max_rss_mib"] for b in builds)
    rss_ratio = big["max_rss_mib"] / rss_n
    rows = [
        ("naive: Jinja -> MJML -> premailer", args.premailer_sample, rates["premailer"]),
        ("naive: Jinja -> MJML -> css-inline", args.naive_sample, rates["css-inline"]),
        ("compiled Jinja render, HTML only", args.render_sample, rates["html"]),
        ("CampaignRuntime.render_one (headers+HTML+text)", args.render_sample, rates["render_one"]),
        (f"build_campaign end to end, best of {len(builds)}", best["input_rows"], engine),
        ("build_campaign end to end, one run", big["input_rows"], big_rate),
    ]
    print()
    print(f"{'measurement (one core)':<50}{'recipients':>11}{'recipients/s':>15}")
    for name, count, rate in rows:
        print(f"{name:<50}{count:>11,}{rate:>15,.0f}")
    print()
    print(
        f"end-to-end runs writing under {args.out_root} "
        "(build_campaign wall s / process wall s / process CPU s / peak RSS MiB):"
    )
    for b in [*builds, big]:
        print(
            f"  {b['input_rows']:>7,} rows, {b['rendered']:>7,} rendered, "
            f"{b['holdout']:>6,} held out, {b['rejected']:>3,} rejected: "
            f"{b['seconds']:7.2f} / {b['process_seconds']:7.2f} / {b['cpu_seconds']:7.2f} / "
            f"{b['max_rss_mib']:7.1f}"
        )
    print()
    print(f"{'target':<42}{'measured':>22}{'target':>16}  result")
    checks = [
        (
            "end to end on one core",
            f"{engine:,.0f}/s",
            f">= {TARGET_RATE:,}/s",
            engine >= TARGET_RATE,
        ),
        (
            "engine / naive premailer",
            f"{engine / rates['premailer']:.1f}x",
            f">= {TARGET_RATIO}x",
            engine / rates["premailer"] >= TARGET_RATIO,
        ),
        (
            f"peak RSS {big_n:,} / {args.n:,} rows",
            f"{big['max_rss_mib']:.0f}/{rss_n:.0f} MiB = {rss_ratio:.2f}",
            f"<= {TARGET_MEMORY_RATIO}",
            rss_ratio <= TARGET_MEMORY_RATIO,
        ),
    ]
    for name, measured, target, ok in checks:
        print(f"{name:<42}{measured:>22}{target:>16}  {verdict(ok)}")
    info = [
        ("engine / naive css-inline", engine / rates["css-inline"]),
        ("render_one / naive premailer", rates["render_one"] / rates["premailer"]),
        ("render_one / naive css-inline", rates["render_one"] / rates["css-inline"]),
    ]
    for name, ratio in info:
        print(f"{name + ' (no target)':<42}{ratio:>21.1f}x")


if __name__ == "__main__":
    main()
