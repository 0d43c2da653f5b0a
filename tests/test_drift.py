"""Distribution sketches and KS drift warnings."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from segments.audience.drift import (
    SKETCH_SIZE,
    DriftWarning,
    compare_distributions,
    feature_distributions,
)
from segments.errors import ConfigError


def audience(seed: int, shift: float = 0.0, rows: int = 5000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "monetary_total": rng.gamma(2.0, 50.0, rows) + shift,
            "frequency": rng.poisson(3, rows),
            "cart_abandoned": rng.random(rows) < 0.2,
        }
    )


COLUMNS = ["monetary_total", "frequency", "cart_abandoned"]


def test_no_warning_when_distribution_holds() -> None:
    baseline = feature_distributions(audience(1), COLUMNS)
    assert compare_distributions(baseline, audience(2), COLUMNS) == []


def test_warning_when_distribution_shifts() -> None:
    baseline = feature_distributions(audience(1), COLUMNS)
    warnings = compare_distributions(baseline, audience(2, shift=40.0), COLUMNS)
    assert [w.field for w in warnings] == ["monetary_total"]
    assert warnings[0].ks_statistic > 0.1
    assert warnings[0].p_value < 1e-6
    assert "monetary_total" in str(warnings[0])


def test_threshold_and_alpha() -> None:
    baseline = feature_distributions(audience(1), COLUMNS)
    shifted = audience(2, shift=40.0)
    assert compare_distributions(baseline, shifted, COLUMNS, threshold=0.9) == []
    small = audience(2, rows=40)
    noisy = compare_distributions(baseline, small, COLUMNS, threshold=0.05)
    assert noisy  # forty rows of the same data still move the statistic
    assert compare_distributions(baseline, small, COLUMNS, threshold=0.05, alpha=0.001) == []


def test_sketch_is_compact_json_and_order_free() -> None:
    frame = audience(1)
    frame.loc[:9, "monetary_total"] = np.nan
    sketch = feature_distributions(frame, COLUMNS)
    shuffled = feature_distributions(frame.sample(frac=1.0, random_state=0), COLUMNS)
    text = json.dumps(sketch, sort_keys=True, allow_nan=False)
    assert text == json.dumps(shuffled, sort_keys=True, allow_nan=False)
    money = sketch["columns"]["monetary_total"]
    assert (money["count"], money["missing"]) == (4990, 10)
    assert len(money["sample"]) == SKETCH_SIZE
    assert money["sample"] == sorted(money["sample"])
    assert set(sketch["columns"]["cart_abandoned"]["sample"]) == {0.0, 1.0}


def test_small_columns_keep_every_value() -> None:
    sketch = feature_distributions(pd.DataFrame({"x": [3.0, 1.0, np.inf, 2.0]}), ["x"])
    assert sketch["columns"]["x"]["sample"] == [1.0, 2.0, 3.0]
    assert sketch["columns"]["x"]["missing"] == 1


def test_column_emptied_is_reported() -> None:
    baseline = feature_distributions(pd.DataFrame({"x": [1.0, 2.0, 3.0]}), ["x"])
    empty = pd.DataFrame({"x": [np.nan, np.nan]})
    assert compare_distributions(baseline, empty, ["x"]) == [DriftWarning("x", 1.0, 0.0)]
    blank = feature_distributions(empty, ["x"])
    assert compare_distributions(blank, empty, ["x"]) == []


def test_errors() -> None:
    baseline = feature_distributions(audience(1), ["frequency"])
    with pytest.raises(ConfigError) as info:
        compare_distributions(baseline, audience(2), ["monetary_total"])
    assert info.value.field == "monetary_total"
    with pytest.raises(ConfigError):
        feature_distributions(pd.DataFrame({"city": ["a"]}), ["city"])
    with pytest.raises(ConfigError):
        compare_distributions({"version": 99}, audience(2), ["frequency"])
