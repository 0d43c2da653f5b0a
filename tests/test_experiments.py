"""Deterministic variant assignment: fixed values, stability, splits, layers, holdout, SRM."""

from __future__ import annotations

import hashlib
import math
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segments.errors import ConfigError, ProfileDataError
from segments.experiments.assign import (
    Experiment,
    Variant,
    assign_frame,
    assign_one,
    bucket,
    buckets,
    in_sample,
    parse_experiments,
    parse_share,
    sample_mask,
    sample_ratio_mismatch,
)
from segments.yamlsrc import load_yaml_text
from tests.conftest import examples

IDS_20K = pd.Series([f"r-{i:06d}" for i in range(20_000)])


def make(key: str, weights: list[float], **kwargs: object) -> Experiment:
    variants = [Variant(name=f"v{i}", weight=w) for i, w in enumerate(weights)]
    return Experiment(key=key, variants=variants, **kwargs)  # type: ignore[arg-type]


def reference_bucket(salt: str, recipient_id: str) -> float:
    """The documented algorithm, written out independently."""
    digest = hashlib.sha256(f"{salt}:{recipient_id}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / 2**53


def binomial_tolerance(p: float, n: int) -> float:
    return 5 * math.sqrt(p * (1 - p) / n) + 1e-9


# -- fixed values ---------------------------------------------------------------

WELCOME = Experiment(
    key="welcome-subject",
    variants=[Variant(name="control"), Variant(name="short"), Variant(name="emoji", weight=2)],
)

# Computed once; a change here means every running experiment reshuffles.
FIXED = [
    ("1042", 0.318967, "short"),
    ("99999", 0.114883, "control"),
    ("bob", 0.967916, "emoji"),
    ("r-000002", 0.157825, "control"),
    ("r-000003", 0.665753, "emoji"),
    ("Ünïcødé-7", 0.452908, "short"),
]


@pytest.mark.parametrize(("recipient", "expected_bucket", "variant"), FIXED)
def test_fixed_assignments(recipient: str, expected_bucket: float, variant: str) -> None:
    assert round(bucket("welcome-subject", recipient), 6) == expected_bucket
    assert bucket("welcome-subject", recipient) == reference_bucket("welcome-subject", recipient)
    assert assign_one([WELCOME], recipient).variants == {"welcome-subject": variant}


def test_vector_buckets_are_bit_identical_to_scalar() -> None:
    ids = [r for r, _, _ in FIXED] + ["", "a:b", "x" * 500]
    vector = buckets("salt", ids)
    assert vector.dtype == np.float64
    assert vector.tolist() == [bucket("salt", i) for i in ids]
    assert ((vector >= 0) & (vector < 1)).all()


def test_stable_across_processes_and_hash_seeds() -> None:
    ids = ["1042", "bob", "Ünïcødé-7"]
    code = (
        f"from segments.experiments.assign import bucket; print([bucket('s', i) for i in {ids!r}])"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[1],
        env={"PYTHONHASHSEED": "12345", "PYTHONUTF8": "1"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert other == f"{[bucket('s', i) for i in ids]}\n"


# -- properties of the split ----------------------------------------------------------


def test_independent_of_other_recipients() -> None:
    exps = [
        make("a", [1, 1], holdout=0.1),
        make("b", [1, 2, 3], layer="L"),
        make("c", [1, 1], layer="L"),
    ]
    full = assign_frame(exps, IDS_20K).set_index("id")
    subset = IDS_20K.iloc[::7].reset_index(drop=True)
    extra = pd.concat([subset, pd.Series([f"new-{i}" for i in range(500)])], ignore_index=True)
    for ids in (subset, extra.sample(frac=1, random_state=3)):
        part = assign_frame(exps, ids).set_index("id")
        shared = part.index.intersection(full.index)
        pd.testing.assert_frame_equal(part.loc[shared], full.loc[shared])


def test_weight_change_moves_only_recipients_across_a_boundary() -> None:
    before = assign_frame([make("exp", [1, 1])], IDS_20K)["exp"]
    after = assign_frame([make("exp", [3, 2])], IDS_20K)["exp"]
    b = buckets("exp", IDS_20K.tolist())
    moved = (before != after).to_numpy()
    assert (moved == ((b >= 0.5) & (b < 0.6))).all()
    assert set(zip(before[moved], after[moved], strict=True)) == {("v1", "v0")}


def test_weight_change_three_variants_exact() -> None:
    old, new = [1, 1, 2], [2, 1, 1]  # edges 0.25, 0.5 -> 0.5, 0.75
    before = assign_frame([make("exp", old)], IDS_20K)["exp"].to_numpy()
    after = assign_frame([make("exp", new)], IDS_20K)["exp"].to_numpy()
    b = buckets("exp", IDS_20K.tolist())
    expect_before = np.where(b < 0.25, "v0", np.where(b < 0.5, "v1", "v2"))
    expect_after = np.where(b < 0.5, "v0", np.where(b < 0.75, "v1", "v2"))
    assert (before == expect_before).all()
    assert (after == expect_after).all()


@settings(max_examples=examples(20), deadline=None)
@given(st.lists(st.floats(min_value=0.05, max_value=20), min_size=2, max_size=5))
def test_split_matches_weights(weights: list[float]) -> None:
    column = assign_frame([make("split", weights)], IDS_20K)["split"]
    counts = column.value_counts()
    total = sum(weights)
    for i, weight in enumerate(weights):
        share = counts.get(f"v{i}", 0) / len(IDS_20K)
        assert abs(share - weight / total) <= binomial_tolerance(weight / total, len(IDS_20K))


def test_layers_are_mutually_exclusive() -> None:
    exps = [
        make("hero", [1, 1], layer="homepage"),
        make("cta", [1, 1, 1], layer="homepage", layer_share=2),
        make("footer", [1, 3], layer="homepage"),
        make("subject", [1, 1]),
    ]
    frame = assign_frame(exps, IDS_20K)
    layered = frame[["hero", "cta", "footer"]].notna()
    assert (layered.sum(axis=1) == 1).all()
    n = len(IDS_20K)
    for key, share in {"hero": 0.25, "cta": 0.5, "footer": 0.25}.items():
        assert abs(layered[key].mean() - share) <= binomial_tolerance(share, n)
    footer = frame["footer"].dropna()
    assert abs((footer == "v1").mean() - 0.75) <= binomial_tolerance(0.75, len(footer))
    assert frame["subject"].notna().all()  # unlayered experiments overlap with everything


def test_layer_slices_follow_the_layer_bucket() -> None:
    exps = [make("x", [1, 1], layer="L"), make("y", [1, 1], layer="L")]
    frame = assign_frame(exps, IDS_20K)
    b = buckets("L", IDS_20K.tolist())
    assert (frame["x"].notna().to_numpy() == (b < 0.5)).all()
    # Within a slice the position is rescaled, so each slice splits like a whole bucket.
    assert ((frame["x"] == "v0").to_numpy() == (b < 0.25)).all()
    assert ((frame["y"] == "v0").to_numpy() == ((b >= 0.5) & (b < 0.75))).all()


def test_audience_outside_gets_none_and_keeps_slices() -> None:
    exps = [make("x", [1, 1], layer="L", audience="vip"), make("y", [1, 1], layer="L")]
    vip = pd.DataFrame({"vip": [i % 2 == 0 for i in range(len(IDS_20K))]})
    frame = assign_frame(exps, IDS_20K, vip)
    assert frame.loc[~vip["vip"], "x"].isna().all()
    unfiltered = assign_frame([make("x", [1, 1], layer="L"), exps[1]], IDS_20K)
    pd.testing.assert_series_equal(frame["y"], unfiltered["y"])


def test_holdout_share_and_columns() -> None:
    exps = [make("a", [1, 1], holdout=0.2), make("b", [1, 1], holdout=0.1, audience="s")]
    seg = pd.DataFrame({"s": [i % 4 == 0 for i in range(len(IDS_20K))]})
    frame = assign_frame(exps, IDS_20K, seg)
    n = len(IDS_20K)
    assert abs(frame["a__holdout"].mean() - 0.2) <= binomial_tolerance(0.2, n)
    assert frame.loc[frame["a__holdout"], "a"].isna().all()
    assert frame.loc[~frame["a__holdout"], "a"].notna().all()
    assert not frame.loc[~seg["s"], "b__holdout"].any()  # only members can be held out
    in_b = frame.loc[seg["s"], "b__holdout"]
    assert abs(in_b.mean() - 0.1) <= binomial_tolerance(0.1, len(in_b))
    assert (frame["holdout"] == (frame["a__holdout"] | frame["b__holdout"])).all()
    expected = buckets("a:holdout", IDS_20K.tolist()) < 0.2
    assert (frame["a__holdout"].to_numpy() == expected).all()


# -- vectorized == scalar -----------------------------------------------------------------

experiment_configs = st.lists(
    st.tuples(
        st.lists(st.floats(min_value=0.1, max_value=5), min_size=2, max_size=4),
        st.sampled_from([0.0, 0.0, 0.15, 0.5]),
        st.sampled_from([None, "L1", "L2"]),
        st.sampled_from([None, "s1", "s2"]),
        st.one_of(st.none(), st.floats(min_value=0.2, max_value=3)),
    ),
    min_size=1,
    max_size=4,
)
recipient_ids = st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=40, unique=True)


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs=experiment_configs, ids=recipient_ids, data=st.data())
def test_vectorized_agrees_with_scalar(configs: list, ids: list[str], data: st.DataObject) -> None:
    exps = [
        make(f"e{i}", w, holdout=h, layer=layer, audience=aud, layer_share=share if layer else None)
        for i, (w, h, layer, aud, share) in enumerate(configs)
    ]
    membership = {
        name: data.draw(st.lists(st.booleans(), min_size=len(ids), max_size=len(ids)))
        for name in ("s1", "s2")
    }
    series = pd.Series(ids, index=pd.RangeIndex(100, 100 + len(ids)))
    frame = assign_frame(exps, series, pd.DataFrame(membership, index=series.index))
    for pos, recipient in enumerate(ids):
        segs = {name for name, flags in membership.items() if flags[pos]}
        one = assign_one(exps, recipient, segs)
        row = frame.iloc[pos]
        assert row["id"] == recipient
        assert {e.key: row[e.key] for e in exps} == one.variants
        assert [e.key for e in exps if row[f"{e.key}__holdout"]] == one.holdout_of
        assert bool(row["holdout"]) == one.is_holdout


def test_assign_frame_column_types() -> None:
    frame = assign_frame([make("a", [1, 1], holdout=0.5)], pd.Series([1, 2, 3, 4, 5, 6]))
    assert list(frame.columns) == ["id", "a", "a__holdout", "holdout"]
    assert frame["a"].dtype == object
    assert frame["holdout"].dtype == bool
    assert frame["id"].tolist() == ["1", "2", "3", "4", "5", "6"]
    assert None in frame["a"].tolist()  # held out: None, not NaN


def test_missing_ids_and_unknown_audience_are_errors() -> None:
    with pytest.raises(ProfileDataError) as excinfo:
        assign_frame([make("a", [1, 1])], pd.Series(["x", None]))
    assert excinfo.value.field == "id"
    with pytest.raises(ConfigError, match="unknown segment"):
        assign_frame([make("a", [1, 1], audience="vip")], pd.Series(["x"]))


@pytest.mark.slow
def test_one_million_ids_in_a_few_seconds() -> None:
    ids = pd.Series([f"user-{i}" for i in range(1_000_000)])
    start = time.perf_counter()
    frame = assign_frame([make("a", [1, 1])], ids)
    assert time.perf_counter() - start < 10
    assert len(frame) == 1_000_000


# -- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"key": "a", "variants": [{"name": "x"}]},
        {"key": "a", "variants": [{"name": "x"}, {"name": "x"}]},
        {"key": "a", "variants": [{"name": "x"}, {"name": "y", "weight": 0}]},
        {"key": "a", "variants": [{"name": "x"}, {"name": "y"}], "holdout": 0.95},
        {"key": "a:b", "variants": [{"name": "x"}, {"name": "y"}]},
        {"key": "holdout", "variants": [{"name": "x"}, {"name": "y"}]},
        {"key": "a", "variants": [{"name": "x"}, {"name": "y"}], "layer_share": 2},
    ],
)
def test_invalid_experiments_are_rejected(config: dict) -> None:
    with pytest.raises(ConfigError):
        parse_experiments([config])


def test_parse_experiments_points_at_the_yaml_line() -> None:
    text = "- key: subject\n  variants:\n    - name: A\n    - name: B\n      weight: -1\n"
    with pytest.raises(ConfigError) as excinfo:
        parse_experiments(load_yaml_text(text, "campaign.yaml"), file="campaign.yaml")
    err = excinfo.value
    assert (err.file, err.line, err.field) == (
        "campaign.yaml",
        5,
        "experiments[0].variants[1].weight",
    )
    assert pickle.loads(pickle.dumps(err)).field == err.field


def test_duplicate_keys_and_layer_salt_collisions() -> None:
    variants = [{"name": "x"}, {"name": "y"}]
    with pytest.raises(ConfigError, match="duplicate"):
        parse_experiments([{"key": "a", "variants": variants}] * 2)
    with pytest.raises(ConfigError, match="layer"):
        parse_experiments(
            [{"key": "a", "variants": variants}, {"key": "b", "variants": variants, "layer": "a"}]
        )


def test_experiment_helpers() -> None:
    assert WELCOME.control.name == "control"
    assert WELCOME.weights == {"control": 1.0, "short": 1.0, "emoji": 2.0}
    assert WELCOME.variant("emoji") is WELCOME.variants[2]
    assert WELCOME.variant(None) is None


# -- SRM and samples ----------------------------------------------------------------------


def test_srm_detected_on_skewed_counts() -> None:
    result = sample_ratio_mismatch({"A": 5000, "B": 5400}, {"A": 1, "B": 1})
    expected = 2 * 200**2 / 5200  # sum of (O - E)^2 / E
    assert result.chi2 == pytest.approx(expected)
    assert result.p_value < 0.001
    assert result.mismatch


def test_srm_not_detected_on_fair_counts() -> None:
    result = sample_ratio_mismatch({"A": 3020, "B": 2980, "C": 5990}, {"A": 1, "B": 1, "C": 2})
    assert not result.mismatch
    assert result.p_value > 0.1


def test_srm_edge_cases() -> None:
    assert not sample_ratio_mismatch({}, {"A": 1, "B": 1}).mismatch
    assert sample_ratio_mismatch({"A": 900}, {"A": 1, "B": 1}).mismatch  # B missing counts as 0
    with pytest.raises(ValueError):
        sample_ratio_mismatch({"Z": 1}, {"A": 1, "B": 1})


def test_assignment_has_no_srm() -> None:
    frame = assign_frame([make("a", [1, 2, 1])], IDS_20K)
    counts = frame["a"].value_counts().to_dict()
    assert not sample_ratio_mismatch(counts, {"v0": 1, "v1": 2, "v2": 1}).mismatch


def test_sample_is_deterministic_nested_and_sized() -> None:
    mask20 = sample_mask(IDS_20K, 0.2)
    mask10 = sample_mask(IDS_20K, 0.1)
    assert abs(mask20.mean() - 0.2) <= binomial_tolerance(0.2, len(IDS_20K))
    assert not (mask10 & ~mask20).any()
    assert [in_sample(i, 0.2) for i in IDS_20K[:200]] == mask20[:200].tolist()
    assert not sample_mask(IDS_20K, 0.2, salt="other").equals(mask20)


@pytest.mark.parametrize(
    ("text", "share"), [("20%", 0.2), ("0.25", 0.25), (" 100% ", 1.0), ("0", 0.0)]
)
def test_parse_share(text: str, share: float) -> None:
    assert parse_share(text) == pytest.approx(share)


@pytest.mark.parametrize("text", ["abc", "120%", "-0.1", "%"])
def test_parse_share_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_share(text)
