"""The audience engine: segments documents, derived fields and percentile thresholds.

A *segments document* is a segments file, or a campaign's inline ``segments:``::

    segments:  {name: rule, ...}                 the rules (segments.rules.ruleset)
    exclusive: {group: [segment, ...], ...}      priority groups (segments.audience.hierarchy)
    min_size:  1%                                minimum sizes (segments.audience.hierarchy)
    clusters:  [{name, features, k | k_range, seed, labels}]   K-means (segments.audience.clusters)

A bare mapping of segment name to rule is a document with only segments.

*Derived fields* are per-profile values that need the whole audience: the
behavioural features of :mod:`segments.features.scores` (from events) and cluster
labels. :func:`derive_audience` computes them once for every valid profile;
:class:`DerivedFields` joins them to any frame or record by profile id. Where a
profile has its own value for a field of the same name, the profile's value wins
and the derived value only fills a missing one (so an exported ``cart_items``
column beats the cart rebuilt from events). A derived ``cart_items`` is missing,
not an empty list, when there is no abandoned cart.

*Percentile thresholds*: a condition's value ``p<q>`` on a numeric field, as in
``{field: engagement_score, op: gte, value: p75}``, is the q-th percentile of
that field over the audience (linear interpolation, missing values ignored),
resolved before the rules compile. It works with lt, lte, gt, gte, eq, ne and
either end of between. On a text field ``p75`` stays a literal string. A field
with no values at all resolves to 0, which matches nobody (every row is missing).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from segments.audience.clusters import ClusterModel, ClusterSpec, fit_clusters, stale_reason
from segments.audience.hierarchy import (
    ExclusiveGroup,
    MinSizes,
    exclusive_columns,
    parse_exclusive,
    parse_min_size,
)
from segments.errors import ConfigError, SegmentRuleError
from segments.features.derived import DerivedFields, is_text, own_or_derived
from segments.features.scores import (
    FEATURE_TYPES,
    FeatureConfig,
    derive_features,
    feature_frame,
    parse_percentile,
)
from segments.features.scores import resolve_percentile as percentile_of
from segments.rules.ruleset import SegmentSet
from segments.yamlsrc import LineDict, LineList, line_at

if TYPE_CHECKING:
    from segments.features.eventstream import EventSummary

DOCUMENT_KEYS = ("segments", "exclusive", "min_size", "clusters")
PERCENTILE_OPS = frozenset({"lt", "lte", "gt", "gte", "eq", "ne", "between"})


# --- the document --------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentDocument:
    """Segment rules (raw, as written) plus exclusive groups, minimum sizes and clusters."""

    definitions: Mapping[str, Any]
    exclusive: tuple[ExclusiveGroup, ...] = ()
    min_sizes: MinSizes = field(default_factory=MinSizes)
    clusters: tuple[ClusterSpec, ...] = ()
    file: str | None = None

    @property
    def segment_names(self) -> list[str]:
        """The rule-defined segments, in file order."""
        return [str(name) for name in self.definitions]

    def fields_used(self) -> set[str]:
        """Every field a rule condition names (as written, before any validation)."""
        return {
            str(cond["field"])
            for rule in self.definitions.values()
            for cond in _conditions(rule)
            if isinstance(cond.get("field"), str)
        }

    def percentile_fields(self) -> set[str]:
        """Fields some condition compares with a ``p<q>`` threshold."""
        return {
            str(cond.get("field"))
            for rule in self.definitions.values()
            for cond in _conditions(rule)
            if _percentile_values(cond)
        }

    def references(self) -> dict[str, set[str]]:
        """Per segment, every segment it uses through ``{segment: ...}`` (transitively)."""
        direct = {str(n): set(_references(rule)) for n, rule in self.definitions.items()}
        closed: dict[str, set[str]] = {}
        for name in direct:
            seen: set[str] = set()
            pending = list(direct[name])
            while pending:
                ref = pending.pop()
                if ref not in seen:
                    seen.add(ref)
                    pending.extend(direct.get(ref, ()))
            closed[name] = seen
        return closed

    @property
    def needs_population(self) -> bool:
        """True when rules or clusters need the whole audience (percentiles, K-means)."""
        return bool(self.clusters) or bool(self.percentile_fields())


def parse_segment_document(data: Any, *, file: str | None = None) -> SegmentDocument:
    """Read a segments document (see module docs); errors name the file and line."""
    file = file or getattr(data, "file", None)
    if data is None:
        return SegmentDocument(LineDict(), file=file)
    if not isinstance(data, Mapping):
        raise SegmentRuleError(
            "a segments document must be a mapping", file=file, line=line_at(data, [])
        )
    if "segments" not in data:
        data = {"segments": data}
    for key in data:
        if key not in DOCUMENT_KEYS:
            raise SegmentRuleError(
                f"unknown top-level key '{key}'",
                file=file,
                line=line_at(data, [key]),
                hint=f"a segments document holds {', '.join(DOCUMENT_KEYS)}",
            )
    definitions = data["segments"]
    if not isinstance(definitions, Mapping):
        raise SegmentRuleError(
            "'segments' must be a mapping of segment name to rule",
            file=file,
            line=line_at(data, ["segments"]),
        )
    names = [str(name) for name in definitions]
    return SegmentDocument(
        definitions=definitions,
        exclusive=parse_exclusive(data.get("exclusive"), segments=names, file=file),
        min_sizes=parse_min_size(
            data.get("min_size"), segments=names, file=file, line=line_at(data, ["min_size"])
        ),
        clusters=_parse_clusters(data.get("clusters"), file),
        file=file,
    )


def _parse_clusters(raw: Any, file: str | None) -> tuple[ClusterSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise SegmentRuleError(
            "'clusters' must be a list of cluster specs", file=file, line=line_at(raw, [])
        )
    specs: list[ClusterSpec] = []
    for index, item in enumerate(raw):
        try:
            spec = ClusterSpec.model_validate(item)
        except ValidationError as exc:
            error = exc.errors()[0]
            loc = [index, *error["loc"]]
            where = ".".join(str(part) for part in error["loc"]) or "(spec)"
            raise SegmentRuleError(
                f"clusters[{index}].{where}: {error['msg']}",
                file=file,
                line=line_at(raw, loc),
                hint="a cluster spec has name, features, k or k_range, seed, labels",
            ) from None
        if any(spec.name == other.name for other in specs):
            raise SegmentRuleError(
                f"cluster '{spec.name}' is defined twice", file=file, line=line_at(raw, [index])
            )
        specs.append(spec)
    return tuple(specs)


# --- walking raw rules -----------------------------------------------------------------


def _walk(node: Any) -> Iterator[Mapping[str, Any]]:
    """Every mapping in a raw rule node, through all/any/not (malformed parts skipped)."""
    if not isinstance(node, Mapping):
        return
    yield node
    for key in ("all", "any"):
        children = node.get(key)
        for child in children if isinstance(children, list) else ():
            yield from _walk(child)
    if "not" in node:
        yield from _walk(node["not"])


def _conditions(node: Any) -> Iterator[Mapping[str, Any]]:
    """Every ``{field, op, value}`` mapping under a raw rule node."""
    return (n for n in _walk(node) if "field" in n or "op" in n)


def _references(node: Any) -> Iterator[str]:
    """Every ``segment:`` name a raw rule node refers to."""
    return (n["segment"] for n in _walk(node) if isinstance(n.get("segment"), str))


def percentile_references(rule: Any) -> list[str]:
    """The ``p<q>`` values (such as ``"p75"``) anywhere in a raw rule node."""
    return [value for cond in _conditions(rule) for value in _percentile_values(cond)]


def _percentile_values(cond: Mapping[str, Any]) -> list[str]:
    if cond.get("op") not in PERCENTILE_OPS:
        return []
    value = cond.get("value")
    values = value if isinstance(value, list) else [value]
    return [str(v) for v in values if parse_percentile(v) is not None]


def _like(original: Any, content: Any) -> Any:
    """``content`` (a dict or list) carrying ``original``'s file and line information."""
    if isinstance(original, LineDict):
        copy = LineDict(content)
        copy.file, copy.line, copy.key_lines = original.file, original.line, original.key_lines
        return copy
    if isinstance(original, LineList):
        items = LineList(content)
        items.file, items.line, items.item_lines = original.file, original.line, original.item_lines
        return items
    return content


# --- percentile thresholds ---------------------------------------------------------------


@dataclass(frozen=True)
class PercentileThreshold:
    """One ``p<q>`` threshold and the value it resolved to; ``line`` is the condition's."""

    segment: str
    field: str
    op: str
    text: str
    value: float
    line: int | None = None

    def __str__(self) -> str:
        shown = "no values" if math.isnan(self.value) else f"{self.value:,.4g}"
        return f"{self.text} = {shown}"


def resolve_percentiles(
    document: SegmentDocument, population: pd.DataFrame
) -> tuple[Mapping[str, Any], list[PercentileThreshold]]:
    """The document's rules with every ``p<q>`` on a numeric field replaced by its value."""
    found: list[PercentileThreshold] = []

    def rewrite(segment: str, node: Any) -> Any:
        if isinstance(node, Mapping):
            if "field" in node or "op" in node:
                return _resolve_condition(segment, node, population, document.file, found)
            items = {
                k: rewrite(segment, v) if k in ("all", "any", "not") else v for k, v in node.items()
            }
            return _like(node, items)
        if isinstance(node, list):
            return _like(node, [rewrite(segment, child) for child in node])
        return node

    resolved = {name: rewrite(str(name), rule) for name, rule in document.definitions.items()}
    return _like(document.definitions, resolved), found


def _resolve_condition(
    segment: str,
    cond: Mapping[str, Any],
    population: pd.DataFrame,
    file: str | None,
    found: list[PercentileThreshold],
) -> Mapping[str, Any]:
    name = cond.get("field")
    if not _percentile_values(cond) or not isinstance(name, str) or name not in population:
        return cond
    column = population[name]
    if pd.api.types.is_bool_dtype(column.dtype) or not pd.api.types.is_numeric_dtype(column.dtype):
        return cond  # "p75" on a text field is a literal string
    line = line_at(cond, ["value"])
    cond_line = line_at(cond, [])  # the condition's own line, as rules report it

    def resolve(value: Any) -> Any:
        if parse_percentile(value) is None:
            return value
        try:
            number = float(percentile_of(value, column))  # type: ignore[arg-type]
        except ConfigError as exc:
            raise SegmentRuleError(
                exc.message, file=file, line=line, field=name, hint=exc.hint, segment=segment
            ) from None
        threshold = PercentileThreshold(
            segment, name, str(cond["op"]), str(value), number, cond_line
        )
        found.append(threshold)
        return 0.0 if math.isnan(number) else number

    value = cond["value"]
    new_value = (
        _like(value, [resolve(v) for v in value]) if isinstance(value, list) else resolve(value)
    )
    resolved: Mapping[str, Any] = _like(cond, {**cond, "value": new_value})
    return resolved


class AudienceSegments:
    """A :class:`SegmentSet` bound to an audience.

    Evaluating a frame (or a profile) joins the derived fields by id first, then
    appends one membership column per exclusive-group label (``journey:vip``).
    ``names`` lists the rule segments, then those group columns.
    """

    def __init__(
        self,
        segments: SegmentSet,
        *,
        groups: Sequence[ExclusiveGroup] = (),
        derived: DerivedFields | None = None,
        id_field: str = "id",
    ) -> None:
        self.base = segments
        self.groups = tuple(groups)
        self.derived = derived
        self.id_field = id_field

    @property
    def segment_names(self) -> list[str]:
        """The rule-defined segments."""
        return list(self.base.names)

    @property
    def names(self) -> list[str]:
        """Rule segments, then exclusive-group columns."""
        return [*self.base.names, *(c for g in self.groups for c in g.columns)]

    def __getitem__(self, name: str) -> Any:
        return self.base[name]

    def fields_used(self) -> set[str]:
        """Every field some rule reads."""
        return set(self.base.fields_used())

    def enrich(self, df: pd.DataFrame) -> pd.DataFrame:
        """``df`` with the derived fields joined (see :meth:`DerivedFields.join`)."""
        return self.derived.join(df, self.id_field) if self.derived is not None else df

    def evaluate_frame(self, df: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
        """Segment and group membership per row of ``df``."""
        membership = self.base.evaluate_frame(self.enrich(df), as_of)
        if not self.groups:
            return membership
        return pd.concat([membership, exclusive_columns(membership, self.groups)], axis=1)

    def evaluate_profile(self, profile: Mapping[str, Any], as_of: datetime) -> dict[str, bool]:
        """Segment and group membership for one profile."""
        record = dict(profile)
        if self.derived is not None:
            record = self.derived.fill_records([record], self.id_field)[0]
        result = dict(self.base.evaluate_profile(record, as_of))
        member = [name for name, hit in result.items() if hit]
        for group in self.groups:
            label = group.label_of(member)
            result.update({group.column(x): x == label for x in group.labels})
        return result

    def explain_profile(
        self, name: str, profile: Mapping[str, Any], as_of: datetime
    ) -> list[dict[str, Any]]:
        """The conditions behind segment ``name``, tested on ``profile``."""
        return list(self.base.explain_profile(name, profile, as_of))


# --- computing the audience ------------------------------------------------------------------


@dataclass
class Audience:
    """Everything derived from the whole audience for one ``as_of``.

    ``population`` holds the profiles (their columns that rules and clusters read)
    with the derived fields joined (text-valued ones only when asked for, and
    cluster labels); ``definitions`` are the rules with percentile thresholds
    resolved; ``fitted`` names the cluster models fitted (not loaded).
    """

    population: pd.DataFrame
    derived: DerivedFields
    definitions: Mapping[str, Any]
    thresholds: list[PercentileThreshold]
    models: dict[str, ClusterModel]
    fitted: list[str]


def derive_audience(
    population: pd.DataFrame,
    document: SegmentDocument,
    *,
    id_field: str,
    as_of: datetime,
    events: pd.DataFrame | EventSummary | None = None,
    config: FeatureConfig | None = None,
    saved_models: Mapping[str, ClusterModel] | None = None,
    refit: bool = False,
    text_fields: bool = True,
) -> Audience:
    """Derive features (when there are events), assign clusters, resolve percentiles.

    ``population`` of the result has the text-valued derived fields (``rfm_segment``,
    ...) only with ``text_fields``: evaluating rules over it needs them, but they
    cost more than all numeric fields together, and :class:`DerivedFields` has them.

    ``events`` is an events frame (as :func:`segments.features.events.load_events` gives),
    or the summary of a file folded for exactly these profiles, in this order
    (:func:`segments.features.eventstream.stream_events`), with the same ``config``.
    A saved model is used as is (same labels as last time) unless ``refit``; a
    cluster without a saved model is fitted. A saved model whose spec changed is a
    :class:`ConfigError` asking for ``--refit``.
    """
    ids = pd.Index(population[id_field].astype(str), name=id_field)
    types: dict[str, str] = {}
    if events is not None:
        config = config or FeatureConfig.model_validate({})
        table = _features(population, ids, events, as_of, config)
        types.update(FEATURE_TYPES)
    else:
        table = pd.DataFrame(index=ids)
    features = {name for spec in document.clusters for name in spec.features}
    enriched = _with_derived(population, table, text_fields, features)
    models: dict[str, ClusterModel] = {}
    fitted: list[str] = []
    for spec in document.clusters:
        if spec.name in enriched.columns:
            raise ConfigError(
                f"cluster '{spec.name}' has the name of a profile field or feature",
                file=document.file,
                field=spec.name,
                hint="rename the cluster",
            )
        model = _cluster_model(spec, enriched, saved_models or {}, refit, document.file)
        if model is not (saved_models or {}).get(spec.name):
            fitted.append(spec.name)
        models[spec.name] = model
        table[spec.name] = model.assign(enriched).to_numpy(dtype=object)
        enriched[spec.name] = table[spec.name].array  # the same labels, not a second copy
        types[spec.name] = "string"
    definitions, thresholds = resolve_percentiles(document, enriched)
    derived = DerivedFields.compact(table, types)
    return Audience(enriched, derived, definitions, thresholds, models, fitted)


def _features(
    population: pd.DataFrame,
    ids: pd.Index,
    events: pd.DataFrame | EventSummary,
    as_of: datetime,
    config: FeatureConfig,
) -> pd.DataFrame:
    """The feature columns, indexed by id; a profile without an abandoned cart has None."""
    signed_up = population["signed_up_at"] if "signed_up_at" in population.columns else None
    if isinstance(events, pd.DataFrame):
        base = pd.DataFrame({"id": ids.to_numpy()})
        if signed_up is not None:
            base["signed_up_at"] = signed_up.to_numpy()
        features = derive_features(base, events, as_of, config).drop(columns=base.columns)
        carts = features["cart_items"].to_numpy(dtype=object).copy()
        empty = np.fromiter((not items for items in carts), dtype=bool, count=len(carts))
        carts[empty] = None  # no abandoned cart: missing, not an empty list
        features["cart_items"] = carts
    else:
        if events.n != len(ids):
            raise ValueError("the events summary is for another population")
        features = feature_frame(events, ids, signed_up, config)
    return features.set_axis(ids.rename("id"))


def _with_derived(
    population: pd.DataFrame, table: pd.DataFrame, text_fields: bool, needed: set[str]
) -> pd.DataFrame:
    """``population`` joined with ``table`` (same rows, same order), as :meth:`DerivedFields.join`
    would join it, without looking up any id: the table's columns are shared, not copied.
    Text-valued columns only with ``text_fields`` or when ``needed`` (cluster features)."""
    enriched = population.copy(deep=False)
    for column in table.columns:
        if not (text_fields or column in needed or not is_text(table[column])):
            continue
        values = pd.Series(table[column].array, index=population.index, copy=False)
        enriched[column] = own_or_derived(population, column, values)
    return enriched


def _cluster_model(
    spec: ClusterSpec,
    population: pd.DataFrame,
    saved: Mapping[str, ClusterModel],
    refit: bool,
    file: str | None,
) -> ClusterModel:
    model = saved.get(spec.name)
    if model is None or refit:
        return fit_clusters(population, spec)
    reason = stale_reason(model, spec)
    if reason is not None:
        raise ConfigError(
            f"the saved model of cluster '{spec.name}' is stale: {reason}",
            file=file,
            hint="build with --refit to fit it again",
            cluster=spec.name,
        )
    return model
