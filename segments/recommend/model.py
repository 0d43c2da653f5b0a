"""Item-item collaborative filtering on implicit feedback: pure functions over arrays.

The recipe (Sarwar et al., "Item-based collaborative filtering", 2001, with implicit
weights in place of ratings):

1. Each interaction ``(user, item, kind, age)`` weighs ``weights[kind]`` points,
   halved every ``half_life_days`` of age (the same decay as the engagement score).
   A user's points on one item are summed into ``R``, a ``scipy.sparse`` user x item
   matrix (never dense: memory follows the number of distinct pairs).
2. The similarity of items ``i`` and ``j`` is the cosine of their columns of ``R``:
   ``S = Rn.T @ Rn`` where ``Rn`` is ``R`` with unit-norm columns. Each item keeps its
   ``neighbors`` most similar items (the diagonal, an item's similarity of 1 with
   itself, is kept: an item a recipient viewed but did not buy is a candidate).
3. A user's score for item ``i`` is ``sum_j R[u, j] * S[j, i]``; the *reason* for a
   recommended item is the history item ``j`` contributing the most to that sum.
4. Items the user bought and items out of stock are never recommended. A user with
   fewer than ``n`` scored items is filled from the most popular items of their
   group (a segment), then from the overall bestsellers.

Every ordering breaks ties by item code, and item codes are assigned in sorted sku
order (:func:`encode`), so ties go to the smaller sku and the same inputs always give
the same lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

# Where a recommended item came from (``Recommendations.sources``).
SIMILAR, SEGMENT, POPULAR = 1, 2, 3
SOURCE_NAMES = {SIMILAR: "similar", SEGMENT: "segment", POPULAR: "popular"}

DEFAULT_WEIGHTS: dict[str, float] = {"view": 1.0, "add_to_cart": 3.0, "purchase": 5.0}


@dataclass(frozen=True)
class Interactions:
    """Interaction triples as codes: ``users`` and ``items`` index ``user_ids`` and
    ``skus``; ``kinds`` index ``kind_names``; ``points`` are the decayed weights and
    ``ages`` the events' ages in days (the evaluation holds out the newest)."""

    users: np.ndarray
    items: np.ndarray
    kinds: np.ndarray
    points: np.ndarray
    user_ids: np.ndarray
    skus: np.ndarray
    kind_names: tuple[str, ...]
    ages: np.ndarray


@dataclass(frozen=True)
class Model:
    """A fitted item-item model: the user x item matrix, the item similarities and,
    per (user, item), the strongest kind of interaction (for reasons and exclusions)."""

    ratings: sparse.csr_matrix
    strongest: sparse.csr_matrix
    similarity: sparse.csr_matrix
    popularity: np.ndarray
    kind_names: tuple[str, ...]


@dataclass(frozen=True)
class Recommendations:
    """Top-n per user, as ``(n_users, n)`` arrays padded with -1: ``items`` (item codes),
    ``reasons`` (the history item behind a similar item, else -1), ``reason_kinds``
    (that history item's strongest kind code, else -1) and ``sources``
    (:data:`SIMILAR`, :data:`SEGMENT`, :data:`POPULAR`, 0 for padding)."""

    items: np.ndarray
    reasons: np.ndarray
    reason_kinds: np.ndarray
    sources: np.ndarray


def decayed_points(
    kinds: np.ndarray,
    age_days: np.ndarray,
    kind_names: tuple[str, ...],
    weights: Mapping[str, float],
    half_life_days: float | None,
) -> np.ndarray:
    """Each interaction's points: its kind's weight (0 for a kind not in ``weights``),
    halved every ``half_life_days`` of age when a half-life is set."""
    per_kind = np.array([float(weights.get(name, 0.0)) for name in kind_names] + [0.0])
    points = per_kind[np.where(kinds < 0, len(kind_names), kinds)]
    if half_life_days is not None:
        points = points * 0.5 ** (np.asarray(age_days, dtype=np.float64) / half_life_days)
    return np.asarray(points, dtype=np.float64)


def encode(
    user_ids: np.ndarray,
    skus: np.ndarray,
    kinds: np.ndarray,
    age_days: np.ndarray,
    weights: Mapping[str, float],
    half_life_days: float | None = None,
) -> Interactions:
    """Code raw interaction columns: users, skus and kinds each sorted, so codes (and the
    ties they break) depend only on the values. Kinds without a weight are dropped."""
    kind_names = tuple(sorted(weights))
    keep = np.isin(kinds.astype(str), kind_names)
    user_codes, users = _codes(user_ids[keep])
    item_codes, items = _codes(skus[keep])
    kind_codes = np.searchsorted(np.array(kind_names), kinds[keep].astype(str))
    points = decayed_points(kind_codes, age_days[keep], kind_names, weights, half_life_days)
    ages = np.asarray(age_days[keep], dtype=np.float64)
    return Interactions(user_codes, item_codes, kind_codes, points, users, items, kind_names, ages)


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniques, codes = np.unique(values.astype(str), return_inverse=True)
    return codes.astype(np.int64), uniques


def fit(
    interactions: Interactions,
    *,
    neighbors: int = 50,
    weights: Mapping[str, float] | None = None,
    popularity_kind: str = "purchase",
) -> Model:
    """Fit the item-item model (module docstring, steps 1 and 2).

    ``popularity`` counts the users who did ``popularity_kind`` with each item (the
    bestsellers); when no interaction has that kind, it sums every item's points.
    ``weights`` orders kinds for ``strongest`` (default: the order of the weights
    :data:`DEFAULT_WEIGHTS`, unknown kinds first).
    """
    n_users, n_items = len(interactions.user_ids), len(interactions.skus)
    ratings, strongest = _pair_matrices(interactions, n_users, n_items, weights or DEFAULT_WEIGHTS)
    similarity = cosine_similarity(ratings, neighbors)
    popularity = _popularity(interactions, ratings, strongest, popularity_kind)
    return Model(ratings, strongest, similarity, popularity, interactions.kind_names)


def _pair_matrices(
    inter: Interactions, n_users: int, n_items: int, weights: Mapping[str, float]
) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """Points summed per (user, item) and the strongest kind per pair (rank + 1 stored,
    so 0 means no interaction); kinds rank by weight, then name."""
    ordered = sorted(inter.kind_names, key=lambda k: (weights.get(k, 0.0), k))
    rank_of = {name: i for i, name in enumerate(ordered)}
    rank = np.array([rank_of[name] for name in inter.kind_names], dtype=np.int64)[inter.kinds]
    pairs = pd.DataFrame({"u": inter.users, "i": inter.items, "p": inter.points, "r": rank})
    grouped = pairs.groupby(["u", "i"], sort=True).agg(p=("p", "sum"), r=("r", "max"))
    u = grouped.index.get_level_values(0).to_numpy()
    i = grouped.index.get_level_values(1).to_numpy()
    shape = (n_users, n_items)
    ratings = sparse.csr_matrix((grouped["p"].to_numpy(float), (u, i)), shape=shape)
    by_rank = np.array(sorted(rank_of, key=rank_of.__getitem__))
    kind_code = np.searchsorted(np.array(inter.kind_names), by_rank[grouped["r"].to_numpy()])
    strongest = sparse.csr_matrix((kind_code.astype(np.int64) + 1, (u, i)), shape=shape)
    return ratings, strongest


def cosine_similarity(ratings: sparse.csr_matrix, neighbors: int) -> sparse.csr_matrix:
    """Item x item cosine of the columns of ``ratings``, each row cut to its
    ``neighbors`` largest values (ties to the smaller item code)."""
    norms = np.sqrt(np.asarray(ratings.multiply(ratings).sum(axis=0)).ravel())
    inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    unit = sparse.csr_matrix(ratings @ sparse.diags(inverse))
    similarity = sparse.csr_matrix(unit.T @ unit)
    similarity.sort_indices()
    return _top_per_row(similarity, neighbors)


def _top_per_row(matrix: sparse.csr_matrix, k: int) -> sparse.csr_matrix:
    rows, cols, vals = [], [], []
    for row in range(matrix.shape[0]):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        idx, data = matrix.indices[start:end], matrix.data[start:end]
        keep = np.lexsort((idx, -data))[:k]
        rows.append(np.full(len(keep), row))
        cols.append(idx[keep])
        vals.append(data[keep])
    if not rows:
        return matrix
    top = sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=matrix.shape
    )
    top.sort_indices()
    return top


def _popularity(
    inter: Interactions, ratings: sparse.csr_matrix, strongest: sparse.csr_matrix, kind: str
) -> np.ndarray:
    if kind in inter.kind_names:
        code = inter.kind_names.index(kind) + 1
        did = strongest.copy()
        did.data = (did.data == code).astype(np.float64)
        counts = np.asarray(did.sum(axis=0)).ravel()
        if counts.sum() > 0:
            return counts
    return np.asarray(ratings.sum(axis=0)).ravel()


def popularity_order(popularity: np.ndarray) -> np.ndarray:
    """Item codes from most to least popular, ties to the smaller code; items nobody
    touched are left out."""
    order = np.lexsort((np.arange(len(popularity)), -popularity))
    return order[popularity[order] > 0]


def recommend(
    model: Model,
    users: np.ndarray,
    n: int,
    *,
    in_stock: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    exclude_kind: str = "purchase",
    batch: int = 4096,
) -> Recommendations:
    """Top-``n`` items for each of ``users`` (user codes; -1 for a user the model has
    never seen, who gets fallbacks only), module docstring steps 3 and 4.

    ``in_stock`` (bool per item, default all) and the user's ``exclude_kind`` items
    are never recommended. ``groups`` (an int per entry of ``users``, -1 for none)
    turns on the segment fallback: popularity among the listed users of each group.
    Users are scored ``batch`` at a time, so memory stays bounded by the batch.
    """
    n_items = model.ratings.shape[1]
    stock = np.ones(n_items, dtype=bool) if in_stock is None else np.asarray(in_stock, bool)
    excluded_code = _kind_code(model, exclude_kind)
    fallbacks = _Fallbacks(model, users, groups, excluded_code)
    out = _empty(len(users), n)
    for start in range(0, len(users), batch):
        chunk = users[start : start + batch]
        known = np.where(chunk >= 0, chunk, 0)
        scores = sparse.csr_matrix(model.ratings[known] @ model.similarity)
        scores.sort_indices()
        for offset, user in enumerate(chunk):
            row = start + offset
            bought = _bought(model, user, excluded_code)
            if user >= 0:
                _fill_similar(scores, offset, bought, stock, out, row)
            fallbacks.fill(out, row, bought, stock)
        _add_reasons(model, users, out, start, start + len(chunk))
    return out


def _kind_code(model: Model, kind: str) -> int:
    return model.kind_names.index(kind) + 1 if kind in model.kind_names else -1


def _empty(users: int, n: int) -> Recommendations:
    full = np.full((users, n), -1, dtype=np.int64)
    return Recommendations(full, full.copy(), full.copy(), np.zeros((users, n), np.int8))


def _bought(model: Model, user: int, code: int) -> np.ndarray:
    if user < 0 or code < 0:
        return np.empty(0, dtype=np.int64)
    start, end = model.strongest.indptr[user], model.strongest.indptr[user + 1]
    row = model.strongest.data[start:end]
    return np.asarray(model.strongest.indices[start:end][row == code], dtype=np.int64)


def _fill_similar(
    scores: sparse.csr_matrix,
    offset: int,
    bought: np.ndarray,
    stock: np.ndarray,
    out: Recommendations,
    row: int,
) -> None:
    start, end = scores.indptr[offset], scores.indptr[offset + 1]
    items, values = scores.indices[start:end], scores.data[start:end]
    ok = (values > 0) & stock[items]
    if len(bought):  # a handful, mostly: a broadcast compare beats np.isin's setup
        ok &= ~(items[:, None] == bought[None, :]).any(axis=1)
    items, values = items[ok], np.round(values[ok], 9)  # sums in another order still tie
    chosen = items[np.lexsort((items, -values))[: out.items.shape[1]]]
    out.items[row, : len(chosen)] = chosen
    out.sources[row, : len(chosen)] = SIMILAR


def _add_reasons(model: Model, users: np.ndarray, out: Recommendations, lo: int, hi: int) -> None:
    """For each similar item of rows ``lo:hi``, the history item ``j`` with the largest
    ``R[u, j] * S[j, item]`` (ties to the smaller ``j``) and its strongest kind; one
    vectorized pass over every (slot, history item) pair of the rows."""
    rows, slots = np.nonzero(out.sources[lo:hi] == SIMILAR)
    if not len(rows):
        return
    rows += lo
    user, item = users[rows], out.items[rows, slots]
    first = model.ratings.indptr[user]
    counts = model.ratings.indptr[user + 1] - first
    pair = np.repeat(np.arange(len(rows)), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    position = first[pair] + np.arange(len(pair)) - starts
    history = model.ratings.indices[position]
    sim = np.asarray(model.similarity[history, item[pair]]).ravel()
    contribution = model.ratings.data[position] * sim
    order = np.lexsort((history, -contribution, pair))
    best = order[np.r_[True, pair[order][1:] != pair[order][:-1]]]
    out.reasons[rows, slots] = history[best]
    # strongest has the structure of ratings (both come from the same sorted pairs)
    out.reason_kinds[rows, slots] = model.strongest.data[position[best]] - 1


class _Fallbacks:
    """The segment's popular items, then the bestsellers, for the free slots of a row."""

    def __init__(
        self, model: Model, users: np.ndarray, groups: np.ndarray | None, code: int
    ) -> None:
        self.overall = popularity_order(model.popularity).tolist()
        self.groups = groups
        self.by_group: dict[int, list[int]] = {}
        if groups is not None:
            self.by_group = _group_orders(model, users, groups, code)

    def fill(self, out: Recommendations, row: int, bought: np.ndarray, stock: np.ndarray) -> None:
        taken = set(out.items[row][out.items[row] >= 0].tolist()) | set(bought.tolist())
        slot = int((out.items[row] >= 0).sum())
        sources = []
        if self.groups is not None and self.groups[row] >= 0:
            group = self.by_group.get(int(self.groups[row]), [])
            sources.append((group, SEGMENT))
        sources.append((self.overall, POPULAR))
        for order, source in sources:
            for item in order:
                if slot >= out.items.shape[1]:
                    return
                if item in taken or not stock[item]:
                    continue
                taken.add(int(item))
                out.items[row, slot], out.sources[row, slot] = item, source
                slot += 1


def _group_orders(
    model: Model, users: np.ndarray, groups: np.ndarray, code: int
) -> dict[int, list[int]]:
    """Per group, items by popularity among the group's users the model knows."""
    known = users >= 0
    members, labels = users[known], groups[known]
    points = sparse.csr_matrix(model.ratings[members])
    did = sparse.csr_matrix(model.strongest[members])
    did.data = (did.data == code).astype(np.float64)
    orders = {}
    for label in np.unique(labels[labels >= 0]):
        mine = labels == label
        counts = np.asarray(did[mine].sum(axis=0)).ravel()
        if counts.sum() == 0:  # nobody in the group bought: the group's interest instead
            counts = np.asarray(points[mine].sum(axis=0)).ravel()
        orders[int(label)] = popularity_order(counts).tolist()
    return orders
