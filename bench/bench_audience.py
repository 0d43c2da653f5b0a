"""Time a build's whole audience stage on a synthetic audience, in one process on one core.

100,000 profiles and 1,000,000 events (the generators of ``bench_features.py``,
numpy seed 0), already in memory: no file reading is timed. Timed, as a build
runs them after reading the profiles:

    validate events   clean_events: ids matched to the profiles, timestamps parsed
    derive audience   features (RFM, engagement, lifecycle, triggers), cluster labels
                      from a saved K-means model, percentile thresholds resolved
    segments          8 segments (features, a percentile, a cluster) and an exclusive
                      group, evaluated over every profile

The K-means model is fitted once before timing (a build loads it from the campaign
folder). Target: under 10 seconds for 100,000 profiles and 1,000,000 events.

    python bench/bench_audience.py [--profiles N] [--events N] [--cpu 0] [--repeat 3]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: no BLAS or OpenMP threads
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_features import AS_OF, make_events, make_profiles  # noqa: E402

from segments.audience.document import AudienceSegments, derive_audience, parse_segment_document  # noqa: E402
from segments.features.events import clean_events  # noqa: E402
from segments.features.scores import FEATURE_TYPES, FeatureConfig  # noqa: E402
from segments.rules.ruleset import parse_segments  # noqa: E402
from segments.yamlsrc import load_yaml_text  # noqa: E402

DOCUMENT = """\
segments:
  champions: {field: rfm_segment, op: eq, value: champions}
  at_risk: {field: lifecycle_stage, op: eq, value: at_risk}
  lapsed: {field: lifecycle_stage, op: eq, value: lapsed}
  engaged: {field: engagement_score, op: gte, value: p75}
  cart_abandoner: {field: cart_abandoned, op: eq, value: true}
  browsers: {field: browsed_no_cart, op: eq, value: true}
  big_spenders: {field: value_cluster, op: eq, value: top}
  vip:
    all:
      - {field: total_spent, op: gte, value: p90}
      - {field: recency_days, op: lt, value: 90}
exclusive:
  journey:
    segments: [cart_abandoner, vip, at_risk, lapsed]
    otherwise: regular
clusters:
  - name: value_cluster
    features: [monetary_total, frequency, engagement_score]
    k: 4
    labels: [low, mid, high, top]
"""


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def run_once(
    profiles: pd.DataFrame, raw_events: pd.DataFrame, saved: dict[str, Any]
) -> dict[str, float]:
    """One audience stage; seconds per step."""
    document = parse_segment_document(load_yaml_text(DOCUMENT, "bench.yaml"))
    as_of = AS_OF.to_pydatetime()
    config = FeatureConfig(half_life_days=30)
    t_events, cleaned = timed(
        lambda: clean_events(raw_events, known_ids=pd.Index(profiles["id"]), as_of=as_of)
    )
    t_derive, audience = timed(
        lambda: derive_audience(
            profiles,
            document,
            id_field="id",
            as_of=as_of,
            events=cleaned.events,
            config=config,
            saved_models=saved,
        )
    )
    types = {"id": "string", "signed_up_at": "datetime", "total_spent": "float"}
    types.update(FEATURE_TYPES)
    types["value_cluster"] = "string"

    def evaluate() -> pd.DataFrame:
        rules = parse_segments(audience.definitions, fields=types, source="bench.yaml")  # type: ignore[arg-type]
        segments = AudienceSegments(rules, groups=document.exclusive, id_field="id")
        return segments.evaluate_frame(audience.population, as_of)

    t_segments, membership = timed(evaluate)
    assert (
        len(membership) == len(profiles)
        and membership.filter(like="journey:").sum(axis=1).eq(1).all()
    )
    return {"validate events": t_events, "derive audience": t_derive, "segments": t_segments}


def main() -> None:
    """Generate the data, fit the model once, time the audience stage and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--cpu", type=int, default=0, help="pin to this core (-1: do not pin)")
    parser.add_argument("--repeat", type=int, default=3, help="report the fastest run")
    args = parser.parse_args()
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    rng = np.random.default_rng(0)
    profiles = make_profiles(args.profiles, rng)
    profiles["total_spent"] = np.round(rng.gamma(2.0, 150.0, args.profiles), 2)
    events = make_events(profiles, args.events, rng)
    document = parse_segment_document(load_yaml_text(DOCUMENT, "bench.yaml"))
    warm = derive_audience(
        profiles, document, id_field="id", as_of=AS_OF.to_pydatetime(),
        events=events, config=FeatureConfig(half_life_days=30),
    )  # fmt: skip
    saved = {"value_cluster": warm.models["value_cluster"]}
    runs = [run_once(profiles, events, saved) for _ in range(args.repeat)]
    best = min(runs, key=lambda r: sum(r.values()))
    total = sum(best.values())
    print(f"profiles: {len(profiles):,}  events: {len(events):,}  (best of {args.repeat})")
    for step, seconds in best.items():
        print(f"  {step:<16} {seconds:6.2f} s")
    print(f"audience stage: {total:.2f} s total, {len(profiles) / total:,.0f} profiles/s, "
          f"{len(events) / total:,.0f} events/s")  # fmt: skip
    verdict = "under" if total < 10 else "OVER"
    print(f"target: 10 s for 100,000 profiles and 1,000,000 events: {verdict} ({total:.2f} s)")


if __name__ == "__main__":
    main()
