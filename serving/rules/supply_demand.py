"""Supply-demand matching: out-of-stock removed, low stock damped and overstock boosted by days of cover, at most
N items per seller in the top k, and a minimum of new-seller items in the top k."""

from __future__ import annotations

import numpy as np

from serving.rules.config import SupplyDemandRules
from serving.rules.slate import Slate, ensure_minimum

OUT_OF_STOCK = "out-of-stock-removed"
LOW_STOCK = "low-stock-damped"
OVERSTOCK = "overstock-boosted"
SELLER_CAP = "seller-cap"
NEW_SELLER_PROMOTED = "new-seller-min-exposure"
NEW_SELLER_DISPLACED = "displaced-by-new-seller"


def days_of_cover(slate: Slate, cfg: SupplyDemandRules) -> np.ndarray:
    """Stock over the daily sales rate (7-day purchases / 7, floored); NaN when the stock is unknown."""
    daily = np.maximum(np.nan_to_num(slate.purchases_7d) / 7.0, cfg.min_daily_sales)
    return slate.stock / daily


def remove_out_of_stock(slate: Slate, cfg: SupplyDemandRules) -> Slate:
    """Drop items with zero stock (unknown stock is kept: a new listing has no snapshot yet)."""
    keep = ~(slate.stock <= 0)
    return slate if keep.all() else slate.subset(keep, OUT_OF_STOCK)


def adjust_for_stock(slate: Slate, cfg: SupplyDemandRules) -> Slate:
    """Low cover lowers the score (up to ``low_stock_penalty`` spreads at zero cover); overstock adds a boost."""
    cover = days_of_cover(slate, cfg)
    unit = slate.spread()
    low = (cover < cfg.low_stock_cover_days) & np.isfinite(cover)
    over = (cover > cfg.overstock_cover_days) & (slate.stock >= cfg.overstock_min_units)
    scores = slate.scores.copy()
    if cfg.low_stock_cover_days > 0:
        scores[low] -= cfg.low_stock_penalty * unit * (1.0 - cover[low] / cfg.low_stock_cover_days)
    scores[over] += cfg.overstock_boost * unit
    return slate.with_scores(scores, low, LOW_STOCK).with_scores(scores, over, OVERSTOCK)


def cap_per_group(order: np.ndarray, groups: np.ndarray, cap: int, k: int) -> tuple[np.ndarray, list[int]]:
    """At most ``cap`` items per group in the top k; the surplus moves to just below the top k, in order.

    Returns (new order, deferred positions). Unknown groups ("" or -1) are not capped.
    """
    counts: dict[object, int] = {}
    kept: list[int] = []
    deferred: list[int] = []
    for position in order:
        if len(kept) >= k:
            break
        group = groups[position]
        if group in ("", -1) or counts.get(group, 0) < cap:
            counts[group] = counts.get(group, 0) + 1
            kept.append(int(position))
        else:
            deferred.append(int(position))
    seen = set(kept) | set(deferred)
    tail = [int(p) for p in order if int(p) not in seen]
    return np.asarray(kept + deferred + tail, dtype=int), deferred


def seller_cap(slate: Slate, order: np.ndarray, cfg: SupplyDemandRules, k: int) -> tuple[Slate, np.ndarray]:
    new_order, deferred = cap_per_group(order, slate.seller, cfg.max_per_seller, k)
    return (slate.with_reasons(deferred, SELLER_CAP) if deferred else slate), new_order


def new_seller_exposure(slate: Slate, order: np.ndarray, cfg: SupplyDemandRules, k: int) -> tuple[Slate, np.ndarray]:
    """At least ``new_seller_min_items`` items of new sellers in the top k (when the slate has them)."""
    new_order, promoted, demoted = ensure_minimum(order, slate.is_new_seller, cfg.new_seller_min_items, k)
    if promoted:
        slate = slate.with_reasons(promoted, NEW_SELLER_PROMOTED).with_reasons(demoted, NEW_SELLER_DISPLACED)
    return slate, new_order
