"""K-means clusters over profile features, saved so later builds assign without refitting.

:func:`fit_clusters` standardizes each feature with the mean and (population)
standard deviation of the rows that have every feature, fits scikit-learn's
``KMeans(n_init=10, random_state=seed)`` and returns a :class:`ClusterModel`. With
``k`` unset it tries every k in ``k_range`` (both ends included) and keeps the one
with the highest silhouette (ties: the smaller k), measured on one fixed sample of
at most 5,000 rows; k values above the number of distinct rows are skipped.
Clusters are numbered by their centroid, sorted ascending on the first feature
(then the next), so numbering does not depend on k-means' internal order; labels
are ``cluster_<i>`` or the spec's ``labels[i]``. The standard deviation of a
constant feature is taken as 1.

:meth:`ClusterModel.assign` gives each row the label of the nearest centroid in
standardized space; rows missing a feature get ``None``. The saved JSON holds
everything assignment needs, written with sorted keys and Python's shortest
round-trip float repr, so the same model always gives the same bytes and a loaded
model assigns exactly as the fitted one.

scikit-learn is an optional dependency (``mailsmith[ml]``), imported only to fit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from segments.errors import ConfigError, ProfileDataError

SILHOUETTE_SAMPLE = 5000
HIGH_LOW_Z = 0.5
_FORMAT = "mailsmith.clusters/1"
_FILE_FORMAT = "mailsmith.cluster-models/1"


class ClusterSpec(BaseModel):
    """What to cluster: the features, k (or a range to choose from) and the seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    features: list[str] = Field(min_length=1)
    k: int | None = Field(None, ge=2, description="Fixed k; None chooses from k_range.")
    k_range: tuple[int, int] = Field((2, 8), description="Inclusive range tried for k.")
    seed: int = Field(0, ge=0)
    labels: list[str] | None = Field(None, description="Names for clusters 0..k-1.")

    @model_validator(mode="after")
    def _check(self) -> ClusterSpec:
        if len(set(self.features)) != len(self.features):
            raise ValueError("features must not repeat")
        low, high = self.k_range
        if not 2 <= low <= high:
            raise ValueError("k_range must be (low, high) with 2 <= low <= high")
        if self.labels is not None and len(set(self.labels)) != len(self.labels):
            raise ValueError("labels must not repeat")
        if self.labels is not None and self.k is not None and len(self.labels) != self.k:
            raise ValueError("labels must name exactly k clusters")
        return self


class KMetrics(BaseModel):
    """Fit quality for one k: inertia (standardized space) and silhouette."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int
    inertia: float
    silhouette: float | None = Field(None, description="None when it cannot be computed.")


class ClusterModel(BaseModel):
    """A fitted clustering: scaler, centroids (standardized) and per-k metrics."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str = _FORMAT
    name: str
    features: list[str]
    mean: list[float]
    std: list[float]
    centroids: list[list[float]]
    labels: list[str]
    sizes: list[int] = Field(description="Rows of the fitting data in each cluster.")
    metrics: list[KMetrics]

    @property
    def k(self) -> int:
        """Number of clusters."""
        return len(self.centroids)

    def assign(self, df: pd.DataFrame) -> pd.Series:
        """Label of the nearest centroid for each row of ``df``; None if a feature is missing."""
        matrix, complete = _feature_matrix(df, self.features)
        scaled = (matrix[complete] - np.asarray(self.mean)) / np.asarray(self.std)
        nearest = _nearest(scaled, np.asarray(self.centroids))
        labels = np.full(len(df), None, dtype=object)
        labels[complete] = np.asarray(self.labels, dtype=object)[nearest]
        return pd.Series(labels, index=df.index, name=self.name, dtype=object)

    def describe(self) -> list[str]:
        """One line per cluster: each feature high/low/average against the population.

        A centroid more than 0.5 standard deviations above the fitting population's
        mean is ``high``, more than 0.5 below ``low``, otherwise ``average``; the
        centroid's value in the feature's own units follows in parentheses.
        """
        total = sum(self.sizes) or 1
        lines = []
        for label, size, centroid in zip(self.labels, self.sizes, self.centroids, strict=True):
            parts = [
                f"{_level(z)} {feature} ({_number(mean + z * std)})"
                for feature, z, mean, std in zip(
                    self.features, centroid, self.mean, self.std, strict=True
                )
            ]
            lines.append(f"{label} ({size / total:.0%}): {', '.join(parts)}")
        return lines

    def save(self, path: str | Path) -> None:
        """Write the model as deterministic JSON (sorted keys, shortest float repr)."""
        text = json.dumps(self.model_dump(), sort_keys=True, indent=2, allow_nan=False)
        Path(path).write_text(text + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> ClusterModel:
        """Read a model written by :meth:`save`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            model = cls.model_validate(data)
        except (OSError, ValueError, ValidationError) as exc:
            raise ConfigError(
                f"cannot read cluster model ({type(exc).__name__})",
                file=str(path),
                hint="re-fit and save the clusters",
            ) from None
        if model.format != _FORMAT:
            raise ConfigError("unknown cluster model format", file=str(path), field="format")
        return model


def save_cluster_models(path: str | Path, models: dict[str, ClusterModel]) -> None:
    """Write several models to one file (``{"format", "models": {name: model}}``).

    Deterministic like :meth:`ClusterModel.save`; written to a temporary file and
    renamed, so a reader never sees half a file.
    """
    data = {"format": _FILE_FORMAT, "models": {n: m.model_dump() for n, m in models.items()}}
    text = json.dumps(data, sort_keys=True, indent=2, allow_nan=False) + "\n"
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, target)


def load_cluster_models(path: str | Path) -> dict[str, ClusterModel]:
    """Read a file written by :func:`save_cluster_models`; {} when there is none."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != _FILE_FORMAT:
            raise ValueError("unknown format")
        models = {str(n): ClusterModel.model_validate(m) for n, m in data["models"].items()}
    except (OSError, ValueError, KeyError, AttributeError, ValidationError) as exc:
        raise ConfigError(
            f"cannot read cluster models ({type(exc).__name__})",
            file=str(path),
            hint="delete the file or build with --refit",
        ) from None
    return models


def stale_reason(model: ClusterModel, spec: ClusterSpec) -> str | None:
    """Why a saved model no longer fits its spec (features, k or labels changed), or None."""
    if model.features != list(spec.features):
        return "its features differ from the campaign's"
    if spec.k is not None and model.k != spec.k:
        return f"it has {model.k} clusters, the campaign asks for {spec.k}"
    if spec.k is None and not spec.k_range[0] <= model.k <= spec.k_range[1]:
        return f"its k ({model.k}) is outside k_range"
    if spec.labels is not None and model.labels != list(spec.labels):
        return "its labels differ from the campaign's"
    return None


def fit_clusters(df: pd.DataFrame, spec: ClusterSpec) -> ClusterModel:
    """Fit k-means on the rows of ``df`` that have every feature (see module docs)."""
    kmeans_cls, silhouette_score = _import_sklearn()
    matrix, complete = _feature_matrix(df, spec.features)
    data = matrix[complete]
    candidates = _candidate_ks(data, spec)
    mean = data.mean(axis=0)
    std = data.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant feature stays 0 after scaling
    scaled = (data - mean) / std
    sample = _silhouette_sample(len(scaled), spec.seed)
    fits = []
    for k in candidates:
        km = kmeans_cls(n_clusters=k, n_init=10, random_state=spec.seed).fit(scaled)
        score = _silhouette(silhouette_score, scaled[sample], km.labels_[sample])
        fits.append((km, KMetrics(k=k, inertia=float(km.inertia_), silhouette=score)))
    best, _ = max(fits, key=lambda fit: _rank_key(fit[1]))
    centroids = _sorted_centroids(best.cluster_centers_)
    return ClusterModel(
        name=spec.name,
        features=list(spec.features),
        mean=[float(v) for v in mean],
        std=[float(v) for v in std],
        centroids=[[float(v) for v in row] for row in centroids],
        labels=_labels(spec, len(centroids)),
        sizes=np.bincount(_nearest(scaled, centroids), minlength=len(centroids)).tolist(),
        metrics=[metrics for _, metrics in fits],
    )


def _candidate_ks(data: np.ndarray, spec: ClusterSpec) -> list[int]:
    """The k values to try: the spec's k or k_range, capped at the distinct rows."""
    wanted = [spec.k] if spec.k is not None else list(range(spec.k_range[0], spec.k_range[1] + 1))
    distinct = len(np.unique(data, axis=0)) if len(data) else 0
    possible = [k for k in wanted if k <= distinct]
    if not possible:
        raise ProfileDataError(
            f"{distinct} distinct rows with every feature; {wanted[0]} clusters need more",
            field=spec.features[0],
            cluster=spec.name,
        )
    return possible


def _import_sklearn() -> tuple[Any, Any]:
    try:
        from sklearn.cluster import KMeans
        from sklearn.metrics import silhouette_score
    except ImportError:
        raise ConfigError(
            "clustering needs scikit-learn", hint="pip install 'mailsmith[ml]'"
        ) from None
    return KMeans, silhouette_score


def _feature_matrix(df: pd.DataFrame, features: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The features as float64 columns and a mask of rows with every value finite."""
    for feature in features:
        if feature not in df.columns:
            raise ConfigError("cluster feature is not a profile column", field=feature)
        dtype = df[feature].dtype
        if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
            raise ConfigError(
                "cluster feature is not numeric", field=feature, hint="cluster on numbers"
            )
    matrix = df[features].to_numpy(dtype=np.float64, na_value=np.nan)
    return matrix, np.isfinite(matrix).all(axis=1)


def _nearest(scaled: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid per row (squared Euclidean; ties: lower index)."""
    # One centroid at a time keeps memory at rows x features.
    distances = np.empty((len(scaled), len(centroids)))
    for j, centroid in enumerate(centroids):
        distances[:, j] = ((scaled - centroid) ** 2).sum(axis=1)
    return np.asarray(distances.argmin(axis=1), dtype=np.int64)


def _silhouette_sample(rows: int, seed: int) -> np.ndarray:
    if rows <= SILHOUETTE_SAMPLE:
        return np.arange(rows)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(rows, SILHOUETTE_SAMPLE, replace=False))


def _silhouette(score_fn: Any, scaled: np.ndarray, labels: np.ndarray) -> float | None:
    distinct = len(np.unique(labels))
    if distinct < 2 or distinct >= len(labels):
        return None
    return float(score_fn(scaled, labels))


def _rank_key(metrics: KMetrics) -> tuple[float, int]:
    """Highest silhouette first; among equals the smaller k (hence -k)."""
    score = metrics.silhouette if metrics.silhouette is not None else -np.inf
    return (score, -metrics.k)


def _sorted_centroids(centroids: np.ndarray) -> np.ndarray:
    order = np.lexsort(centroids.T[::-1])
    return np.asarray(centroids[order], dtype=np.float64)


def _labels(spec: ClusterSpec, k: int) -> list[str]:
    if spec.labels is None:
        return [f"cluster_{i}" for i in range(k)]
    if len(spec.labels) != k:
        raise ConfigError(
            f"labels name {len(spec.labels)} clusters but {k} were fitted",
            field="labels",
            hint="set k, or give one label per cluster",
            cluster=spec.name,
        )
    return list(spec.labels)


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _level(z: float) -> str:
    if z > HIGH_LOW_Z:
        return "high"
    if z < -HIGH_LOW_Z:
        return "low"
    return "average"
