"""Peak memory of the audience pre-pass alone, for N and mem-factor x N profiles.

A build's peak RSS is the larger of two peaks: the render pass (one chunk of
rendered emails at a time, so flat in N) and the audience pre-pass (events,
features and clusters for the whole audience, before rendering). This runs only
``segments.audience.prepass.prepare_audience`` in a fresh child process per size, pinned to
one core, and reports each child's own peak RSS (``VmHWM``; see
``_common.peak_rss_mib``) and the ratio.

    python bench/mem_prepass.py [--n 20000] [--mem-factor 5] [--cpu 0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import peak_rss_mib, start_run  # noqa: E402
from make_profiles import make_bench_campaign  # noqa: E402

from renderer import load_campaign  # noqa: E402
from renderer.specs import audience_spec, schema_of  # noqa: E402


def child_main(campaign_path: str) -> None:
    """Inside the child: the pre-pass only (a build runs it before rendering)."""
    from segments.audience.prepass import prepare_audience

    campaign = load_campaign(campaign_path)
    schema = schema_of(campaign)
    if schema is None:
        raise SystemExit("the benchmark campaign must declare its schema")
    started = time.perf_counter()
    prepare_audience(audience_spec(campaign, schema), campaign.reference_time())
    print(json.dumps({"seconds": time.perf_counter() - started, "peak": peak_rss_mib()}))


def run_child(campaign: Path) -> tuple[float, float]:
    """(seconds in prepare_audience, peak RSS MiB) of one child process."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", str(campaign)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, _ = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"child failed with exit code {child.returncode}")
    result = json.loads(output)
    return result["seconds"], result["peak"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="profiles in the smaller run")
    parser.add_argument("--mem-factor", type=int, default=5, help="larger run, as a multiple")
    parser.add_argument("--cpu", type=int, default=0, help="the one core to run on")
    parser.add_argument("--child", metavar="CAMPAIGN", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child)
        return
    start_run(args.cpu)
    peaks = []
    print(f"\n{'profiles':>10}{'pre-pass s':>12}{'peak RSS MiB':>14}")
    for count in (args.n, args.n * args.mem_factor):
        seconds, peak = run_child(make_bench_campaign(count))
        peaks.append(peak)
        print(f"{count:>10,}{seconds:>12.2f}{peak:>14.1f}")
    extra_kib = (peaks[1] - peaks[0]) * 1024 / (args.n * (args.mem_factor - 1))
    print(f"ratio {peaks[1] / peaks[0]:.2f}; {extra_kib:.1f} KiB more peak per extra profile")


if __name__ == "__main__":
    main()
