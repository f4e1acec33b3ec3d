"""Cold start: popular-in-segment items with category diversity for users without history, and bounded
Thompson-sampling exploration for new items and new sellers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from serving.rules.config import ColdStartRules, ExplorationRules
from serving.rules.slate import Slate, promote
from serving.rules.supply_demand import cap_per_group

COLD_START_POPULAR = "cold-start-popular"
COLD_START_DIVERSITY = "cold-start-diversity"
EXPLORE_NEW_ITEM = "explore-new-item"
EXPLORE_NEW_SELLER = "explore-new-seller"
DISPLACED_BY_EXPLORATION = "displaced-by-exploration"


def popular_in_segment(slate: Slate, cfg: ColdStartRules, segment_category: int | None) -> Slate:
    """Replace the scores by popularity (log of 7-day clicks), plus a bonus for the segment's category."""
    scores = np.log1p(np.nan_to_num(slate.clicks_7d))
    if segment_category is not None:
        scores = scores + cfg.segment_bonus * (slate.category == segment_category)
    return slate.with_scores(scores, np.ones(len(slate), dtype=bool), COLD_START_POPULAR)


def diversify(slate: Slate, order: np.ndarray, cfg: ColdStartRules, k: int) -> tuple[Slate, np.ndarray]:
    """At most ``max_per_category`` items per category in the top k."""
    new_order, deferred = cap_per_group(order, slate.category, cfg.max_per_category, k)
    return (slate.with_reasons(deferred, COLD_START_DIVERSITY) if deferred else slate), new_order


def thompson_samples(slate: Slate, cfg: ExplorationRules, rng: np.random.Generator) -> np.ndarray:
    """One CTR draw per item from Beta(prior_strength * ctr, prior_strength * (1 - ctr)), ctr the smoothed CTR."""
    ctr = np.clip(np.nan_to_num(slate.ctr, nan=float(np.nanmean(slate.ctr)) if len(slate) else 0.05), 1e-4, 1 - 1e-4)
    return rng.beta(cfg.prior_strength * ctr, cfg.prior_strength * (1 - ctr))


def exploration_swaps(
    eligible: np.ndarray,
    order: np.ndarray,
    k: int,
    share: float,
    draw: Callable[[], np.ndarray],
    first: np.ndarray | None = None,
) -> tuple[list[int], list[int]]:
    """Newcomers (``eligible``) outside the top k, best draw first (those in ``first``, when given, before all
    others), each taking the place of the lowest-ranked established top-k item whose draw it beats; at most
    ``share`` of the top k newcomers, counting those already there. ``draw`` is called only when a slot is free, so
    a slate with none consumes no randomness."""
    top, rest = order[:k], order[k:]
    slots = int(np.floor(share * min(k, len(order)))) - int(eligible[top].sum())
    if slots <= 0 or not len(rest):
        return [], []
    draws = draw()
    candidates = rest[eligible[rest]]
    rank = np.argsort(-draws[candidates], kind="stable")
    if first is not None:  # the priority group first, each group by its draws
        rank = rank[np.argsort(~first[candidates[rank]], kind="stable")]
    explorers = [int(p) for p in candidates[rank]]
    bottom_up = top[::-1]
    victims = [int(p) for p in bottom_up[~eligible[bottom_up]]]
    incoming: list[int] = []
    outgoing: list[int] = []
    for explorer in explorers:
        if len(incoming) >= slots or len(outgoing) >= len(victims):
            break
        victim = victims[len(outgoing)]
        if draws[explorer] > draws[victim]:
            incoming.append(explorer)
            outgoing.append(victim)
    return incoming, outgoing


def explore(
    slate: Slate, order: np.ndarray, cfg: ExplorationRules, k: int, rng: np.random.Generator
) -> tuple[Slate, np.ndarray]:
    """Give exploration slots to new items / new sellers outside the top k whose Thompson draw beats the draw of the
    top-k item they would displace (the lowest-ranked non-new one), never exceeding ``max_share`` of the top k."""
    eligible = slate.is_new_item | slate.is_new_seller
    incoming, outgoing = exploration_swaps(eligible, order, k, cfg.max_share, lambda: thompson_samples(slate, cfg, rng))
    if not incoming:
        return slate, order
    new_items = [p for p in incoming if slate.is_new_item[p]]
    new_sellers = [p for p in incoming if not slate.is_new_item[p]]
    slate = slate.with_reasons(new_items, EXPLORE_NEW_ITEM).with_reasons(new_sellers, EXPLORE_NEW_SELLER)
    return slate.with_reasons(outgoing, DISPLACED_BY_EXPLORATION), promote(order, incoming, outgoing)
