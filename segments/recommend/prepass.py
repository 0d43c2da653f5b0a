"""Recommendations in a build's pre-pass: a derived ``recommendations`` field per profile.

When a campaign has ``recommendations:`` (and ``events:``), the audience pre-pass
(:func:`segments.audience.prepass.prepare_audience`) calls :func:`add_recommendations`
after the features: the events (file or database source) are read again, chunk by
chunk, keeping only (profile, product, type, timestamp) of the events that name a
product and have a weighted type; the model is fitted, every valid profile gets its
list (its segment's popular items before the bestsellers: :mod:`segments.recommend.groups`),
and the lists join each render chunk by id like the other derived fields. Unlike the
other derived fields, the computed list wins over a profile column of the same
name (an exported ``recommendations`` column is the fallback when the campaign
has no ``recommendations:`` key).

Each list entry is a catalog row plus ``reason`` and ``source``; entries with the
same sku and reason are one shared dict, so a million recipients cost a list of
references each, not a million copies of catalog rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from segments.audience.document import Audience
from segments.features.derived import DerivedFields
from segments.features.events import clean_events, read_event_chunks
from segments.profiles.sqlread import SqlSource, read_sql_event_chunks
from segments.recommend.api import RecommendationConfig, interactions_from_events, recommend_for
from segments.recommend.catalog import load_catalog
from segments.recommend.evaluate import Evaluation, evaluate

FIELD = "recommendations"
_CHUNK = 200_000


@dataclass(frozen=True)
class RecommendationSpec:
    """The campaign's ``recommendations:`` settings and its catalog's resolved path."""

    config: RecommendationConfig
    catalog: Path


def read_product_events(
    path: Path,
    as_of: datetime,
    types: list[str],
    *,
    delimiter: str = ",",
    encoding: str = "utf-8",
    sql: SqlSource | None = None,
) -> pd.DataFrame:
    """The accepted events of ``types`` that name a product (columns ``profile_id``,
    ``type``, ``timestamp``, ``product_id``), read ``_CHUNK`` rows at a time from the
    file or, with ``sql``, from that database source."""
    kept = []
    if sql is not None:
        chunks = read_sql_event_chunks(sql, _CHUNK)
    else:
        chunks = read_event_chunks(path, _CHUNK, delimiter=delimiter, encoding=encoding)
    for raw in chunks:
        if "product_id" not in raw.columns:
            continue
        events = clean_events(raw, known_ids=None, as_of=as_of).events
        product = events["product_id"]
        wanted = events["type"].isin(types) & product.notna()
        kept.append(events.loc[wanted, ["profile_id", "type", "timestamp", "product_id"]])
    if not kept:
        return pd.DataFrame(columns=["profile_id", "type", "timestamp", "product_id"])
    return pd.concat(kept, ignore_index=True)


def add_recommendations(
    audience: Audience,
    spec: RecommendationSpec,
    events: pd.DataFrame,
    *,
    id_field: str,
    as_of: datetime,
    half_life_days: float | None,
    groups: Sequence[object] | None = None,
) -> Audience:
    """``audience`` with a derived ``recommendations`` list for every profile;
    ``groups``, each profile's segment in the order of the derived fields' rows (None:
    none), turns on the "popular in your segment" fallback
    (:mod:`segments.recommend.groups`)."""
    catalog = load_catalog(spec.catalog)
    ids = audience.derived.frame.index
    lists = recommend_for(
        events,
        list(ids),
        spec.config,
        catalog,
        as_of=as_of,
        half_life_days=half_life_days,
        groups=groups,
    )
    shared: dict[tuple[str, str], dict[str, Any]] = {}
    column = np.empty(len(lists), dtype=object)
    for position, entries in enumerate(lists):
        column[position] = [shared.setdefault((e["sku"], e["reason"]), e) for e in entries]
    derived = audience.derived
    frame = derived.frame.copy(deep=False)
    frame[FIELD] = column
    types = {**derived.types, FIELD: "list"}
    overrides = frozenset(derived.overrides) | {FIELD}
    return replace(audience, derived=DerivedFields(frame, types, derived.text, overrides))


def evaluate_events(
    spec: RecommendationSpec, events: pd.DataFrame, as_of: datetime, half_life_days: float | None
) -> Evaluation:
    """The offline evaluation (:mod:`segments.recommend.evaluate`) on a campaign's events,
    as ``mailsmith segments`` prints it: the last purchase held out, or, when no
    purchase names a product, the last event of the highest-weighted type that does."""
    config = spec.config
    half_life = config.half_life_days or half_life_days
    inter = interactions_from_events(events, as_of, config.weights, half_life)
    present = {inter.kind_names[k] for k in set(inter.kinds.tolist())}
    ranked = sorted(present, key=lambda kind: (-config.weights[kind], kind))
    holdout = config.exclude if config.exclude in present else (ranked or [config.exclude])[0]
    catalog = load_catalog(spec.catalog)
    return evaluate(
        inter,
        n=config.n,
        holdout=holdout,
        weights=config.weights,
        neighbors=config.neighbors,
        in_stock=catalog.in_stock(inter.skus),
        exclude_kind=config.exclude,
    )
