"""Generate the demo's product catalog: ``catalog.csv`` (docs/delivery.md, Recommendations).

One row per product of ``make_events.PRODUCTS`` (the product ids of ``events.csv``),
deterministic, so ``python demo/make_catalog.py`` rewrites the shipped file byte for
byte. Two products are out of stock, so the demo shows that they are never recommended.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_events import PRODUCTS, SHOP  # noqa: E402

COLUMNS = ["sku", "name", "price", "currency", "image_url", "url", "category", "in_stock"]
OUT_OF_STOCK = {"JP-1012", "JP-1020"}  # Down Puffer Coat, Trail Running Shoes


def main() -> None:
    """Write ``catalog.csv`` next to this script."""
    with open(HERE / "catalog.csv", "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for sku, name, price, category in PRODUCTS:
            slug = sku.lower()
            stock = "false" if sku in OUT_OF_STOCK else "true"
            image = f"{SHOP}/img/products/{slug}.jpg"
            writer.writerow(
                [sku, name, f"{price:.2f}", "USD", image, f"{SHOP}/p/{slug}", category, stock]
            )


if __name__ == "__main__":
    main()
