"""Notice when a feature's distribution moves between builds.

:func:`feature_distributions` reduces each numeric column to a small sketch that can
be saved as JSON next to a build; :func:`compare_distributions` runs a two-sample
Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``) between a saved sketch and a
new build's values and returns a :class:`DriftWarning` per column whose KS
statistic exceeds the threshold. Warnings are findings, not errors: the caller
decides (``--strict`` makes them errors).

The sketch's ``sample`` is the column's sorted finite values when there are at most
:data:`SKETCH_SIZE`, otherwise the values at the midpoints of :data:`SKETCH_SIZE`
equal quantile bins (inverted CDF, so every value occurs in the data). It depends
only on the multiset of values, not their order, so the same data always gives the
same sketch. Booleans count as 0/1; missing and infinite values are counted in
``missing`` and left out.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from segments.errors import ConfigError

SKETCH_SIZE = 1000
SKETCH_VERSION = 1


@dataclass(frozen=True)
class DriftWarning:
    """A column whose new values differ from the saved distribution."""

    field: str
    ks_statistic: float
    p_value: float

    def __str__(self) -> str:
        return (
            f"distribution of '{self.field}' shifted "
            f"(KS statistic {self.ks_statistic:.3f}, p-value {self.p_value:.3g})"
        )


def feature_distributions(df: pd.DataFrame, columns: list[str]) -> dict[str, Any]:
    """A JSON-serializable sketch of each column: counts, min, max, mean and a sample."""
    return {
        "version": SKETCH_VERSION,
        "columns": {column: _sketch(_finite_values(df, column), len(df)) for column in columns},
    }


def compare_distributions(
    old: dict[str, Any],
    new_df: pd.DataFrame,
    columns: list[str],
    threshold: float = 0.1,
    *,
    alpha: float | None = None,
) -> list[DriftWarning]:
    """Drift warnings, in ``columns`` order, for KS statistic > ``threshold``.

    The saved sample is compared with all of the new finite values. On small
    samples the statistic is noisy (50 rows from the very same data can exceed
    0.1); ``alpha`` additionally requires ``p_value < alpha``. A column with values
    on one side and none on the other reports statistic 1.0 and p-value 0.0; a
    column empty on both sides is not reported.
    """
    saved = old.get("columns", {}) if old.get("version") == SKETCH_VERSION else None
    if saved is None:
        raise ConfigError("unknown distribution sketch version", hint="save a new baseline")
    found = []
    for column in columns:
        if column not in saved:
            raise ConfigError(
                "no saved distribution for this column", field=column, hint="save a new baseline"
            )
        before = np.asarray(saved[column]["sample"], dtype=np.float64)
        result = _ks(before, _finite_values(new_df, column))
        if result is None or result[0] <= threshold:
            continue
        if alpha is None or result[1] < alpha:
            found.append(DriftWarning(field=column, ks_statistic=result[0], p_value=result[1]))
    return found


def _finite_values(df: pd.DataFrame, column: str) -> np.ndarray:
    if column not in df.columns:
        raise ConfigError("drift column is not a profile column", field=column)
    series = df[column]
    if pd.api.types.is_bool_dtype(series.dtype):
        series = series.astype("float64")
    if not pd.api.types.is_numeric_dtype(series.dtype):
        raise ConfigError("drift needs a numeric column", field=column)
    values = np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    finite: np.ndarray = values[np.isfinite(values)]
    return finite


def _sketch(values: np.ndarray, rows: int) -> dict[str, Any]:
    values = np.sort(values)
    sample = values
    if values.size > SKETCH_SIZE:
        midpoints = (np.arange(SKETCH_SIZE) + 0.5) / SKETCH_SIZE
        sample = np.quantile(values, midpoints, method="inverted_cdf")
    empty = values.size == 0
    return {
        "count": int(values.size),
        "missing": rows - int(values.size),
        "min": None if empty else float(values[0]),
        "max": None if empty else float(values[-1]),
        "mean": None if empty else float(values.mean()),
        "sample": [float(v) for v in sample],
    }


def _ks(before: np.ndarray, after: np.ndarray) -> tuple[float, float] | None:
    if before.size == 0 and after.size == 0:
        return None
    if before.size == 0 or after.size == 0:
        return (1.0, 0.0)
    with warnings.catch_warnings():
        # scipy falls back from the exact to the asymptotic p-value and says so.
        warnings.filterwarnings("ignore", "ks_2samp: Exact calculation", RuntimeWarning)
        result = stats.ks_2samp(before, after)
    return float(result.statistic), float(result.pvalue)
