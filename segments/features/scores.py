"""Behavioural features derived from events, one row per profile, as of one moment.

:func:`derive_features` adds the columns below to a profile table. Only events at
or before ``as_of`` count, and "age" means ``as_of`` minus the event's timestamp,
measured exactly (not in calendar days). Every time window is half-open: an event
is *within the last D* when ``0 <= age < D``, so an instant exactly ``D`` ago falls
outside the window (into the older bucket). Event types are matched exactly
(:func:`segments.features.events.load_events` lower-cases them); the type names are
:class:`FeatureConfig` settings.

Purchases (each ``purchase`` event is one order):

    recency_days     age of the latest purchase in days (float); NaN with no purchase
    frequency        number of purchases within the last ``frequency_window_days``
    monetary_total   sum of ``value`` over those purchases (missing values count 0)
    monetary_avg     mean ``value`` of those purchases that have one; NaN if none

RFM, scored over the *population* of profiles with at least one purchase:

    rfm_r, rfm_f, rfm_m   quintile score 1-5 (5 best) of -recency_days, frequency and
                          monetary_total. Profiles are ranked by the value, ties broken
                          by profile id ascending (a stable, order-free rule), and rank
                          ``r`` of ``n`` scores ``ceil(5 * r / n)``: with 10 profiles,
                          two per score. Profiles without a purchase score 1, 1, 1.
    rfm_score             the three digits, e.g. ``"545"``
    rfm_segment           label from :data:`RFM_SEGMENTS`, indexed by R and
                          FM = ``ceil((F + M) / 2)`` (the R x FM grid popularised by
                          Putler, made non-overlapping). Score 111, which includes
                          every profile that never purchased, is ``lost``.

Engagement and lifecycle:

    engagement_score   sum over all events of ``engagement_weights[type]`` (0 for other
                       types), each times ``0.5 ** (age_days / half_life_days)`` when a
                       half-life is set
    last_activity_at   timestamp of the latest event of any type; NaT if none
    lifecycle_stage    first that applies: ``new`` (``signed_up_at`` within the last
                       ``new_days``, or after ``as_of``), ``active`` (last activity
                       within the last ``active_days``), ``at_risk`` (within the last
                       ``at_risk_days``), else ``lapsed`` (including no activity).
                       With the defaults: signed up exactly 7 days ago is not new; last
                       activity exactly 30 days ago is at_risk, exactly 60 days lapsed.

Triggers:

    cart_abandoned         the profile's latest ``add_to_cart`` is later than its latest
                           purchase (a purchase at the same instant closes the cart),
                           at least ``cart_min_minutes`` old and less than
                           ``cart_max_hours`` old: exactly 30 minutes counts, exactly
                           24 hours does not
    cart_items             for an abandoned cart, its lines: the ``add_to_cart`` events
                           after the latest purchase, one dict per product in order of
                           first add, ``{"product_id", "name", "price", "quantity"}``;
                           name and price are the latest non-missing values, quantity
                           the sum as a whole number (a missing quantity counts 1).
                           When the events have ``image_url`` or ``url``, the item
                           also carries the latest non-missing one (the key is left
                           out when there is none). Events without a product id are
                           left out. Empty list otherwise.
    repeated_product_view  some product viewed more than ``repeated_view_count`` times
                           within the last ``repeated_view_hours``
    repeated_product_id    that product (most views, then latest view, then lowest id)
    browsed_no_cart        at least ``browse_min_products`` distinct products viewed and
                           no ``add_to_cart`` within the last ``browse_hours``
    last_viewed_category   category of the latest view event that has one
    last_viewed_product    product id of the latest view event that has one

Events with equal timestamps keep their input order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from segments.errors import ConfigError, ProfileDataError
from segments.features.events import as_text, to_utc_series

if TYPE_CHECKING:
    from segments.features.eventstream import EventSummary

FEATURE_COLUMNS = (
    "recency_days",
    "frequency",
    "monetary_total",
    "monetary_avg",
    "rfm_r",
    "rfm_f",
    "rfm_m",
    "rfm_score",
    "rfm_segment",
    "engagement_score",
    "last_activity_at",
    "lifecycle_stage",
    "cart_abandoned",
    "cart_items",
    "repeated_product_view",
    "repeated_product_id",
    "browsed_no_cart",
    "last_viewed_category",
    "last_viewed_product",
)

FEATURE_TYPES: dict[str, str] = {
    "recency_days": "float",
    "frequency": "int",
    "monetary_total": "float",
    "monetary_avg": "float",
    "rfm_r": "int",
    "rfm_f": "int",
    "rfm_m": "int",
    "rfm_score": "string",
    "rfm_segment": "string",
    "engagement_score": "float",
    "last_activity_at": "datetime",
    "lifecycle_stage": "string",
    "cart_abandoned": "bool",
    "cart_items": "list",
    "repeated_product_view": "bool",
    "repeated_product_id": "string",
    "browsed_no_cart": "bool",
    "last_viewed_category": "string",
    "last_viewed_product": "string",
}
"""The profile-field type of each feature column (as in a campaign's ``schema:``)."""

# Rows: R score 5 down to 1. Columns: FM score 1 to 5.
_RFM_GRID = {
    5: ("new_customer", "potential_loyalist", "potential_loyalist", "champions", "champions"),
    4: ("promising", "potential_loyalist", "potential_loyalist", "champions", "champions"),
    3: ("promising", "need_attention", "need_attention", "loyal", "loyal"),
    2: ("about_to_sleep", "about_to_sleep", "at_risk", "at_risk", "cannot_lose"),
    1: ("lost", "hibernating", "at_risk", "cannot_lose", "cannot_lose"),
}
RFM_SEGMENTS: dict[tuple[int, int], str] = {
    (r, fm): label for r, labels in _RFM_GRID.items() for fm, label in enumerate(labels, 1)
}
"""``rfm_segment`` by ``(R, FM)``; laid out as a grid::

    R\\FM  1               2                   3                   4            5
    5     new_customer    potential_loyalist  potential_loyalist  champions    champions
    4     promising       potential_loyalist  potential_loyalist  champions    champions
    3     promising       need_attention      need_attention      loyal        loyal
    2     about_to_sleep  about_to_sleep      at_risk             at_risk      cannot_lose
    1     lost            hibernating         at_risk             cannot_lose  cannot_lose
"""

_DAY = 86400.0
_ITEM_EXTRAS = ("image_url", "url")
_CART_TEXT = ("product_id", "name", *_ITEM_EXTRAS)
_NO_POS = np.zeros(0, dtype=np.int64)
_NO_CODES = np.zeros(0, dtype=np.int32)
_STAGES = np.array(["new", "active", "at_risk", "lapsed"], dtype=object)
_RFM_SCORES = np.array([f"{r}{f}{m}" for r, f, m in np.ndindex(6, 6, 6)], dtype=object).reshape(
    6, 6, 6
)
_PERCENTILE = re.compile(r"^\s*[pP](\d+(?:\.\d+)?)\s*$")


class FeatureConfig(BaseModel):
    """Settings for :func:`derive_features`; the defaults are the documented behaviour."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engagement_weights: dict[str, float] = Field(
        default_factory=lambda: {"open": 1.0, "click": 2.0, "purchase": 5.0},
        description="Points per event type; types not listed score 0.",
    )
    half_life_days: PositiveFloat | None = Field(
        None, description="Engagement decay half-life; None counts every event fully."
    )
    frequency_window_days: PositiveFloat = Field(
        365, description="Purchases within this many days count for frequency and monetary."
    )
    new_days: NonNegativeFloat = Field(7, description="Signed up within this: stage new.")
    active_days: PositiveFloat = Field(30, description="Activity within this: stage active.")
    at_risk_days: PositiveFloat = Field(60, description="Activity within this: stage at_risk.")
    cart_min_minutes: NonNegativeFloat = Field(
        30, description="A cart younger than this is not abandoned yet."
    )
    cart_max_hours: PositiveFloat = Field(
        24, description="A cart this old or older is no longer a trigger."
    )
    repeated_view_count: PositiveInt = Field(
        3, description="Views of one product must exceed this for repeated_product_view."
    )
    repeated_view_hours: PositiveFloat = Field(24, description="Window for repeated views.")
    browse_min_products: PositiveInt = Field(
        3, description="Distinct products viewed (at least) for browsed_no_cart."
    )
    browse_hours: PositiveFloat = Field(24, description="Window for browsed_no_cart.")
    purchase_event: str = Field("purchase", description="Event type of a purchase.")
    cart_event: str = Field("add_to_cart", description="Event type of an add to cart.")
    view_event: str = Field("view", description="Event type of a product view.")

    @model_validator(mode="after")
    def _check_windows(self) -> FeatureConfig:
        if self.active_days >= self.at_risk_days:
            raise ValueError("active_days must be less than at_risk_days")
        if self.cart_min_minutes * 60 >= self.cart_max_hours * 3600:
            raise ValueError("cart_min_minutes must be shorter than cart_max_hours")
        return self


def derive_features(
    profiles: pd.DataFrame, events: pd.DataFrame, as_of: datetime, config: FeatureConfig
) -> pd.DataFrame:
    """A copy of ``profiles`` with the :data:`FEATURE_COLUMNS` added (see module docs).

    ``profiles`` needs a unique ``id`` column and may have ``signed_up_at``; events
    are matched to it by ``profile_id`` (as text when the dtypes differ). Events of
    unknown profiles, without a timestamp or after ``as_of`` are ignored. The
    events are folded as one chunk of :class:`segments.features.eventstream.EventAggregator`,
    which :func:`segments.features.eventstream.stream_events` feeds a file chunk by chunk.
    """
    from segments.features.eventstream import (
        EventAggregator,  # it needs this module's config: no cycle
    )

    check_feature_names(profiles.columns)
    ids = _profile_ids(profiles)
    for column in ("profile_id", "type", "timestamp"):
        if column not in events.columns:
            raise ProfileDataError("events lack a required column", field=column)
    events = events.reset_index(drop=True)
    aggregator = EventAggregator(len(ids), as_of, config)
    aggregator.add(_event_positions(ids, events["profile_id"]), events)
    signed_up = profiles["signed_up_at"] if "signed_up_at" in profiles.columns else None
    features = feature_frame(aggregator.summary(), ids, signed_up, config, empty_cart=list)
    return pd.concat([profiles, features.set_axis(profiles.index)], axis=1)


def check_feature_names(columns: Iterable[object]) -> None:
    """A profile column named like a derived feature is a :class:`ConfigError`."""
    clash = [column for column in FEATURE_COLUMNS if column in columns]
    if clash:
        raise ConfigError(
            "profile column has the name of a derived feature",
            field=clash[0],
            hint="rename the profile column",
        )


def feature_frame(
    summary: EventSummary,
    ids: pd.Index,
    signed_up_at: pd.Series | None,
    config: FeatureConfig,
    *,
    empty_cart: Callable[[], Any] | None = None,
) -> pd.DataFrame:
    """The :data:`FEATURE_COLUMNS` of the ``ids`` profiles (RangeIndex) from ``summary``.

    ``signed_up_at`` is aligned with ``ids`` by position. Without an abandoned
    cart, ``cart_items`` is a fresh ``empty_cart()`` per profile, or None. The
    summary is used up: each of its parts is released once its features are
    built, and the frame shares the feature arrays rather than copying them.
    """
    if summary.used:
        raise ValueError("an event summary gives its features once")
    summary.used = True
    n = len(ids)
    columns: dict[str, Any] = {
        **_cart_features(summary, config, empty_cart),
        **_view_features(summary, config),
        **_lifecycle_features(summary, signed_up_at, config),
    }
    summary.release("carts", "views", "last_ts", "carted_recent", "category", "product")
    columns.update(_purchase_features(summary, n))
    summary.release("purchases", "purchase_age")
    columns.update(_rfm_features(columns, ids))
    columns["engagement_score"] = summary.engagement
    summary.release("engagement")
    frame = {k: columns.pop(k) for k in FEATURE_COLUMNS}
    return pd.DataFrame(frame, index=pd.RangeIndex(n), copy=False)


def parse_percentile(value: object) -> float | None:
    """The q of a percentile reference such as ``"p75"`` (0-100), else None."""
    if not isinstance(value, str):
        return None
    match = _PERCENTILE.match(value)
    return float(match.group(1)) if match else None


def resolve_percentile(value: object, series: pd.Series) -> object:
    """Resolve ``"p<q>"`` to the q-th percentile of ``series``; other values pass through.

    Rules can then say ``value: p75`` for "the 75th percentile of the current
    audience". Linear interpolation (numpy's default), missing values ignored; NaN
    when ``series`` has no values.
    """
    q = parse_percentile(value)
    if q is None:
        return value
    if q > 100:
        raise ConfigError("percentile out of range", field=str(series.name), hint="use p0 to p100")
    if pd.api.types.is_bool_dtype(series.dtype) or not pd.api.types.is_numeric_dtype(series.dtype):
        raise ConfigError(
            "a percentile needs a numeric field",
            field=str(series.name),
            hint="compare text fields to literal values",
        )
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan")
    return float(np.percentile(values, q, method="linear"))


def _profile_ids(profiles: pd.DataFrame) -> pd.Index:
    if "id" not in profiles.columns:
        raise ProfileDataError("profiles have no id column", field="id")
    ids = pd.Index(profiles["id"])
    if not ids.is_unique:
        raise ProfileDataError("profile ids are not unique", field="id")
    return ids


def _event_positions(ids: pd.Index, event_ids: pd.Series) -> np.ndarray:
    index, values = ids, pd.Index(event_ids)
    if index.dtype != values.dtype:
        index = pd.Index(as_text(pd.Series(ids)))
        values = pd.Index(as_text(pd.Series(event_ids)))
        if not index.is_unique:
            raise ProfileDataError("profile ids collide when compared as text", field="id")
    return np.asarray(index.get_indexer(values), dtype=np.int64)


def _per_profile(grouped: pd.Series, n: int, fill: Any) -> pd.Series:
    """A per-``pos`` aggregate laid out over all ``n`` profiles."""
    return grouped.reindex(pd.RangeIndex(n), fill_value=fill)


def _purchase_features(summary: EventSummary, n: int) -> dict[str, Any]:
    # Kept purchases are those within the frequency window, by profile then time:
    # pandas sums them in that order, exactly as it summed all events' at once.
    in_window = pd.DataFrame(
        {"pos": summary.purchases.get("pos", _NO_POS), "value": summary.purchases.get("value")},
        copy=False,
    )
    grouped = in_window.groupby("pos")["value"]
    return {
        "recency_days": summary.purchase_age / _DAY,
        "frequency": _per_profile(grouped.size(), n, 0).to_numpy(dtype=np.int64),
        "monetary_total": _per_profile(grouped.sum(), n, 0.0).to_numpy(dtype=np.float64),
        "monetary_avg": _per_profile(grouped.mean(), n, np.nan).to_numpy(dtype=np.float64),
    }


def _rfm_features(purchases: dict[str, Any], ids: pd.Index) -> dict[str, Any]:
    recency = purchases["recency_days"]
    has_purchase = ~np.isnan(recency)
    tiebreak = np.empty(len(ids), dtype=np.int64)
    tiebreak[ids.argsort(kind="stable")] = np.arange(len(ids))
    r = quintile_scores(-recency, has_purchase, tiebreak)
    f = quintile_scores(purchases["frequency"], has_purchase, tiebreak)
    m = quintile_scores(purchases["monetary_total"], has_purchase, tiebreak)
    grid = np.empty((6, 6), dtype=object)
    for (r_score, fm_score), label in RFM_SEGMENTS.items():
        grid[r_score, fm_score] = label
    return {
        "rfm_r": r,
        "rfm_f": f,
        "rfm_m": m,
        "rfm_score": _RFM_SCORES[r, f, m],  # one shared string per score, not one per profile
        "rfm_segment": grid[r, (f + m + 1) // 2],
    }


def quintile_scores(key: np.ndarray, eligible: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Score 1-5 by quintile of ``key`` among ``eligible`` rows (higher key, higher score).

    Rows are ranked by ``key`` then ``tiebreak``; rank ``r`` (1-based) of ``n``
    scores ``ceil(5 * r / n)``. Rows not eligible score 1.
    """
    scores = np.ones(len(key), dtype=np.int64)
    chosen = np.flatnonzero(eligible)
    count = len(chosen)
    if count == 0:
        return scores
    order = np.lexsort((tiebreak[chosen], np.asarray(key, dtype=np.float64)[chosen]))
    ranks = np.empty(count, dtype=np.int64)
    ranks[order] = np.arange(1, count + 1)
    scores[chosen] = (5 * ranks + count - 1) // count
    return scores


def _lifecycle_features(
    summary: EventSummary, signed_up_at: pd.Series | None, config: FeatureConfig
) -> dict[str, Any]:
    n, as_of = summary.n, summary.as_of
    last = summary.timestamps(summary.last_ts)
    idle = (as_of - last).dt.total_seconds().to_numpy()
    is_new = np.zeros(n, dtype=bool)
    if signed_up_at is not None:
        signed = to_utc_series(signed_up_at).reset_index(drop=True)
        since = (as_of - signed).dt.total_seconds().to_numpy()
        is_new = since < config.new_days * _DAY  # NaN compares False
    stage = np.select(
        [is_new, idle < config.active_days * _DAY, idle < config.at_risk_days * _DAY],
        [0, 1, 2],
        default=3,
    )
    return {"last_activity_at": last, "lifecycle_stage": _STAGES[stage]}


def _cart_features(
    summary: EventSummary, config: FeatureConfig, empty_cart: Callable[[], Any] | None
) -> dict[str, Any]:
    n = summary.n
    carts = pd.DataFrame(summary.carts or {"pos": _NO_POS, "age": np.zeros(0)})
    pos = carts["pos"].to_numpy()
    open_lines = carts[~(carts["age"].to_numpy() >= summary.purchase_age[pos])]  # NaN: open
    newest = _per_profile(open_lines.groupby("pos")["age"].min(), n, np.nan).to_numpy()
    abandoned = (newest >= config.cart_min_minutes * 60) & (newest < config.cart_max_hours * 3600)
    lines = open_lines[abandoned[open_lines["pos"].to_numpy()]]
    text = {c: summary.vocabulary.decode(lines[c].to_numpy()) for c in _CART_TEXT if c in lines}
    lines = lines.assign(**text)
    return {"cart_abandoned": abandoned, "cart_items": _cart_items(lines, n, empty_cart)}


def _cart_items(lines: pd.DataFrame, n: int, empty_cart: Callable[[], Any] | None) -> np.ndarray:
    """One list of item dicts per profile; the cart lines are merged per product."""
    cells = np.full(n, None, dtype=object)
    if empty_cart is not None:  # one fresh list per profile: a shared one would alias
        cells[:] = [empty_cart() for _ in range(n)]
    if not len(lines):
        return cells
    lines = lines[lines["product_id"].notna()]
    lines = lines.assign(quantity=lines["quantity"].fillna(1.0), order=np.arange(len(lines)))
    items = lines.groupby(["pos", "product_id"], sort=False).agg(
        name=("name", "last"),
        price=("value", "last"),
        quantity=("quantity", "sum"),
        order=("order", "min"),
        **{extra: (extra, "last") for extra in _ITEM_EXTRAS},
    )
    items = items.reset_index().sort_values(["pos", "order"], kind="stable")
    items["quantity"] = items["quantity"].round().astype(np.int64).astype(object)
    records = items[["product_id", "name", "price", "quantity"]].astype(object)
    items["item"] = records.where(records.notna(), None).to_dict("records")
    _add_item_extras(items)
    per_profile = items.groupby("pos")["item"].agg(list)
    cells[per_profile.index.to_numpy()] = per_profile.to_numpy()
    return cells


def _add_item_extras(items: pd.DataFrame) -> None:
    """Put ``image_url`` / ``url`` into the item dicts where the events gave one."""
    for extra in _ITEM_EXTRAS:
        present = items[extra].notna().to_numpy()
        for item, value in zip(items["item"][present], items[extra][present], strict=True):
            item[extra] = value


def _view_features(summary: EventSummary, config: FeatureConfig) -> dict[str, Any]:
    n, kept = summary.n, summary.views
    views = pd.DataFrame(
        {
            "pos": kept.get("pos", _NO_POS),
            "age": kept.get("age", np.zeros(0)),
            "product_id": summary.vocabulary.decode(kept.get("product_id", _NO_CODES)),
        }
    )
    return {
        **_repeated_views(views, n, config),
        "browsed_no_cart": _browsed_no_cart(views, summary.carted_recent, config),
        "last_viewed_category": summary.vocabulary.decode(summary.category),
        "last_viewed_product": summary.vocabulary.decode(summary.product),
    }


def _view_counts(views: pd.DataFrame, hours: float) -> pd.DataFrame:
    recent = views[(views["age"] < hours * 3600) & views["product_id"].notna()]
    return (
        recent.groupby(["pos", "product_id"])
        .agg(views=("age", "size"), newest=("age", "min"))
        .reset_index()
    )


def _repeated_views(views: pd.DataFrame, n: int, config: FeatureConfig) -> dict[str, Any]:
    counts = _view_counts(views, config.repeated_view_hours)
    hot = counts[counts["views"] > config.repeated_view_count]
    hot = hot.sort_values(
        ["pos", "views", "newest", "product_id"],
        ascending=[True, False, True, True],
        kind="stable",
    ).drop_duplicates("pos")
    product = _per_profile(hot.set_index("pos")["product_id"], n, np.nan)
    return {
        "repeated_product_view": product.notna().to_numpy(),
        "repeated_product_id": product.to_numpy(dtype=object),
    }


def _browsed_no_cart(
    views: pd.DataFrame, carted_recent: np.ndarray, config: FeatureConfig
) -> np.ndarray:
    counts = _view_counts(views, config.browse_hours)
    distinct = _per_profile(counts.groupby("pos").size(), len(carted_recent), 0).to_numpy()
    return np.asarray((distinct >= config.browse_min_products) & ~carted_recent)
