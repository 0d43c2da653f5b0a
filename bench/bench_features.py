"""Time :func:`segments.features.scores.derive_features` on a synthetic audience.

100,000 profiles and 1,000,000 events, generated deterministically (numpy seed 0),
already in memory (no loading is timed). Target: under 10 seconds on one core.

    python bench/bench_features.py [--profiles N] [--events N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from segments.features.scores import FEATURE_COLUMNS, FeatureConfig, derive_features  # noqa: E402

AS_OF = pd.Timestamp("2025-01-01T00:00:00Z")
EVENT_TYPES = np.array(["view", "open", "click", "add_to_cart", "purchase", "unsubscribe"])
TYPE_SHARES = np.array([0.40, 0.25, 0.15, 0.10, 0.05, 0.05])


def make_profiles(count: int, rng: np.random.Generator) -> pd.DataFrame:
    """Profiles with string ids and sign-up dates over the last three years."""
    signed_days = rng.uniform(0, 3 * 365, count)
    return pd.DataFrame(
        {
            "id": pd.Series(np.arange(count)).map("p{:06d}".format),
            "signed_up_at": AS_OF - pd.to_timedelta(signed_days, unit="D"),
        }
    )


def make_events(profiles: pd.DataFrame, count: int, rng: np.random.Generator) -> pd.DataFrame:
    """Events skewed to recent days, so the 24-hour triggers have work to do."""
    owners = rng.zipf(1.3, count) % len(profiles)
    age_days = np.where(
        rng.random(count) < 0.1, rng.uniform(0, 2, count), rng.uniform(0, 400, count)
    )
    products = rng.integers(0, 5000, count)
    return pd.DataFrame(
        {
            "profile_id": profiles["id"].to_numpy()[owners],
            "type": rng.choice(EVENT_TYPES, count, p=TYPE_SHARES),
            "timestamp": AS_OF - pd.to_timedelta(age_days, unit="D"),
            "product_id": pd.Series(products).map("sku{:04d}".format),
            "category": pd.Series(products % 50).map("cat{:02d}".format),
            "name": pd.Series(products).map("Product {}".format),
            "value": np.round(rng.gamma(2.0, 30.0, count), 2),
            "quantity": rng.integers(1, 4, count).astype("float64"),
        }
    )


def main() -> None:
    """Generate the data, run derive_features once and print the timing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    profiles = make_profiles(args.profiles, rng)
    events = make_events(profiles, args.events, rng)
    config = FeatureConfig(half_life_days=30)
    started = time.perf_counter()
    features = derive_features(profiles, events, AS_OF.to_pydatetime(), config)
    seconds = time.perf_counter() - started
    values = len(features) * len(FEATURE_COLUMNS)
    print(f"profiles: {len(profiles):,}  events: {len(events):,}")
    print(f"derive_features: {seconds:.2f} s total")
    print(f"{len(profiles) / seconds:,.0f} profiles/s, {values / seconds:,.0f} feature values/s")
    print(
        f"cart_abandoned: {int(features['cart_abandoned'].sum()):,}  "
        f"repeated_product_view: {int(features['repeated_product_view'].sum()):,}  "
        f"browsed_no_cart: {int(features['browsed_no_cart'].sum()):,}"
    )


if __name__ == "__main__":
    main()
