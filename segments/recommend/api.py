"""Recommendations for recipients, from an events frame and a catalog: the library API.

The campaign key (docs/delivery.md, "Recommendations")::

    recommendations:
      catalog: catalog.csv          # required: CSV or Parquet (segments.recommend.catalog)
      n: 4                          # items per recipient
      weights: {view: 1, add_to_cart: 3, purchase: 5}   # points per event type
      half_life_days: 60            # decay; default: features.half_life_days
      neighbors: 50                 # similar items kept per item
      exclude: purchase             # a recipient's items of this type are never shown
      segment_fallback: true        # segment picks before bestsellers (segments.recommend.groups)

Each recipient's ``recommendations`` is a list of dicts: the catalog row (``sku``,
``name``, ``price``, ``currency``, ``image_url``, ``url``, ``category``, ``in_stock``
and any other catalog column) plus ``reason`` ("because you viewed Wool Scarf",
"popular in your segment", "a bestseller") and ``source`` (``similar``, ``segment``,
``popular``); a ``similar`` pick also has ``reason_kind`` (the event type: ``view``,
``add_to_cart``, ``purchase``, ...) and ``reason_name`` (the item's name), so a
localized template can word the reason in the recipient's language.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from segments.recommend.catalog import Catalog
from segments.recommend.model import (
    DEFAULT_WEIGHTS,
    SEGMENT,
    SIMILAR,
    SOURCE_NAMES,
    Interactions,
    Model,
    Recommendations,
    encode,
    fit,
    recommend,
)

_VERBS = {"view": "viewed", "purchase": "bought"}  # other weighted types: "chose"
_DAY = 86400.0


class RecommendationConfig(BaseModel):
    """The campaign's ``recommendations:`` key (module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    catalog: str = Field(description="Catalog file (CSV or Parquet), relative to the campaign.")
    n: PositiveInt = Field(4, description="Items per recipient.")
    weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_WEIGHTS), description="Points per event type."
    )
    half_life_days: float | None = Field(
        None, gt=0, description="Decay half-life; default: the features' half_life_days."
    )
    neighbors: PositiveInt = Field(50, description="Similar items kept per item.")
    exclude: str = Field("purchase", description="Event type whose items are never shown.")
    segment_fallback: bool | str = Field(
        True,
        description="Popular items of the recipient's segment before the bestsellers: true "
        "(the first exclusive group, else the first matching segment), an exclusive group "
        "or cluster name, or false (segments.recommend.groups).",
    )


def interactions_from_events(
    events: pd.DataFrame,
    as_of: datetime,
    weights: dict[str, float],
    half_life_days: float | None,
) -> Interactions:
    """The (profile, item, decayed points) triples of the events that name a product
    and have a weighted type (``events`` as :func:`segments.features.events.clean_events`
    accepts them: ``profile_id``, ``type``, ``timestamp``, ``product_id``)."""
    products = events["product_id"].astype(object)
    usable = products.notna() & (products.astype(str).str.strip() != "")
    usable &= events["type"].isin(list(weights))
    chosen = events.loc[usable]
    stamps = pd.to_datetime(chosen["timestamp"], utc=True, format="ISO8601")
    age = (pd.Timestamp(as_of) - stamps).dt.total_seconds().to_numpy(float) / _DAY
    return encode(
        chosen["profile_id"].astype(str).to_numpy(),
        chosen["product_id"].astype(str).str.strip().to_numpy(),
        chosen["type"].astype(str).to_numpy(),
        np.maximum(age, 0.0),
        weights,
        half_life_days,
    )


def recommend_for(
    events: pd.DataFrame,
    recipient_ids: Sequence[object],
    config: RecommendationConfig,
    catalog: Catalog,
    *,
    as_of: datetime,
    half_life_days: float | None = None,
    groups: Sequence[object] | None = None,
) -> list[list[dict[str, Any]]]:
    """Each recipient's recommendations, in ``recipient_ids`` order (module docstring).

    ``groups`` (one label per recipient, None for none; e.g. the recipient's segment)
    turns on the "popular in your segment" fallback. ``half_life_days`` is the
    features' half-life, used when the config sets none.
    """
    half_life = config.half_life_days or half_life_days
    interactions = interactions_from_events(events, as_of, config.weights, half_life)
    model = fit(interactions, neighbors=config.neighbors, weights=config.weights)
    users = user_codes(interactions, recipient_ids)
    group_codes = None if groups is None else _group_codes(groups)
    recs = recommend(
        model,
        users,
        config.n,
        in_stock=catalog.in_stock(interactions.skus),
        groups=group_codes,
        exclude_kind=config.exclude,
    )
    return catalog_rows(recs, interactions.skus, model, catalog)


def user_codes(interactions: Interactions, ids: Sequence[object]) -> np.ndarray:
    """The model's user code of each id (as text), -1 for an id without interactions."""
    index = pd.Index(interactions.user_ids)
    return np.asarray(index.get_indexer(pd.Index([str(i) for i in ids])), dtype=np.int64)


def _group_codes(groups: Sequence[object]) -> np.ndarray:
    labels = pd.Series(list(groups), dtype=object)
    codes, _ = pd.factorize(labels.where(labels.notna(), None), sort=True)
    return np.asarray(codes, dtype=np.int64)


def catalog_rows(
    recs: Recommendations, skus: np.ndarray, model: Model, catalog: Catalog
) -> list[list[dict[str, Any]]]:
    """Join item codes with catalog rows and add ``reason`` and ``source``. Each catalog
    row and each reason is looked up once (a pandas lookup costs a millisecond), however
    many recipients share it; every entry is a dict of its own."""
    rows: dict[int, dict[str, Any]] = {}
    reasons: dict[tuple[int, int, int], str] = {}
    parts: dict[tuple[int, int, int], dict[str, str]] = {}
    lists = []
    for row in range(recs.items.shape[0]):
        items = []
        for slot in range(recs.items.shape[1]):
            item = int(recs.items[row, slot])
            if item < 0:
                break
            if item not in rows:
                rows[item] = catalog.row(str(skus[item]))
            source = int(recs.sources[row, slot])
            key = (source, int(recs.reasons[row, slot]), int(recs.reason_kinds[row, slot]))
            if key not in reasons:
                reasons[key] = _reason(key, skus, model, catalog)
                parts[key] = _reason_parts(key, skus, model, catalog)
            entry = {**rows[item], "reason": reasons[key], **parts[key]}
            entry["source"] = SOURCE_NAMES[source]
            items.append(entry)
        lists.append(items)
    return lists


def _reason(key: tuple[int, int, int], skus: np.ndarray, model: Model, catalog: Catalog) -> str:
    """The reason of a pick: ``key`` is its (source, history item, that item's kind)."""
    source, history, kind_code = key
    if source == SEGMENT:
        return "popular in your segment"
    if source != SIMILAR:
        return "a bestseller"
    sku = str(skus[history])
    name = str(catalog.rows["name"].get(sku, sku))
    kind = model.kind_names[kind_code]
    if kind == "add_to_cart":
        return f"because you added {name} to your cart"
    return f"because you {_VERBS.get(kind, 'chose')} {name}"


def _reason_parts(
    key: tuple[int, int, int], skus: np.ndarray, model: Model, catalog: Catalog
) -> dict[str, str]:
    """``reason_kind`` and ``reason_name`` of a ``similar`` pick (nothing for others), for
    templates that word the reason themselves (in the recipient's language)."""
    source, history, kind_code = key
    if source != SIMILAR:
        return {}
    sku = str(skus[history])
    kind = model.kind_names[kind_code]
    return {"reason_kind": str(kind), "reason_name": str(catalog.rows["name"].get(sku, sku))}
