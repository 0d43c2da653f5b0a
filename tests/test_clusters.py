"""Clustering: k selection, stable assignment from a saved model, descriptions."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.datasets import make_blobs

from segments.audience.clusters import ClusterModel, ClusterSpec, fit_clusters
from segments.errors import ConfigError, ProfileDataError


def blobs(seed: int = 3, rows: int = 600) -> pd.DataFrame:
    """Three well-separated groups in income (thousands of units) and spending."""
    points, _ = make_blobs(
        n_samples=rows,
        centers=[[-10, 10], [0, 0], [10, -10]],
        cluster_std=1.0,
        random_state=seed,
    )
    return pd.DataFrame(
        {"income": 50_000 + 2_000 * points[:, 0], "spending": 200 + 10 * points[:, 1]}
    )


SPEC = ClusterSpec(name="value", features=["income", "spending"])


@pytest.fixture(scope="module")
def model() -> ClusterModel:
    return fit_clusters(blobs(), SPEC)


def test_k_selection_finds_three_blobs(model: ClusterModel) -> None:
    assert model.k == 3
    assert [m.k for m in model.metrics] == [2, 3, 4, 5, 6, 7, 8]
    best = max(model.metrics, key=lambda m: m.silhouette or -1.0)
    assert best.k == 3
    inertias = [m.inertia for m in model.metrics]
    assert inertias == sorted(inertias, reverse=True)
    assert model.sizes == [200, 200, 200]


def test_fixed_k_and_labels() -> None:
    spec = ClusterSpec(
        name="value", features=["income", "spending"], k=3, labels=["savers", "middle", "spenders"]
    )
    fitted = fit_clusters(blobs(), spec)
    assert [m.k for m in fitted.metrics] == [3]
    labels = fitted.assign(blobs())
    assert set(labels) == {"savers", "middle", "spenders"}
    # Clusters are numbered by centroid, lowest income first.
    assert labels[blobs()["income"].idxmin()] == "savers"


def test_save_load_assign_gives_identical_labels(model: ClusterModel, tmp_path: Path) -> None:
    path = tmp_path / "value.json"
    model.save(path)
    loaded = ClusterModel.load(path)
    assert loaded == model
    fresh = blobs(seed=11, rows=300)  # a new build: assigned, not refitted
    pd.testing.assert_series_equal(loaded.assign(fresh), model.assign(fresh))
    again = tmp_path / "again.json"
    loaded.save(again)
    assert again.read_bytes() == path.read_bytes()


def test_fit_is_deterministic(model: ClusterModel, tmp_path: Path) -> None:
    fit_clusters(blobs(), SPEC).save(tmp_path / "a.json")
    model.save(tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_assign_labels_rows_with_missing_values_none(model: ClusterModel) -> None:
    frame = pd.DataFrame(
        {"income": [30_000.0, np.nan, 70_000.0], "spending": [300.0, 200.0, np.inf]},
        index=["a", "b", "c"],
    )
    labels = model.assign(frame)
    assert labels.index.tolist() == ["a", "b", "c"]
    assert labels.tolist() == ["cluster_0", None, None]


def test_describe(model: ClusterModel) -> None:
    lines = model.describe()
    assert len(lines) == 3
    assert lines[0].startswith("cluster_0 (33%): low income (")
    assert ", high spending (" in lines[0]
    assert "average income" in lines[1] and "average spending" in lines[1]
    assert "high income" in lines[2] and "low spending" in lines[2]


def test_fit_ignores_incomplete_rows() -> None:
    frame = pd.concat([blobs(), pd.DataFrame({"income": [np.nan], "spending": [1.0]})])
    fitted = fit_clusters(frame, SPEC.model_copy(update={"k": 3}))
    assert sum(fitted.sizes) == 600


def test_fit_errors() -> None:
    with pytest.raises(ConfigError) as info:
        fit_clusters(blobs(), ClusterSpec(name="x", features=["income", "age"]))
    assert info.value.field == "age"
    with pytest.raises(ConfigError):
        fit_clusters(
            pd.DataFrame({"city": ["a", "b", "c"]}), ClusterSpec(name="x", features=["city"])
        )
    with pytest.raises(ProfileDataError):
        fit_clusters(
            pd.DataFrame({"income": [1.0, 1.0, np.nan]}), ClusterSpec(name="x", features=["income"])
        )
    with pytest.raises(ConfigError, match="labels name 2 clusters"):
        fit_clusters(blobs(), SPEC.model_copy(update={"labels": ["a", "b"]}))


def test_spec_validation() -> None:
    with pytest.raises(ValidationError):
        ClusterSpec(name="x", features=["a"], k_range=(5, 2))
    with pytest.raises(ValidationError):
        ClusterSpec(name="x", features=["a", "a"])
    with pytest.raises(ValidationError):
        ClusterSpec(name="x", features=["a"], k=3, labels=["one", "two"])


def test_missing_scikit_learn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.cluster", None)
    with pytest.raises(ConfigError) as info:
        fit_clusters(blobs(), SPEC)
    assert info.value.hint == "pip install 'mailsmith[ml]'"


def test_load_rejects_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x"}')
    with pytest.raises(ConfigError) as info:
        ClusterModel.load(path)
    assert info.value.file == str(path)
    with pytest.raises(ConfigError):
        ClusterModel.load(tmp_path / "absent.json")
