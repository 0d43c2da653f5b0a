"""The product catalog a recommendation is joined with: read, validated, looked up.

A catalog is CSV (``.csv``) or Parquet (``.parquet``, ``.pq``) with at least these
columns (others are kept and reach the template too):

    sku        text, unique, not empty; matches the events' ``product_id``
    name       text, not empty
    price      number, 0 or more
    currency   ISO 4217 code: three letters (upper-cased)
    image_url  http(s) URL
    url        http(s) URL
    category   text (may be empty)
    in_stock   true/false (also 1/0, yes/no); an out-of-stock item is never recommended

A bad catalog stops the build: :class:`~segments.errors.ProfileDataError` names the
file, the 1-based data row and the field (never the cell's value).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from segments.errors import ProfileDataError

CATALOG_COLUMNS = ("sku", "name", "price", "currency", "image_url", "url", "category", "in_stock")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}
_HINT = "catalog columns: " + ", ".join(CATALOG_COLUMNS) + " (docs/delivery.md, Recommendations)"


@dataclass(frozen=True)
class Catalog:
    """Validated catalog rows, indexed by sku (text), in file order."""

    rows: pd.DataFrame

    def in_stock(self, skus: np.ndarray) -> np.ndarray:
        """True per sku that the catalog lists as in stock (an unknown sku is not)."""
        flags = self.rows["in_stock"].reindex(pd.Index(skus.astype(str)))
        return np.asarray(flags.fillna(False).to_numpy(bool))

    def row(self, sku: str) -> dict[str, Any]:
        """The catalog row of ``sku`` as a dict, ``sku`` included."""
        record = self.rows.loc[sku].to_dict()
        plain = {str(k): v.item() if isinstance(v, np.generic) else v for k, v in record.items()}
        return {"sku": sku, **plain}


def load_catalog(path: str | Path) -> Catalog:
    """Read and validate a catalog file (module docstring)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ProfileDataError("catalog file not found", file=str(path), hint=_HINT)
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            raise ProfileDataError("catalog must be .csv or .parquet", file=str(path), hint=_HINT)
    except (ValueError, OSError) as exc:
        raise ProfileDataError(
            f"catalog cannot be read ({type(exc).__name__})", file=str(path), hint=_HINT
        ) from None
    return validate_catalog(frame, file=str(path))


def validate_catalog(frame: pd.DataFrame, *, file: str = "<catalog>") -> Catalog:
    """Check columns and every row; raise at the first bad cell, located."""
    for column in CATALOG_COLUMNS:
        if column not in frame.columns:
            raise ProfileDataError("catalog lacks a column", file=file, field=column, hint=_HINT)
    text = frame.astype(object).where(frame.notna(), "").astype(str)
    text = text.apply(lambda col: col.str.strip())
    seen: dict[str, int] = {}
    prices, stock = [], []
    for position, record in enumerate(text.to_dict("records")):
        row = position + 1
        _check_row(record, row, file, seen)
        prices.append(float(record["price"]))
        stock.append(record["in_stock"].lower() in _TRUE)
    rows = text.copy()
    rows["price"] = prices
    rows["currency"] = rows["currency"].str.upper()
    rows["in_stock"] = stock
    return Catalog(rows.set_index("sku"))


def _check_row(record: dict[str, str], row: int, file: str, seen: dict[str, int]) -> None:
    def bad(field: str, message: str, hint: str = _HINT) -> ProfileDataError:
        return ProfileDataError(message, file=file, row=row, field=field, hint=hint)

    sku = record["sku"]
    if not sku:
        raise bad("sku", "catalog row has no sku")
    if sku in seen:
        raise bad("sku", "catalog sku repeated", f"the same sku is on row {seen[sku]}")
    seen[sku] = row
    if not record["name"]:
        raise bad("name", "catalog row has no name")
    if not _is_price(record["price"]):
        raise bad("price", "catalog price is not a number of 0 or more")
    currency = record["currency"]
    if not (len(currency) == 3 and currency.isascii() and currency.isalpha()):
        raise bad("currency", "catalog currency is not a three-letter code", "e.g. USD, EUR")
    for field in ("image_url", "url"):
        if not record[field].lower().startswith(("https://", "http://")):
            raise bad(field, "catalog URL is not http(s)")
    if record["in_stock"].lower() not in _TRUE | _FALSE:
        raise bad("in_stock", "catalog in_stock is not true or false", "true/false, 1/0, yes/no")


def _is_price(value: str) -> bool:
    try:
        number = float(value)
    except ValueError:
        return False
    return bool(np.isfinite(number)) and number >= 0
