"""Deterministic A/B variant assignment.

An experiment splits its audience into variants (the first variant is the
control). Assignment is a pure function of the recipient id and the experiment
configuration, so it is stable across runs and machines, and a recipient's
variant never depends on who else is in the audience.

The algorithm, precisely enough to reproduce it in any language::

    bucket(salt, id):
        digest = SHA-256 of the UTF-8 bytes of f"{salt}:{id}"
        n      = the first 8 bytes of digest, read as a big-endian unsigned integer
        return (n >> 11) / 2**53

``(n >> 11) / 2**53`` is ``n / 2**64`` rounded *down* to 53 bits: it is exact
in a double and never reaches 1.0 (plain ``n / 2**64`` rounds to nearest and
gives 1.0 for the top 1024 values of ``n``). Python's ``hash()`` is never used:
it is salted per process.

For each experiment E, in the order the experiments are declared, and a
recipient r:

1. Audience. If E names an ``audience`` segment and r is not in it, r is
   outside E.
2. Position. Without a layer, ``pos = bucket(E.key, r)``. With a layer L, the
   experiments declaring L split the layer bucket ``b = bucket(L, r)`` into
   contiguous slices ``[lo, hi)``, one per experiment in declared order, sized
   in proportion to ``layer_share`` (default 1 each, i.e. equal). r is in E
   only if ``lo <= b < hi``; then ``pos = (b - lo) / (hi - lo)``. Experiments
   sharing a layer are therefore mutually exclusive. The slices are fixed: a
   recipient in E's slice but outside E's audience gets no experiment of that
   layer (this keeps every assignment stable when audiences change).
3. Holdout. If ``E.holdout > 0`` and ``bucket(f"{E.key}:holdout", r) <
   E.holdout``, r is held out of E: r gets no variant and no email at all.
4. Variant. With weights normalized to sum 1, the cumulative edges
   ``c_i = (w_1 + ... + w_i) / W`` cut [0, 1) into contiguous ranges in variant
   order; r gets the first variant i with ``pos < c_i``.

Changing the weights moves only the recipients whose position crosses a
moved edge. A recipient outside an experiment (or held out of it) gets
``None`` for it; a template must then show its default content, which should be
the control's.
"""

from __future__ import annotations

import hashlib
import math
import re
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from scipy import stats

from segments.errors import ConfigError, ProfileDataError

__all__ = [
    "HOLDOUT_SUFFIX",
    "Assignment",
    "Experiment",
    "SrmResult",
    "Variant",
    "assign_frame",
    "assign_one",
    "bucket",
    "buckets",
    "in_sample",
    "parse_experiments",
    "parse_share",
    "sample_mask",
    "sample_ratio_mismatch",
    "validate_experiments",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_RESERVED = frozenset({"id", "holdout"})
HOLDOUT_SUFFIX = "__holdout"
SRM_THRESHOLD = 0.001


class Variant(BaseModel):
    """One arm of an experiment: its traffic weight and the content it overrides."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    subject: str | None = None
    preheader: str | None = None
    tokens: dict[str, Any] = {}
    blocks: dict[str, str | None] = {}


class Experiment(BaseModel):
    """An A/B(/n) test; ``variants[0]`` is the control."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=_NAME.pattern)
    variants: list[Variant] = Field(min_length=2)
    audience: str | None = None
    holdout: float = Field(default=0.0, ge=0.0, le=0.9)
    layer: str | None = Field(default=None, pattern=_NAME.pattern)
    layer_share: float | None = Field(default=None, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _check(self) -> Experiment:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique")
        if self.key in _RESERVED or self.key.endswith(HOLDOUT_SUFFIX):
            raise ValueError(f"key may not be 'id', 'holdout' or end in '{HOLDOUT_SUFFIX}'")
        if self.layer_share is not None and self.layer is None:
            raise ValueError("layer_share needs a layer")
        return self

    @property
    def control(self) -> Variant:
        """The first variant."""
        return self.variants[0]

    @property
    def weights(self) -> dict[str, float]:
        """Variant name to weight, in variant order."""
        return {v.name: v.weight for v in self.variants}

    def variant(self, name: str | None) -> Variant | None:
        """The variant called ``name``; ``None`` for ``None`` (outside the experiment)."""
        if name is None:
            return None
        for candidate in self.variants:
            if candidate.name == name:
                return candidate
        raise KeyError(name)


@dataclass(frozen=True)
class Assignment:
    """One recipient's assignment: a variant (or None) per experiment key."""

    variants: dict[str, str | None]
    holdout_of: list[str]

    @property
    def is_holdout(self) -> bool:
        """True if the recipient is held out of any experiment, so gets no email."""
        return bool(self.holdout_of)


@dataclass(frozen=True)
class SrmResult:
    """Chi-square goodness-of-fit of observed variant counts against the weights."""

    chi2: float
    p_value: float
    mismatch: bool


# -- hashing -----------------------------------------------------------------


def bucket(salt: str, recipient_id: str) -> float:
    """The recipient's position in [0, 1) for ``salt`` (see the module docstring)."""
    digest = hashlib.sha256(f"{salt}:{recipient_id}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / 2**53


def buckets(salt: str, recipient_ids: Sequence[str]) -> np.ndarray:
    """Vectorized :func:`bucket`: a float64 array, bit-identical to the scalar."""
    prefix = f"{salt}:".encode()
    sha256 = hashlib.sha256
    raw = b"".join([sha256(prefix + i.encode()).digest()[:8] for i in recipient_ids])
    top = np.frombuffer(raw, dtype=">u8") >> np.uint64(11)
    return top.astype(np.float64) / 2.0**53


# -- configuration -----------------------------------------------------------


def parse_experiments(data: Any, *, file: str | None = None) -> list[Experiment]:
    """Validate a list of experiment mappings (e.g. from the campaign YAML).

    Pydantic errors become a :class:`ConfigError` at the line of the offending
    key when ``data`` came from ``segments.yamlsrc`` (LineDict / LineList).
    """
    if not isinstance(data, list):
        raise ConfigError("experiments must be a list", file=file, field="experiments")
    experiments = []
    for index, item in enumerate(data):
        try:
            experiments.append(Experiment.model_validate(item))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = (index, *err["loc"])
            path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
            raise ConfigError(
                err["msg"], file=file, line=_line_of(data, loc), field="experiments" + path
            ) from None
    validate_experiments(experiments, file=file)
    return experiments


def _line_of(node: Any, loc: tuple[Any, ...]) -> int | None:
    """The line of the deepest node on ``loc`` that knows its line."""
    line = getattr(node, "line", None) or None
    for part in loc:
        if isinstance(part, str) and hasattr(node, "line_of") and part in node:
            line = node.line_of(part)
        elif isinstance(part, int) and hasattr(node, "item_lines") and part < len(node):
            line = node.item_lines[part]
        else:
            break
        node = node[part]
    return line


def validate_experiments(experiments: Sequence[Experiment], *, file: str | None = None) -> None:
    """Check what one experiment alone cannot: unique keys, no salt collisions."""
    keys = [e.key for e in experiments]
    for index, key in enumerate(keys):
        if key in keys[:index]:
            raise ConfigError(
                "duplicate experiment key", file=file, field=f"experiments[{index}].key"
            )
    for index, exp in enumerate(experiments):
        if exp.layer is not None and exp.layer in keys:
            raise ConfigError(
                "a layer may not share its name with an experiment key",
                file=file,
                field=f"experiments[{index}].layer",
                hint="both would hash with the same salt, so their splits would correlate",
            )


@dataclass(frozen=True)
class _Plan:
    """Everything the scalar and vectorized paths share for one experiment."""

    key: str
    salt: str
    lo: float
    hi: float
    edges: tuple[float, ...]
    names: tuple[str, ...]
    holdout: float
    audience: str | None


def _edges(weights: Sequence[float]) -> tuple[float, ...]:
    total = math.fsum(weights)
    edges = [c / total for c in accumulate(weights)]
    edges[-1] = 1.0
    return tuple(edges)


def _plans(experiments: Sequence[Experiment]) -> list[_Plan]:
    validate_experiments(experiments)
    layers: dict[str, list[Experiment]] = {}
    for exp in experiments:
        if exp.layer is not None:
            layers.setdefault(exp.layer, []).append(exp)
    slices: dict[str, tuple[float, float]] = {}
    for members in layers.values():
        edges = _edges([e.layer_share or 1.0 for e in members])
        for exp, lo, hi in zip(members, (0.0, *edges[:-1]), edges, strict=True):
            slices[exp.key] = (lo, hi)
    return [
        _Plan(
            key=exp.key,
            salt=exp.layer or exp.key,
            lo=slices.get(exp.key, (0.0, 1.0))[0],
            hi=slices.get(exp.key, (0.0, 1.0))[1],
            edges=_edges([v.weight for v in exp.variants]),
            names=tuple(v.name for v in exp.variants),
            holdout=exp.holdout,
            audience=exp.audience,
        )
        for exp in experiments
    ]


# -- assignment --------------------------------------------------------------


def assign_one(
    experiments: Sequence[Experiment],
    recipient_id: str,
    segments: Set[str] = frozenset(),
) -> Assignment:
    """Assign one recipient, who belongs to the named ``segments``, to every experiment."""
    variants: dict[str, str | None] = {}
    holdout_of: list[str] = []
    for plan in _plans(experiments):
        variants[plan.key] = None
        if plan.audience is not None and plan.audience not in segments:
            continue
        b = bucket(plan.salt, recipient_id)
        if not plan.lo <= b < plan.hi:
            continue
        if plan.holdout > 0 and bucket(f"{plan.key}:holdout", recipient_id) < plan.holdout:
            holdout_of.append(plan.key)
            continue
        pos = (b - plan.lo) / (plan.hi - plan.lo)
        index = min(bisect_right(plan.edges, pos), len(plan.names) - 1)
        variants[plan.key] = plan.names[index]
    return Assignment(variants=variants, holdout_of=holdout_of)


def assign_frame(
    experiments: Sequence[Experiment],
    ids: pd.Series,
    segments: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Vectorized :func:`assign_one` over a column of recipient ids.

    ``segments`` holds one boolean column per segment name, on the same index
    as ``ids`` (missing means "not a member"). The result, on that index, has
    ``id`` (the ids as hashed, i.e. as strings), one column per experiment key
    (variant name or None, object dtype), a bool ``f"{key}__holdout"`` per
    experiment, and a bool ``holdout``: held out of any experiment, so no email.
    """
    keys = _id_strings(ids)
    cache: dict[str, np.ndarray] = {}

    def cached(salt: str) -> np.ndarray:
        if salt not in cache:
            cache[salt] = buckets(salt, keys)
        return cache[salt]

    columns: dict[str, Any] = {"id": pd.Series(keys, index=ids.index, dtype=object)}
    any_holdout = np.zeros(len(keys), dtype=bool)
    for plan in _plans(experiments):
        names, held = _assign_plan(plan, cached, _audience_mask(plan, segments, ids))
        columns[plan.key] = pd.Series(names, index=ids.index, dtype=object)
        columns[plan.key + HOLDOUT_SUFFIX] = pd.Series(held, index=ids.index, dtype=bool)
        any_holdout |= held
    columns["holdout"] = pd.Series(any_holdout, index=ids.index, dtype=bool)
    return pd.DataFrame(columns, index=ids.index)


def _assign_plan(
    plan: _Plan, cached: Callable[[str], np.ndarray], member: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    b = cached(plan.salt)
    member = member & (plan.lo <= b) & (b < plan.hi)
    held = np.zeros(len(b), dtype=bool)
    if plan.holdout > 0:
        held = member & (cached(f"{plan.key}:holdout") < plan.holdout)
    pos = (b - plan.lo) / (plan.hi - plan.lo)
    index = np.minimum(
        np.searchsorted(np.asarray(plan.edges), pos, side="right"), len(plan.names) - 1
    )
    labels = np.array([*plan.names, None], dtype=object)
    index = np.where(member & ~held, index, len(plan.names))
    return labels[index], held


def _audience_mask(plan: _Plan, segments: pd.DataFrame | None, ids: pd.Series) -> np.ndarray:
    if plan.audience is None:
        return np.ones(len(ids), dtype=bool)
    if segments is None or plan.audience not in segments.columns:
        raise ConfigError(
            "experiment audience names an unknown segment",
            field=f"experiments.{plan.key}.audience",
            segment=plan.audience,
        )
    if not segments.index.equals(ids.index):
        raise ValueError("segments must be on the same index as ids")
    mask: np.ndarray = segments[plan.audience].to_numpy(dtype=bool, na_value=False)
    return mask


def _id_strings(ids: pd.Series) -> list[str]:
    missing = ids.isna()
    if missing.any():
        raise ProfileDataError("recipient id is missing", field="id", rows=int(missing.sum()))
    return [str(i) for i in ids.tolist()]


# -- sample ratio mismatch ---------------------------------------------------


def sample_ratio_mismatch(
    counts: Mapping[str, int],
    weights: Mapping[str, float],
    *,
    threshold: float = SRM_THRESHOLD,
) -> SrmResult:
    """Test whether observed variant counts fit the configured weights.

    A variant missing from ``counts`` counts as 0. ``mismatch`` is ``p <
    threshold`` (0.001, the customary strict level: SRM means a broken
    assignment or logging pipeline, not a chance finding).
    """
    unknown = set(counts) - set(weights)
    if unknown:
        raise ValueError(f"counts name variants without a weight: {sorted(unknown)}")
    observed = np.array([counts.get(name, 0) for name in weights], dtype=float)
    total = observed.sum()
    if total == 0:
        return SrmResult(chi2=0.0, p_value=1.0, mismatch=False)
    share = np.array(list(weights.values()), dtype=float)
    expected = total * share / share.sum()
    chi2, p_value = stats.chisquare(observed, expected)
    return SrmResult(chi2=float(chi2), p_value=float(p_value), mismatch=bool(p_value < threshold))


# -- deterministic samples ---------------------------------------------------


def in_sample(recipient_id: str, share: float, salt: str = "sample") -> bool:
    """Whether the recipient falls in a deterministic ``share`` of the audience.

    Samples are nested: everyone in a 10% sample is in the 20% sample.
    """
    return bucket(salt, recipient_id) < share


def sample_mask(ids: pd.Series, share: float, salt: str = "sample") -> pd.Series:
    """Vectorized :func:`in_sample`: a bool Series on the index of ``ids``."""
    return pd.Series(buckets(salt, _id_strings(ids)) < share, index=ids.index, dtype=bool)


def parse_share(text: str, *, field: str = "sample") -> float:
    """Parse ``"20%"`` or ``"0.2"`` into a share in [0, 1]."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ConfigError(
            "share must be a number or a percentage", field=field, hint="e.g. 20% or 0.2"
        ) from None
    if not 0.0 <= value <= 1.0:
        raise ConfigError("share must be between 0% and 100%", field=field)
    return value
