"""The 20,000-profile build with and without recommendations (#14), measured in one run.

The campaign is ``bench/make_profiles.py``'s (the demo's clean profiles and their events,
copied ``--n`` times); three copies of its campaign file differ only in
``recommendations:``:

* ``none``: no ``recommendations:`` key (the template loops over the profiles' exported
  ``recommendations`` column, as the demo did before #14);
* ``bestsellers``: the demo's ``recommendations:`` with ``segment_fallback: false``;
* ``segments``: the demo's ``recommendations:`` as shipped (cold-start recipients get
  their ``journey`` segment's popular items first: segments/recommend/groups.py).

Each build runs ``--repeat`` times, each in a fresh child process on the same core
(``--cpu``), the variants interleaved so a change of the machine's load hits all three;
the best run of each is shown. The child times the whole ``build_campaign`` and, inside
it, the audience pre-pass (``prepare_audience``), the recommendations in it (reading
the product events, fitting, the lists) and the segment pass of the fallback. Prints
seconds, recipients/s, the pre-pass's share and each variant's time over ``none``'s;
the build's CPU seconds too (less sensitive to other processes than wall time) and the
load average before and after: the figures are only comparable within one run.
``recs s`` includes ``groups s``.

    python bench/bench_recommend_build.py [--n 20000] [--repeat 2] [--cpu 0] [--out-root DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import note, start_run  # noqa: E402
from make_profiles import WORK_DIR, make_bench_campaign  # noqa: E402

VARIANTS = ("none", "bestsellers", "segments")


def variant_campaigns(campaign: Path) -> dict[str, Path]:
    """The bench campaign's file, once per variant (module docstring)."""
    data: dict[str, Any] = yaml.safe_load(campaign.read_text(encoding="utf-8"))
    if "recommendations" not in data:
        raise SystemExit("the demo campaign has no recommendations: key to measure")
    paths = {}
    for variant in VARIANTS:
        copy = dict(data)
        if variant == "none":
            copy.pop("recommendations")
        elif variant == "bestsellers":
            copy["recommendations"] = {**data["recommendations"], "segment_fallback": False}
        path = campaign.with_name(f"{campaign.stem}-{variant}.yaml")
        path.write_text(yaml.safe_dump(copy, sort_keys=False, allow_unicode=True), "utf-8")
        paths[variant] = path
    return paths


def run_child(campaign: Path, out: Path) -> dict[str, Any]:
    """One build in a fresh process; what :func:`child_main` measured."""
    shutil.rmtree(out, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(campaign), str(out)],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    shutil.rmtree(out, ignore_errors=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _timed(owner: Any, name: str, times: dict[str, float], key: str) -> None:
    """Replace ``owner.name`` with a wrapper adding its seconds to ``times[key]``."""
    function: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            times[key] = times.get(key, 0.0) + time.perf_counter() - started

    setattr(owner, name, wrapper)


def child_main(campaign_path: str, out: str) -> None:
    """Inside the child: one build, and the time of its pre-pass stages."""
    from renderer import BuildOptions, build_campaign, load_campaign
    from renderer.build import driver
    from segments.audience import prepass

    times: dict[str, float] = {}
    _timed(driver, "prepare_audience", times, "prepass")
    _timed(prepass, "_recommend", times, "recommend")
    _timed(prepass, "_segment_groups", times, "groups")
    campaign = load_campaign(campaign_path)
    started, cpu = time.perf_counter(), time.process_time()
    summary = build_campaign(campaign, BuildOptions(out=Path(out)))
    times["build"] = time.perf_counter() - started
    times["cpu"] = time.process_time() - cpu  # less sensitive to the machine's load
    print(json.dumps({**times, "rows": summary["input_rows"], "rendered": summary["rendered"]}))


def report(best: dict[str, dict[str, Any]]) -> None:
    base = best["none"]["build"]
    print(
        f"{'variant':<12} {'rows':>7} {'build s':>8} {'rows/s':>7} {'pre-pass s':>10} "
        f"{'share':>6} {'recs s':>7} {'groups s':>8} {'x none':>7} {'cpu s':>6} {'x none':>7}"
    )
    cpu = best["none"]["cpu"]
    for variant in VARIANTS:
        r = best[variant]
        print(
            f"{variant:<12} {r['rows']:>7,} {r['build']:>8.2f} {r['rows'] / r['build']:>7,.0f} "
            f"{r.get('prepass', 0):>10.2f} {r.get('prepass', 0) / r['build']:>6.1%} "
            f"{r.get('recommend', 0):>7.2f} {r.get('groups', 0):>8.2f} {r['build'] / base:>7.2f} "
            f"{r['cpu']:>6.2f} {r['cpu'] / cpu:>7.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="profiles (default 20000)")
    parser.add_argument("--repeat", type=int, default=2, help="builds per variant (best shown)")
    parser.add_argument("--cpu", type=int, default=0, help="the core to run on (default 0)")
    parser.add_argument("--out-root", type=Path, default=WORK_DIR, help="where builds write")
    args = parser.parse_args()
    start_run(args.cpu)
    campaigns = variant_campaigns(make_bench_campaign(args.n))
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    for attempt in range(args.repeat):
        for variant, campaign in campaigns.items():
            result = run_child(campaign, args.out_root / f"recbuild-{variant}")
            note(f"{variant} #{attempt + 1}: {result['build']:.2f} s")
            runs[variant].append(result)
    report({variant: min(results, key=lambda r: r["build"]) for variant, results in runs.items()})
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average after: {load}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child_main(sys.argv[2], sys.argv[3])
    else:
        main()
