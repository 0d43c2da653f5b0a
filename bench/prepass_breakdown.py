"""Where the audience pre-pass spends its time: one pre-pass, its steps timed.

Runs ``prepare_audience`` (with a spool, as a build does) on a campaign and times
each step by wrapping the functions it calls (no change to the engine):

    read CSV          parsing the profile file into raw chunks
    validate          typing and checking every row (ProfileValidator.validate)
    spool             writing the validated chunks for the render pass
    events            reading and folding the events file (stream_events)
    features          features from the folded events (feature_frame)
    clusters          cluster labels from the saved model (ClusterModel.assign)
    percentiles       thresholds resolved on the population (resolve_percentiles)
    compact           derived fields stored for the render pass (DerivedFields.compact)
    other             the rest (concatenating the population, joins)

    python bench/prepass_breakdown.py [--n 50000] [--demo] [--cpu 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import start_run  # noqa: E402
from bench_prepass_workers import bench_campaign  # noqa: E402

import segments.audience.document as document_module  # noqa: E402
import segments.audience.prepass as prepass_module  # noqa: E402
from renderer import demo_campaign_path, load_campaign  # noqa: E402
from renderer.specs import audience_spec, schema_of  # noqa: E402
from segments.audience.clusters import ClusterModel  # noqa: E402
from segments.features.derived import DerivedFields  # noqa: E402
from segments.profiles.spool import ChunkSpool  # noqa: E402
from segments.profiles.validate import ProfileValidator  # noqa: E402

SECONDS: dict[str, float] = defaultdict(float)


def timed(step: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            SECONDS[step] += time.perf_counter() - started

    return wrapper


def timed_iterator(step: str, items: Iterator[Any]) -> Iterator[Any]:
    while True:
        started = time.perf_counter()
        item = next(items, None)
        SECONDS[step] += time.perf_counter() - started
        if item is None:
            return
        yield item


def instrument() -> None:
    """Wrap the steps in place (this process only)."""
    ProfileValidator.validate = timed("validate", ProfileValidator.validate)  # type: ignore[method-assign]
    ChunkSpool.add = timed("spool", ChunkSpool.add)  # type: ignore[method-assign]
    prepass_module.stream_events = timed("events", prepass_module.stream_events)
    document_module.feature_frame = timed("features", document_module.feature_frame)
    ClusterModel.assign = timed("clusters", ClusterModel.assign)  # type: ignore[method-assign]
    document_module.resolve_percentiles = timed("percentiles", document_module.resolve_percentiles)
    DerivedFields.compact = timed("compact", DerivedFields.compact)  # type: ignore[assignment]
    original = prepass_module.ProfileFile.chunks
    prepass_module.ProfileFile.chunks = lambda self: timed_iterator("read CSV", original(self))  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="profiles of the bench campaign")
    parser.add_argument("--demo", action="store_true", help="the shipped demo instead")
    parser.add_argument("--cpu", type=int, default=0, help="the one core to run on")
    args = parser.parse_args()
    start_run(args.cpu)
    path = demo_campaign_path() if args.demo else bench_campaign(args.n)
    campaign = load_campaign(path)
    schema = schema_of(campaign)
    assert schema is not None
    instrument()
    with tempfile.TemporaryDirectory() as folder:
        spool = ChunkSpool(Path(folder))
        started = time.perf_counter()
        result = prepass_module.prepare_audience(
            audience_spec(campaign, schema), campaign.reference_time(), spool=spool
        )
        total = time.perf_counter() - started
        spool.close()
    rows = len(result.population) + len(result.rejections) if result.population is not None else 0
    print(f"\npre-pass of {rows:,} profile rows: {total:.2f} s")
    SECONDS["other"] = total - sum(SECONDS.values())
    for step, seconds in sorted(SECONDS.items(), key=lambda item: -item[1]):
        print(f"  {step:<12}{seconds:8.2f} s {100 * seconds / total:5.1f}%")


if __name__ == "__main__":
    main()
