"""A per-seller exposure floor over a new seller's first days.

A seller younger than ``days`` (its oldest item's age) whose items were served fewer than its due impressions so
far today (``min_impressions``, paced through the day: x the day's requests so far / yesterday's) and who has no
item in this slate's top k gets one: its best candidate by one Thompson draw from the learned cold-start prior
(serving/rules/learned_exploration.py's posterior value; the item's own history once it has one) takes the place of
the lowest-ranked top-k item that is not a newcomer's (new item or new seller), at most ``max_slots`` per slate,
the sellers furthest below their due first; it is shown in that place, or from rank ``rank`` of the top k when set
(the items between move down one). With ``max_candidate_rank`` set, only items within that many first places of
this request's order count as candidates, so the floor is spent where the ranker expects a click and the due
impressions come from those requests. At or above the floor, or from day ``days`` on, the seller competes
like any other. The counts are the service's (serving/seller_exposure.py): impressions served across requests.
"""

from __future__ import annotations

import math

import numpy as np

from serving.rules.config import LearnedExplorationRules, SellerFloorRules
from serving.rules.learned_exploration import posterior_value
from serving.rules.slate import Slate, promote

SELLER_FLOOR = "new-seller-exposure-floor"
DISPLACED_BY_FLOOR = "displaced-by-seller-floor"


def below_floor(slate: Slate, cfg: SellerFloorRules, day_fraction: float) -> np.ndarray:
    """Per item: its seller is younger than ``cfg.days`` and was shown less than its due so far today."""
    fraction = min(max(day_fraction, 0.0), 1.0) if cfg.pace else 1.0
    due = math.ceil(cfg.min_impressions * fraction)
    young = np.isfinite(slate.seller_age_days) & (slate.seller_age_days < cfg.days) & (slate.seller != "")
    return np.asarray(young & (slate.seller_shown_today < due), dtype=bool)


def seller_floor(
    slate: Slate,
    order: np.ndarray,
    cfg: SellerFloorRules,
    prior: LearnedExplorationRules,
    k: int,
    day_fraction: float,
    rng: np.random.Generator,
) -> tuple[Slate, np.ndarray]:
    """Give below-floor new sellers without an item in the top k one slot each (see the module)."""
    if cfg.max_slots <= 0 or not len(order):
        return slate, order
    needy = below_floor(slate, cfg, day_fraction)
    top = order[:k]
    rest = order[k : cfg.max_candidate_rank] if cfg.max_candidate_rank else order[k:]
    in_top = set(slate.seller[top])
    candidates = [int(p) for p in rest if needy[p] and slate.seller[p] not in in_top]
    if not candidates:
        return slate, order
    draws = posterior_value(slate, prior, rng)
    best: dict[str, int] = {}
    for p in candidates:  # each seller's best item by its draw
        seller = str(slate.seller[p])
        if seller not in best or draws[p] > draws[best[seller]]:
            best[seller] = p
    # the sellers furthest below their floor first, then by the draw
    chosen = sorted(best.values(), key=lambda p: (slate.seller_shown_today[p], -draws[p], str(slate.item_ids[p])))
    newcomer = slate.is_new_item | slate.is_new_seller | needy
    victims = [int(p) for p in top[::-1] if not newcomer[p]]
    n = min(cfg.max_slots, len(chosen), len(victims))
    if n == 0:
        return slate, order
    incoming, outgoing = chosen[:n], victims[:n]
    slate = slate.with_reasons(incoming, SELLER_FLOOR).with_reasons(outgoing, DISPLACED_BY_FLOOR)
    order = promote(order, incoming, outgoing)
    return slate, (raise_to_rank(order, incoming, cfg.rank, k) if cfg.rank else order)


def raise_to_rank(order: np.ndarray, incoming: list[int], rank: int, k: int) -> np.ndarray:
    """``incoming`` (already in the top k) moved up to start at ``rank`` (1-based) where they sit lower; the top-k
    items between move down, their order kept."""
    top, rest = [int(p) for p in order[:k]], order[k:]
    start = min(rank, k) - 1
    for offset, p in enumerate(incoming):
        at, target = top.index(p), min(start + offset, k - 1)
        if at > target:
            top.insert(target, top.pop(at))
    return np.concatenate([np.asarray(top, dtype=int), np.asarray(rest, dtype=int)])
