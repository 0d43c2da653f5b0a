"""Benchmark the item-item recommender (#14): 1 million events, 10,000 items, 100,000 profiles.

    PYTHONPATH=$PWD python bench/bench_recommend.py [--events 1000000] [--n 4]

The events are synthetic but not uniform, so similarity has something to find:
items sit in 200 themes of 50; each profile likes one or two themes and draws most
of its items from them, with a Zipf-like skew toward each theme's first items
(and 15% of draws from anywhere, by overall popularity). Kinds: 70% views, 20%
add-to-carts, 10% purchases, timestamps over a year, decay half-life 60 days.

Prints the time of each step (encode, fit, recommend for every profile), the
process's peak RSS after each step (the first line: after generating the events,
the baseline the model's memory adds to), and the offline evaluation
(last purchase held out) against the popularity baseline of the same run. Runs
under a minute on one core; figures in docs/performance.md, "Recommendations (#14)".
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from segments.recommend.evaluate import evaluate  # noqa: E402
from segments.recommend.model import DEFAULT_WEIGHTS, encode, fit, recommend  # noqa: E402

THEMES, PER_THEME = 200, 50


def synthetic_events(
    events: int, profiles: int, seed: int = 14
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(profile ids, skus, kinds, ages in days) of ``events`` synthetic events."""
    rng = np.random.default_rng(seed)
    items = THEMES * PER_THEME
    user = rng.integers(0, profiles, events)
    themes = rng.integers(0, THEMES, (profiles, 2))
    second = rng.random(events) < 0.3
    theme = np.where(second, themes[user, 1], themes[user, 0])
    rank = np.minimum(rng.zipf(1.6, events) - 1, PER_THEME - 1)
    item = theme * PER_THEME + rank
    anywhere = rng.random(events) < 0.15
    item[anywhere] = np.minimum(rng.zipf(1.3, int(anywhere.sum())) - 1, items - 1)
    kinds = rng.choice(np.array(["view", "add_to_cart", "purchase"]), events, p=[0.7, 0.2, 0.1])
    ages = rng.uniform(0, 365, events)
    ids = np.char.add("P", user.astype(str))
    skus = np.char.add("SKU-", np.char.zfill(item.astype(str), 5))
    return ids, skus, kinds, ages


def timed(label: str, work):  # type: ignore[no-untyped-def]
    """Run ``work()``; print its time and the process's peak RSS so far; return its result."""
    started = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{label:<36}{seconds:>8.2f} s   peak RSS {peak:>7.1f} MiB")
    return result


def main() -> None:
    """Generate, fit, recommend, evaluate; print figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--n", type=int, default=4)
    args = parser.parse_args()
    ids, skus, kinds, ages = timed(
        "generate events", lambda: synthetic_events(args.events, args.profiles)
    )
    print(f"{args.events:,} events, {THEMES * PER_THEME:,} items, {args.profiles:,} profiles")
    inter = timed(
        "encode (codes, decayed points)",
        lambda: encode(ids, skus, kinds, ages, DEFAULT_WEIGHTS, 60.0),
    )
    model = timed("fit (R, cosine, top 50 per item)", lambda: fit(inter, weights=DEFAULT_WEIGHTS))
    print(f"  R: {model.ratings.nnz:,} pairs; S: {model.similarity.nnz:,} similarities")
    users = np.arange(len(inter.user_ids))
    recs = timed(
        f"recommend top {args.n} for every profile", lambda: recommend(model, users, args.n)
    )
    print(f"  {int((recs.items >= 0).sum()):,} items recommended")
    result = timed(
        "evaluation (fit + 2 x recommend)",
        lambda: evaluate(inter, n=args.n, weights=DEFAULT_WEIGHTS),
    )
    print("\n".join(result.lines()))
    ratio = result.model.hit_rate / max(result.popularity.hit_rate, 1e-12)
    print(f"hit rate, item-item / popularity: {ratio:.2f}x")


if __name__ == "__main__":
    main()
