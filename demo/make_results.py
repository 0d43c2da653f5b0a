"""Write demo/results.csv: per-recipient outcomes of the demo send, for `mailsmith ab report`.

Deterministic (random.Random(2026)). Subject B gets a higher open rate and the
free-shipping offer a higher conversion rate, so the report has something to find.
Run from the repository root: python demo/make_results.py
"""

from __future__ import annotations

import csv
import json
import random
import tempfile
from pathlib import Path

from renderer import BuildOptions, build_campaign, load_campaign

HERE = Path(__file__).resolve().parent
OPEN = {"A": 0.22, "B": 0.27}
CONVERT = {"control": 0.030, "free_shipping": 0.045}


def main() -> None:
    rng = random.Random(2026)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        build_campaign(load_campaign(HERE / "campaign.yaml"), BuildOptions(out=out))
        entries = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    rows = []
    for entry in entries:
        if entry["holdout"]:
            continue
        variants = entry["variants"]
        opened = rng.random() < OPEN[variants["subject_test"]]
        clicked = opened and rng.random() < 0.35
        converted = rng.random() < CONVERT[variants["offer_test"]]
        revenue = round(rng.uniform(40, 320), 2) if converted else 0.0
        rows.append(
            {
                "id": entry["id"],
                "opened": int(opened),
                "clicked": int(clicked),
                "converted": int(converted),
                "revenue": revenue,
            }
        )
    with (HERE / "results.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=["id", "opened", "clicked", "converted", "revenue"]
        )
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {HERE / 'results.csv'}")


if __name__ == "__main__":
    main()
