"""The scored slate the rules work on: one aligned numpy array per attribute, plus each item's reasons.

Scores rank items (higher first); ``order`` rules return a permutation of positions into the slate. Unknown items
(not in the item cache) carry neutral values: type/category -1, seller "", stock NaN (kept), new (cold start).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

ITEM_TYPES = {"product": 0, "video": 1, "live": 2}


@dataclass(frozen=True)
class Slate:
    item_ids: np.ndarray
    scores: np.ndarray
    item_type: np.ndarray
    category: np.ndarray
    seller: np.ndarray
    stock: np.ndarray
    purchases_7d: np.ndarray
    clicks_7d: np.ndarray
    ctr: np.ndarray
    is_new_item: np.ndarray
    is_new_seller: np.ndarray
    # The learned cold-start prior (CTR, CVR; NaN when none is trained) and each item's history so far (counts).
    prior_ctr: np.ndarray
    prior_cvr: np.ndarray
    history_impressions: np.ndarray
    history_clicks: np.ndarray
    history_purchases: np.ndarray
    reasons: tuple[tuple[str, ...], ...]
    # Per item, its seller's age in days (NaN: unknown) and impressions of the seller's items served so far today
    # (the service's counter, serving/seller_exposure.py), for the new-seller exposure floor (seller_floor.py).
    seller_age_days: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seller_shown_today: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # Items a rule took out of the slate, with why (explain shows them).
    removed: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.item_ids)

    def with_scores(self, scores: np.ndarray, moved: np.ndarray, reason: str) -> Slate:
        """A copy with new scores, ``reason`` noted on the items where ``moved`` is True."""
        return replace(self, scores=np.asarray(scores, dtype=float), reasons=noted(self.reasons, moved, reason))

    def with_reasons(self, positions: np.ndarray | list[int], reason: str) -> Slate:
        mask = np.zeros(len(self), dtype=bool)
        mask[np.asarray(positions, dtype=int)] = True
        return replace(self, reasons=noted(self.reasons, mask, reason))

    def subset(self, keep: np.ndarray, reason: str) -> Slate:
        """The items where ``keep`` is True; the others are recorded in ``removed`` with ``reason``."""
        arrays = {
            name: getattr(self, name)[keep]
            for name in (
                "item_ids",
                "scores",
                "item_type",
                "category",
                "seller",
                "stock",
                "purchases_7d",
                "clicks_7d",
                "ctr",
                "is_new_item",
                "is_new_seller",
                "prior_ctr",
                "prior_cvr",
                "history_impressions",
                "history_clicks",
                "history_purchases",
                "seller_age_days",
                "seller_shown_today",
            )
        }
        dropped = {str(self.item_ids[p]): (*self.reasons[p], reason) for p in np.flatnonzero(~keep)}
        reasons = tuple(map(self.reasons.__getitem__, np.flatnonzero(keep).tolist()))
        return replace(self, **arrays, reasons=reasons, removed={**self.removed, **dropped})

    def spread(self) -> float:
        """The unit of score adjustments: the scores' standard deviation (1 when flat)."""
        finite = self.scores[np.isfinite(self.scores)]
        value = float(np.std(finite)) if len(finite) > 1 else 0.0
        return value if value > 1e-12 else 1.0


def noted(reasons: tuple[tuple[str, ...], ...], mask: np.ndarray, reason: str) -> tuple[tuple[str, ...], ...]:
    """``reasons`` with ``reason`` appended where ``mask`` is True. Only the moved items are touched in Python (a
    rule moves a few of a slate's 500; every rule of every request notes its moves)."""
    if len(mask) != len(reasons):
        raise ValueError(f"{len(mask)} mask values for {len(reasons)} items")
    moved = np.flatnonzero(mask).tolist()
    if not moved:
        return reasons
    out = list(reasons)
    for position in moved:
        out[position] = (*out[position], reason)
    return tuple(out)


def by_score(slate: Slate) -> np.ndarray:
    """Positions by score descending, ties by item id (deterministic)."""
    scores = np.where(np.isfinite(slate.scores), slate.scores, -np.inf)
    return np.lexsort((slate.item_ids.astype(str), -scores))


def make_slate(
    item_ids: list[str] | np.ndarray,
    scores: np.ndarray,
    *,
    item_type: np.ndarray | None = None,
    category: np.ndarray | None = None,
    seller: np.ndarray | None = None,
    stock: np.ndarray | None = None,
    purchases_7d: np.ndarray | None = None,
    clicks_7d: np.ndarray | None = None,
    ctr: np.ndarray | None = None,
    is_new_item: np.ndarray | None = None,
    is_new_seller: np.ndarray | None = None,
    prior_ctr: np.ndarray | None = None,
    prior_cvr: np.ndarray | None = None,
    history_impressions: np.ndarray | None = None,
    history_clicks: np.ndarray | None = None,
    history_purchases: np.ndarray | None = None,
    seller_age_days: np.ndarray | None = None,
    seller_shown_today: np.ndarray | None = None,
) -> Slate:
    """A slate with neutral defaults for anything not given (tests and the service build it the same way)."""
    n = len(item_ids)

    def arr(value: np.ndarray | None, default: object, dtype: object) -> np.ndarray:
        return np.full(n, default, dtype=dtype) if value is None else np.asarray(value, dtype=dtype)  # type: ignore[call-overload]

    return Slate(
        item_ids=np.asarray(item_ids, dtype=object),
        scores=np.asarray(scores, dtype=float),
        item_type=arr(item_type, 0, np.int64),
        category=arr(category, -1, np.int64),
        seller=arr(seller, "", object),
        stock=arr(stock, np.nan, float),
        purchases_7d=arr(purchases_7d, 0.0, float),
        clicks_7d=arr(clicks_7d, 0.0, float),
        ctr=arr(ctr, 0.05, float),
        is_new_item=arr(is_new_item, False, bool),
        is_new_seller=arr(is_new_seller, False, bool),
        prior_ctr=arr(prior_ctr, np.nan, float),
        prior_cvr=arr(prior_cvr, np.nan, float),
        history_impressions=arr(history_impressions, 0.0, float),
        history_clicks=arr(history_clicks, 0.0, float),
        history_purchases=arr(history_purchases, 0.0, float),
        reasons=((),) * n,
        seller_age_days=arr(seller_age_days, np.nan, float),
        seller_shown_today=arr(seller_shown_today, 0.0, float),
    )


def promote(order: np.ndarray, incoming: list[int], outgoing: list[int]) -> np.ndarray:
    """Swap each ``incoming`` position into the place of the matching ``outgoing`` one (which takes its place)."""
    out = np.asarray(order).copy()
    for new, old in zip(incoming, outgoing, strict=True):
        a, b = int(np.flatnonzero(out == new)[0]), int(np.flatnonzero(out == old)[0])
        out[a], out[b] = out[b], out[a]
    return out


def ensure_minimum(
    order: np.ndarray, mask: np.ndarray, minimum: int, k: int, protected: np.ndarray | None = None
) -> tuple[np.ndarray, list[int], list[int]]:
    """Bring the best items where ``mask`` holds into the top k until it has ``minimum`` of them.

    Each promoted item swaps places with the lowest-ranked top-k item that is neither masked nor ``protected``.
    Returns (new order, promoted positions, demoted positions).
    """
    top, rest = order[:k], order[k:]
    need = max(minimum - int(mask[top].sum()), 0)
    if need == 0:
        return order, [], []
    incoming = [int(p) for p in rest[mask[rest]][:need]]
    guard = mask if protected is None else (mask | protected)
    bottom_up = top[::-1]
    outgoing = [int(p) for p in bottom_up[~guard[bottom_up]][: len(incoming)]]
    incoming = incoming[: len(outgoing)]
    return promote(order, incoming, outgoing), incoming, outgoing
