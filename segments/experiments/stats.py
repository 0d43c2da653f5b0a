"""Significance report for one A/B experiment.

:func:`ab_report` joins variant assignments (``id`` plus the experiment's
variant column, as :func:`segments.experiments.assign.assign_frame` produces) with
results (``id`` plus metric columns) and compares every variant with the
control, metric by metric. The choices, so nobody has to guess:

* **Who counts.** Recipients with a variant (not ``None``) and, when the
  assignments carry a ``holdout`` column, not held out (they got no email).
* **Result rows for unknown ids** are not used; they are counted and listed in
  ``unassigned_ids``. Result rows for known recipients outside the experiment
  are ignored and counted in ``outside_experiment``.
* **Assigned recipients without a result row** are *missing*, not zeros: they
  are counted and listed in ``missing_result_ids`` and left out of every rate,
  so rates are over recipients with results. A missing row usually means a
  broken export or join, and silently counting it as "did not open" would bias
  the variant that lost more rows. If your export omits non-events, fill zeros
  before calling. A NaN in a metric column is missing for that metric only.
* **Metric kind.** A numeric column whose values are all 0/1 (or bool) is
  binary (rate = share of 1s); any other numeric column is continuous (rate =
  mean, successes = sum).
* **Tests.** Binary: two-proportion z-test with the pooled standard error,
  Wald (unpooled) interval of the difference. Continuous: Welch's t-test
  (``scipy.stats.ttest_ind_from_stats``) and the Welch t interval. Intervals
  are at confidence ``1 - alpha``.
* **Multiple variants.** With more than one treatment, p-values are Holm
  adjusted per metric across the treatment-vs-control comparisons.
* **Sample size** per group to detect the observed lift at ``power`` (0.8)
  and ``alpha``, two-sided: for proportions
  ``(z_a*sqrt(2*pbar*(1-pbar)) + z_b*sqrt(p1*(1-p1) + p2*(1-p2)))**2 / d**2``,
  for means ``(z_a + z_b)**2 * (s1**2 + s2**2) / d**2``, rounded up.
* **Verdicts** per variant and metric: "winner" (significant positive lift
  after correction), "loser" (significant negative lift), "no significant
  difference yet". The overall verdict looks at the first metric, and is
  "sample ratio mismatch: do not trust" whenever the analysed counts do not fit
  the experiment's weights (chi-square, p < 0.001).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from segments.errors import ConfigError, ProfileDataError
from segments.experiments.assign import Experiment, SrmResult, sample_ratio_mismatch

__all__ = ["AbReport", "VariantMetric", "ab_report", "holm", "load_results"]

WINNER = "winner"
LOSER = "loser"
UNDECIDED = "no significant difference yet"
SRM_VERDICT = "sample ratio mismatch: do not trust"
_VARIANT = "__variant__"  # internal column; cannot clash with a metric name


@dataclass(frozen=True)
class VariantMetric:
    """One variant on one metric, compared with the control (lift fields None on the control)."""

    metric: str
    kind: str
    variant: str
    is_control: bool
    n: int
    successes: float
    rate: float | None
    rate_ci_low: float | None
    rate_ci_high: float | None
    abs_lift: float | None = None
    rel_lift: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    statistic: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    sample_size: int | None = None
    verdict: str | None = None


@dataclass(frozen=True)
class AbReport:
    """The comparison of every variant with the control, per metric."""

    experiment: str
    control: str
    variants: list[str]
    metrics: list[str]
    alpha: float
    rows: list[VariantMetric]
    srm: SrmResult | None
    verdict: str
    assigned: int
    analysed: int
    outside_experiment: int
    missing_result_ids: list[str]
    unassigned_ids: list[str]
    warnings: list[str]

    def to_rows(self) -> list[dict[str, Any]]:
        """One flat dict per variant and metric, for a table or a CSV."""
        return [asdict(row) for row in self.rows]

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-serializable (no NaN: undefined numbers are None)."""
        return asdict(self)


# -- loading -----------------------------------------------------------------


def load_results(path: str | Path) -> pd.DataFrame:
    """Read a results file (.csv or .parquet) with an ``id`` column, ids as strings."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".parquet", ".pq"}:
        raise ConfigError("results must be a .csv or .parquet file", file=str(path))
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype={"id": str})
        else:
            frame = pd.read_parquet(path)
    except OSError as exc:
        raise ProfileDataError(f"cannot read results: {exc.strerror}", file=str(path)) from None
    except ValueError:  # includes parser, decoding and Arrow errors
        raise ProfileDataError("results file cannot be parsed", file=str(path)) from None
    if "id" not in frame.columns:
        raise ProfileDataError(
            "results have no 'id' column",
            file=str(path),
            field="id",
            hint="name the recipient id column 'id'",
        )
    frame["id"] = _ids(frame["id"], file=str(path))
    return frame


def _ids(series: pd.Series, *, file: str | None = None) -> pd.Series:
    """Ids as strings; missing or duplicate ids are a data error (counted, not shown)."""
    missing = int(series.isna().sum())
    if missing:
        raise ProfileDataError("id is missing", file=file, field="id", rows=missing)
    ids = pd.Series([str(i) for i in series.tolist()], index=series.index, dtype=object)
    duplicates = int(ids.duplicated().sum())
    if duplicates:
        raise ProfileDataError("ids are not unique", file=file, field="id", rows=duplicates)
    return ids


# -- the report --------------------------------------------------------------


def ab_report(
    assignments: pd.DataFrame,
    results: pd.DataFrame,
    *,
    experiment: str | Experiment,
    metrics: Sequence[str] | None = None,
    control: str | None = None,
    weights: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
) -> AbReport:
    """Compare each variant of ``experiment`` with its control on each metric.

    ``experiment`` is the variant column's name, or the :class:`Experiment`
    itself, which supplies the weights (for the sample ratio check), the
    variant order and the control (its first variant). Given only a name, pass
    ``weights`` to get the sample ratio check; the control is then ``control``,
    else the first weight, else a variant named "control", else the first name.
    ``metrics`` defaults to every results column but ``id``.
    """
    key, weights = _experiment_key(experiment, weights, assignments)
    metrics = _metrics(results, metrics)
    warnings: list[str] = []
    frame, outside, missing, unassigned = _join(assignments, results, key)
    variants = _variant_order(frame[_VARIANT], weights)
    control = _control(experiment, weights, control, variants, warnings)
    variants = [control, *(v for v in variants if v != control)]
    rows: list[VariantMetric] = []
    for metric in metrics:
        rows += _metric_rows(frame, metric, variants, alpha, power)
    srm = None
    if weights is None:
        warnings.append("no weights given: sample ratio mismatch not checked")
    else:
        srm = sample_ratio_mismatch(frame[_VARIANT].value_counts().to_dict(), weights)
    return AbReport(
        experiment=key,
        control=control,
        variants=variants,
        metrics=list(metrics),
        alpha=alpha,
        rows=rows,
        srm=srm,
        verdict=_overall(rows, metrics[0], control, srm),
        assigned=len(frame) + len(missing),
        analysed=len(frame),
        outside_experiment=outside,
        missing_result_ids=missing,
        unassigned_ids=unassigned,
        warnings=warnings,
    )


def _experiment_key(
    experiment: str | Experiment,
    weights: Mapping[str, float] | None,
    assignments: pd.DataFrame,
) -> tuple[str, Mapping[str, float] | None]:
    if isinstance(experiment, Experiment):
        key, weights = experiment.key, weights or experiment.weights
    else:
        key = experiment
    for column in ("id", key):
        if column not in assignments.columns:
            raise ConfigError("assignments lack a column", field=column)
    return key, weights


def _join(
    assignments: pd.DataFrame, results: pd.DataFrame, key: str
) -> tuple[pd.DataFrame, int, list[str], list[str]]:
    """Recipients in the experiment with results; and the counts of those left out."""
    assigned_ids = _ids(assignments["id"])
    assigned = pd.DataFrame({"id": assigned_ids, _VARIANT: assignments[key]})
    if "holdout" in assignments.columns:
        assigned = assigned[~assignments["holdout"].to_numpy(dtype=bool, na_value=False)]
    members = assigned[assigned[_VARIANT].notna()]
    res = results.drop(columns="id").assign(id=_ids(results["id"]))
    merged = members.merge(res, on="id", how="left", indicator=True)
    found = (merged.pop("_merge") == "both").to_numpy()
    known = set(assigned_ids.tolist())
    member_ids = set(members["id"].tolist())
    unassigned = [i for i in res["id"].tolist() if i not in known]
    outside = sum(1 for i in res["id"].tolist() if i in known and i not in member_ids)
    missing = merged.loc[~found, "id"].tolist()
    frame = merged[found].reset_index(drop=True)
    frame[_VARIANT] = frame[_VARIANT].astype(str)
    return frame, outside, missing, unassigned


def _variant_order(observed: pd.Series, weights: Mapping[str, float] | None) -> list[str]:
    seen = sorted(set(observed.tolist()))
    if weights is None:
        return seen
    unknown = [v for v in seen if v not in weights]
    if unknown:
        raise ConfigError(
            "assignments hold a variant the experiment does not declare",
            field="variant",
            variant=unknown[0],
        )
    return list(weights)


def _control(
    experiment: str | Experiment,
    weights: Mapping[str, float] | None,
    control: str | None,
    variants: list[str],
    warnings: list[str],
) -> str:
    if control is None:
        if isinstance(experiment, Experiment):
            control = experiment.control.name
        elif weights:
            control = next(iter(weights))
        elif "control" in variants:
            control = "control"
        elif variants:
            control = variants[0]
            warnings.append(f"control not given: using {control!r}")
        else:
            raise ConfigError("no recipient of the experiment has results", field="control")
    if control not in variants:
        raise ConfigError("control is not a variant of the experiment", field="control")
    return control


def _metrics(results: pd.DataFrame, metrics: Sequence[str] | None) -> list[str]:
    if "id" not in results.columns:
        raise ProfileDataError("results have no 'id' column", field="id")
    chosen = [c for c in results.columns if c != "id"] if metrics is None else list(metrics)
    if not chosen:
        raise ConfigError("no metric to report", field="metrics")
    for metric in chosen:
        if metric not in results.columns or metric == "id":
            raise ConfigError("results have no such metric column", field=metric)
        if not pd.api.types.is_numeric_dtype(results[metric]):
            raise ConfigError("metric column is not numeric", field=metric)
    return chosen


# -- statistics --------------------------------------------------------------


@dataclass(frozen=True)
class _Group:
    n: int
    total: float
    mean: float
    var: float  # sample variance (ddof=1) for continuous, p(1-p) for binary


def _group(values: np.ndarray, binary: bool) -> _Group:
    n = int(values.size)
    if n == 0:
        return _Group(0, 0.0, math.nan, math.nan)
    mean = float(values.mean())
    if binary:
        return _Group(n, float(values.sum()), mean, mean * (1 - mean))
    var = float(values.var(ddof=1)) if n > 1 else math.nan
    return _Group(n, float(values.sum()), mean, var)


def _metric_rows(
    frame: pd.DataFrame, metric: str, variants: list[str], alpha: float, power: float
) -> list[VariantMetric]:
    column = frame[metric].to_numpy(dtype=float, na_value=np.nan)
    present = ~np.isnan(column)
    binary = bool(np.isin(column[present], (0.0, 1.0)).all())
    kind = "binary" if binary else "continuous"
    labels = frame[_VARIANT].to_numpy()
    groups = {v: _group(column[present & (labels == v)], binary) for v in variants}
    control = groups[variants[0]]
    compare = _compare_binary if binary else _compare_continuous
    tests = {v: compare(control, groups[v], alpha, power) for v in variants[1:]}
    adjusted = _adjust({v: t["p_value"] for v, t in tests.items()})
    rows = [_row(metric, kind, variants[0], control, alpha, binary, None)]
    for v in variants[1:]:
        test = {**tests[v], "p_adjusted": adjusted[v]}
        test["verdict"] = _verdict(test["abs_lift"], adjusted[v], alpha)
        rows.append(_row(metric, kind, v, groups[v], alpha, binary, test))
    return rows


def _row(
    metric: str,
    kind: str,
    variant: str,
    group: _Group,
    alpha: float,
    binary: bool,
    test: dict[str, Any] | None,
) -> VariantMetric:
    """A control row when ``test`` is None, else a treatment row."""
    low, high = _rate_interval(group, alpha, binary)
    return VariantMetric(
        metric=metric,
        kind=kind,
        variant=variant,
        is_control=test is None,
        n=group.n,
        successes=group.total,
        rate=None if group.n == 0 else group.mean,
        rate_ci_low=low,
        rate_ci_high=high,
        **(test or {}),
    )


def _rate_interval(group: _Group, alpha: float, binary: bool) -> tuple[float | None, float | None]:
    """Interval of one group's rate, for the chart: Wald for shares, t for means."""
    if group.n < (1 if binary else 2):
        return None, None
    crit = stats.norm.ppf(1 - alpha / 2) if binary else stats.t.ppf(1 - alpha / 2, group.n - 1)
    half = float(crit * math.sqrt(group.var / group.n))
    return group.mean - half, group.mean + half


def _compare_binary(c: _Group, t: _Group, alpha: float, power: float) -> dict[str, Any]:
    if c.n == 0 or t.n == 0:
        return _no_test()
    diff = t.mean - c.mean
    z_a, z_b = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    se = math.sqrt(c.var / c.n + t.var / t.n)
    pooled = (c.total + t.total) / (c.n + t.n)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / c.n + 1 / t.n))
    z = diff / se0 if se0 > 0 else 0.0
    pbar = (c.mean + t.mean) / 2
    spread = z_a * math.sqrt(2 * pbar * (1 - pbar)) + z_b * math.sqrt(c.var + t.var)
    return _test(c, diff, diff - z_a * se, diff + z_a * se, z, 2 * stats.norm.sf(abs(z)), spread**2)


def _compare_continuous(c: _Group, t: _Group, alpha: float, power: float) -> dict[str, Any]:
    if c.n < 2 or t.n < 2:
        return _no_test()
    diff = t.mean - c.mean
    se = math.sqrt(c.var / c.n + t.var / t.n)
    z_a, z_b = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    effort = (z_a + z_b) ** 2 * (c.var + t.var)
    if se == 0:
        return _test(c, diff, diff, diff, None, 1.0 if diff == 0 else 0.0, effort)
    result = stats.ttest_ind_from_stats(
        t.mean, math.sqrt(t.var), t.n, c.mean, math.sqrt(c.var), c.n, equal_var=False
    )
    df = se**4 / ((c.var / c.n) ** 2 / (c.n - 1) + (t.var / t.n) ** 2 / (t.n - 1))
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    return _test(c, diff, diff - half, diff + half, result.statistic, result.pvalue, effort)


def _test(
    c: _Group,
    diff: float,
    low: float,
    high: float,
    statistic: float | None,
    p_value: float,
    effort: float,
) -> dict[str, Any]:
    """Package one comparison; ``effort / diff**2`` is the sample size per group."""
    return {
        "abs_lift": float(diff),
        "rel_lift": float(diff / c.mean) if c.mean else None,
        "ci_low": float(low),
        "ci_high": float(high),
        "statistic": None if statistic is None else float(statistic),
        "p_value": float(p_value),
        "sample_size": math.ceil(effort / diff**2) if diff else None,
    }


def _no_test() -> dict[str, Any]:
    keys = ("abs_lift", "rel_lift", "ci_low", "ci_high", "statistic", "p_value", "sample_size")
    return dict.fromkeys(keys)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _adjust(p_values: dict[str, float | None]) -> dict[str, float | None]:
    tested = [v for v, p in p_values.items() if p is not None]
    if len(tested) < 2:
        return dict(p_values)
    adjusted = holm([p_values[v] for v in tested])  # type: ignore[misc]
    return {v: (adjusted[tested.index(v)] if v in tested else None) for v in p_values}


def _verdict(lift: float | None, p_adjusted: float | None, alpha: float) -> str:
    if lift is None or p_adjusted is None or p_adjusted >= alpha or lift == 0:
        return UNDECIDED
    return WINNER if lift > 0 else LOSER


def _overall(rows: list[VariantMetric], primary: str, control: str, srm: SrmResult | None) -> str:
    if srm is not None and srm.mismatch:
        return SRM_VERDICT
    treated = [r for r in rows if r.metric == primary and not r.is_control]
    winners = [r for r in treated if r.verdict == WINNER]
    if winners:
        return f"winner: {max(winners, key=lambda r: r.abs_lift or 0.0).variant}"
    if treated and all(r.verdict == LOSER for r in treated):
        return f"winner: {control}"
    return UNDECIDED
