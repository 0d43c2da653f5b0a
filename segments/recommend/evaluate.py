"""Offline evaluation: leave the last basket out, against the popularity baseline.

For every user with at least one event of ``holdout`` kind (default ``purchase``),
the items of their newest such event time (their last basket) are removed from
the training events. Users left with no training event are not evaluated (both
methods would give them the same bestsellers). The model is fitted on the rest and
asked for ``n`` items per evaluated user (bought and out-of-stock items excluded,
as in a build); the baseline, in the same run, gives the ``n`` most popular
training items with the same exclusions. Figures:

    hit_rate   share of evaluated users with at least one held-out item in their n
    recall     mean share of a user's held-out items found in their n
    coverage   distinct items recommended to anyone / items (in stock) in the model

On the shipped demo events purchases carry no product, so the evaluation there
holds out the last add-to-cart (``holdout="add_to_cart"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
from scipy import sparse

from segments.recommend.model import (
    Interactions,
    Recommendations,
    fit,
    recommend,
)


@dataclass(frozen=True)
class Scores:
    """One method's figures (module docstring)."""

    hit_rate: float
    recall: float
    coverage: float


@dataclass(frozen=True)
class Evaluation:
    """The model's and the popularity baseline's figures on the same held-out users."""

    n: int
    users: int
    holdout: str
    model: Scores
    popularity: Scores

    def lines(self) -> list[str]:
        """Human-readable lines, as ``mailsmith segments`` and the bench print them."""
        head = f"recommendations: {self.users} users, last {self.holdout} held out, top {self.n}"
        rows = [head, f"  {'':<12}{'hit rate':>10}{'recall':>10}{'coverage':>10}"]
        for name, s in (("item-item", self.model), ("popularity", self.popularity)):
            rows.append(f"  {name:<12}{s.hit_rate:>10.3f}{s.recall:>10.3f}{s.coverage:>10.3f}")
        return rows


def split_last(inter: Interactions, holdout: str) -> tuple[Interactions, np.ndarray]:
    """Training interactions without each user's last ``holdout`` basket, and a boolean
    per original interaction: held out."""
    if holdout not in inter.kind_names:
        return inter, np.zeros(len(inter.users), dtype=bool)
    is_kind = inter.kinds == inter.kind_names.index(holdout)
    newest = np.full(len(inter.user_ids), np.inf)
    np.minimum.at(newest, inter.users[is_kind], inter.ages[is_kind])
    held = is_kind & (inter.ages == newest[inter.users])
    keep = ~held
    train = replace(
        inter,
        users=inter.users[keep],
        items=inter.items[keep],
        kinds=inter.kinds[keep],
        points=inter.points[keep],
        ages=inter.ages[keep],
    )
    return train, held


def evaluate(
    inter: Interactions,
    *,
    n: int = 4,
    holdout: str = "purchase",
    weights: Mapping[str, float] | None = None,
    neighbors: int = 50,
    in_stock: np.ndarray | None = None,
    exclude_kind: str = "purchase",
) -> Evaluation:
    """Fit on all but each user's last ``holdout`` basket and score both methods."""
    train, held = split_last(inter, holdout)
    users = np.unique(np.intersect1d(inter.users[held], train.users))
    truth = sparse.csr_matrix(
        (np.ones(int(held.sum())), (inter.users[held], inter.items[held])),
        shape=(len(inter.user_ids), len(inter.skus)),
    )
    truth.data[:] = 1.0  # a basket naming an item twice counts it once
    model = fit(train, neighbors=neighbors, weights=weights)
    ours = recommend(model, users, n, in_stock=in_stock, exclude_kind=exclude_kind)
    popular_only = replace(model, similarity=sparse.csr_matrix(model.similarity.shape))
    baseline = recommend(popular_only, users, n, in_stock=in_stock, exclude_kind=exclude_kind)
    stocked = len(inter.skus) if in_stock is None else int(np.asarray(in_stock).sum())
    return Evaluation(
        n=n,
        users=len(users),
        holdout=holdout,
        model=_scores(ours, truth, users, stocked),
        popularity=_scores(baseline, truth, users, stocked),
    )


def _scores(
    recs: Recommendations, truth: sparse.csr_matrix, users: np.ndarray, items: int
) -> Scores:
    if not len(users):
        return Scores(0.0, 0.0, 0.0)
    rows = truth[users]
    found = np.zeros(len(users))
    for slot in range(recs.items.shape[1]):
        picked = recs.items[:, slot]
        ok = picked >= 0
        found[ok] += np.asarray(rows[np.flatnonzero(ok), picked[ok]]).ravel()
    wanted = np.asarray(rows.sum(axis=1)).ravel()
    recommended = np.unique(recs.items[recs.items >= 0])
    return Scores(
        hit_rate=float(np.mean(found > 0)),
        recall=float(np.mean(found / wanted)),
        coverage=len(recommended) / items if items else 0.0,
    )
