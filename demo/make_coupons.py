"""Generate the demo campaign's coupon pool: ``coupons.csv`` (single-use win-back codes).

Deterministic (``random.Random(2026)``), so ``python demo/make_coupons.py`` writes the
shipped file byte for byte. 1,000 codes: more than the lapsed segment's recipients.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud, typed by hand
COUNT = 1000


def main() -> None:
    rng = random.Random(2026)
    codes: dict[str, None] = {}
    while len(codes) < COUNT:
        codes["WB-" + "".join(rng.choice(ALPHABET) for _ in range(8))] = None
    path = Path(__file__).with_name("coupons.csv")
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["code"])
        writer.writerows([code] for code in codes)


if __name__ == "__main__":
    main()
