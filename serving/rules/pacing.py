"""Supply-demand that looks ahead: exposure paced by days of cover (stock over the recent daily sales).

An item whose stock would not last ``horizon_days`` at its current sell-through is scarce: promoting it sells it
out and the next users see an item they cannot buy, so its score drops, up to ``max_penalty`` score spreads at
zero cover. An item with more than ``target_cover_days`` of cover is overstock to clear: it gains up to
``max_boost`` spreads, growing with the log of how far over the target it is (full at ten times the target).
Unlike the threshold rules of supply_demand.py, both adjustments are continuous in the cover.
"""

from __future__ import annotations

import numpy as np

from serving.rules.config import PacingRules
from serving.rules.slate import Slate

PACED_SCARCE = "paced-scarce-stock"
PACED_OVERSTOCK = "paced-overstock"


def days_of_cover(slate: Slate, cfg: PacingRules) -> np.ndarray:
    daily = np.maximum(np.nan_to_num(slate.purchases_7d) / 7.0, cfg.min_daily_sales)
    return slate.stock / daily


def pace_by_cover(slate: Slate, cfg: PacingRules) -> Slate:
    """Scores lowered for stock that would run out within the horizon, raised for cover beyond the target."""
    cover = days_of_cover(slate, cfg)
    known = np.isfinite(cover)
    scarce = known & (cover < cfg.horizon_days)
    over = known & (cover > cfg.target_cover_days)
    unit = slate.spread()
    scores = slate.scores.copy()
    scores[scarce] -= cfg.max_penalty * unit * (1.0 - cover[scarce] / cfg.horizon_days)
    ratio = np.log(cover[over] / cfg.target_cover_days) / np.log(10.0)
    scores[over] += cfg.max_boost * unit * np.minimum(ratio, 1.0)
    return slate.with_scores(scores, scarce, PACED_SCARCE).with_scores(scores, over, PACED_OVERSTOCK)
