"""``mailsmith check`` timed: the demo campaign, and a ``--n``-profile copy of it.

Each figure is the best of ``--repeat`` runs of :func:`renderer.check_campaign` in
this process (pinned to ``--cpu``), split into the static part (names, what
``build`` runs first) and the whole check (static, data audit over the profile
file, representatives rendered and checked). The larger campaign comes from
``bench/make_profiles.py`` (the demo's clean rows, copied, with their events).

    python bench/bench_check.py [--n 20000] [--repeat 3] [--cpu 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, note, start_run  # noqa: E402
from make_profiles import write_campaign, write_profiles  # noqa: E402

from renderer import Campaign, check_campaign, demo_campaign_path, load_campaign  # noqa: E402
from renderer.check.runner import static_findings  # noqa: E402


def measure(label: str, campaign: Campaign, rows: int, repeat: int) -> None:
    note(f"{label}: static part")
    static = best_of(repeat, lambda: static_findings(campaign))
    note(f"{label}: whole check")
    reports = []

    def whole() -> None:
        reports.append(check_campaign(campaign))

    full = best_of(repeat, whole)
    report = reports[-1]
    print(
        f"| {label} | {rows:,} | {static:.2f} s | {full:.2f} s | {report.representatives} "
        f"| {report.errors} / {report.warnings} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=0)
    args = parser.parse_args()
    start_run(args.cpu)
    demo = load_campaign(demo_campaign_path())
    profiles, events = write_profiles(args.n)
    larger = load_campaign(write_campaign(profiles, events))
    demo_rows = sum(1 for _ in open(demo.path(demo.profiles.path), encoding="utf-8")) - 1
    print("| campaign | profiles | static | whole check | representatives | errors / warnings |")
    print("| --- | --- | --- | --- | --- | --- |")
    measure("demo", demo, demo_rows, args.repeat)
    measure(f"demo x {args.n:,}", larger, args.n, args.repeat)


if __name__ == "__main__":
    main()
