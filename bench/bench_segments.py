"""Segment evaluation: vectorized over a typed frame vs one profile at a time, in one run.

The demo campaign's segments (the set a build evaluates) over ``--n`` typed
profiles from ``bench/make_profiles.py``, already in memory (loading, typing and
deriving features are not timed). Pinned to one core; each figure is the best of
``--repeat`` runs, and the two evaluators' memberships are compared.

* rules alone: ``SegmentSet.evaluate_frame`` on the whole frame vs
  ``evaluate_profile`` on each plain-dict record, both already holding the fields
  derived from events and clusters;
* the build's segment set (when the campaign has an audience stage): the same, but
  each call first joins the derived fields by id. Per profile that join costs
  milliseconds, so it runs on the first ``--audience-sample`` records only.

    python bench/bench_segments.py [--n 100000] [--audience-sample 1000] [--repeat 3] [--cpu 0]
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    best_of,
    note,
    start_run,
    typed_profiles,
)  # noqa: E402
from make_profiles import make_bench_campaign  # noqa: E402

from renderer import CampaignRuntime, load_campaign  # noqa: E402
from segments.profiles.schema import to_records  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="profiles to evaluate")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per measurement; the best counts"
    )
    parser.add_argument(
        "--audience-sample", type=int, default=1_000, help="records for the per-profile id join"
    )
    parser.add_argument("--cpu", type=int, default=0, help="the one core to run on")
    args = parser.parse_args()
    start_run(args.cpu)

    campaign = load_campaign(make_bench_campaign(args.n))
    frame, schema = typed_profiles(campaign)
    note(f"{len(frame):,} profiles written and typed")
    runtime = CampaignRuntime(campaign, schema, campaign.reference_time())
    records = to_records(frame, schema.types())
    note("runtime ready (audience pre-pass included), records built")
    segments, as_of = runtime.segments, runtime.as_of
    base = getattr(segments, "base", None)  # set when the build has an audience stage
    print(f"\nprofiles: {len(frame):,}")
    print(f"{'evaluation (one core)':<52}{'profiles':>10}{'best s':>9}{'profiles/s':>13}")
    if base is None:
        compare(segments, frame, records, as_of, args.repeat, "rules")
        return
    derived = segments.derived
    enriched = segments.enrich(frame)
    filled = derived.fill_records(records, schema.id_field) if derived is not None else records
    note("derived fields joined to the frame and the records")
    compare(base, enriched, filled, as_of, args.repeat, "rules alone")
    sample = args.audience_sample
    compare(segments, frame, records[:sample], as_of, args.repeat, "with id join")


def compare(
    segment_set: Any,
    frame: pd.DataFrame,
    records: list[dict[str, Any]],
    as_of: datetime,
    repeats: int,
    label: str,
) -> None:
    """Time both evaluators, print profiles/s and their ratio, check they agree."""
    vector_s = best_of(repeats, lambda: segment_set.evaluate_frame(frame, as_of))
    note(f"{label}: evaluate_frame timed")
    profile_s = best_of(repeats, lambda: [segment_set.evaluate_profile(r, as_of) for r in records])
    note(f"{label}: evaluate_profile timed")
    vectorized = segment_set.evaluate_frame(frame, as_of)
    names = list(vectorized.columns)
    results = [segment_set.evaluate_profile(r, as_of) for r in records]
    expected = [[result[n] for n in names] for result in results]
    agree = bool((vectorized.to_numpy()[: len(records)] == np.array(expected, dtype=bool)).all())
    vector_rate, profile_rate = len(frame) / vector_s, len(records) / profile_s
    for how, count, seconds, rate in (
        ("evaluate_frame", len(frame), vector_s, vector_rate),
        ("evaluate_profile", len(records), profile_s, profile_rate),
    ):
        print(f"{label + ': ' + how:<52}{count:>10,}{seconds:>9.3f}{rate:>13,.0f}")
    print(
        f"  vectorized / per profile: {vector_rate / profile_rate:.1f}x; memberships agree "
        f"({len(records):,} profiles x {len(names)} columns): {'yes' if agree else 'NO'}"
    )


if __name__ == "__main__":
    main()
