"""Cold start that learns: Thompson sampling from the learned content prior, with an exploration budget.

Every item's click rate has a Beta posterior: the cold-start prior (training/cold_start_prior.py: what items of
its category, type, price band and seller history did in their first days) worth ``prior_strength`` impressions,
updated by the item's own impressions and clicks. Its purchase rate per click is the prior CVR worth
``cvr_prior_strength`` clicks, updated likewise. One draw per item: value = sampled CTR x posterior CVR (purchases
per impression). New items and items of new sellers outside the top k take the place of the lowest-ranked
established top-k item whose draw they beat, at most ``budget`` of the top k. The boost fades by itself (the
posterior narrows as impressions accumulate, so a weak newcomer stops winning draws) and ends at
``graduate_impressions``: from there the model alone decides.
"""

from __future__ import annotations

import numpy as np

from serving.rules.cold_start import exploration_swaps
from serving.rules.config import LearnedExplorationRules
from serving.rules.slate import Slate, promote

EXPLORE_LEARNED_ITEM = "explore-learned-new-item"
EXPLORE_LEARNED_SELLER = "explore-learned-new-seller"
DISPLACED_BY_LEARNED = "displaced-by-learned-exploration"


def posterior_value(slate: Slate, cfg: LearnedExplorationRules, rng: np.random.Generator) -> np.ndarray:
    """One Thompson draw of purchases per impression for every item of the slate."""
    fallback = float(np.nanmean(slate.prior_ctr)) if np.isfinite(slate.prior_ctr).any() else 0.05
    prior_ctr = np.clip(np.where(np.isfinite(slate.prior_ctr), slate.prior_ctr, fallback), 1e-4, 1 - 1e-4)
    fallback_cvr = float(np.nanmean(slate.prior_cvr)) if np.isfinite(slate.prior_cvr).any() else 0.2
    prior_cvr = np.clip(np.where(np.isfinite(slate.prior_cvr), slate.prior_cvr, fallback_cvr), 1e-4, 1 - 1e-4)
    impressions = np.maximum(slate.history_impressions, 0.0)
    clicks = np.clip(slate.history_clicks, 0.0, impressions)
    alpha = cfg.prior_strength * prior_ctr + clicks
    beta = cfg.prior_strength * (1 - prior_ctr) + impressions - clicks
    ctr = rng.beta(alpha, beta)
    purchases = np.clip(slate.history_purchases, 0.0, clicks)
    cvr = (cfg.cvr_prior_strength * prior_cvr + purchases) / (cfg.cvr_prior_strength + clicks)
    return np.asarray(ctr * cvr, dtype=float)


def learned_explore(
    slate: Slate, order: np.ndarray, cfg: LearnedExplorationRules, k: int, rng: np.random.Generator
) -> tuple[Slate, np.ndarray]:
    """Swap exploring newcomers into the top k where their draw beats the displaced item's (see the module)."""
    newcomer = (slate.is_new_item | slate.is_new_seller) & (slate.history_impressions < cfg.graduate_impressions)
    first = slate.is_new_seller if cfg.new_sellers_first else None
    incoming, outgoing = exploration_swaps(
        newcomer, order, k, cfg.budget, lambda: posterior_value(slate, cfg, rng), first=first
    )
    if not incoming:
        return slate, order
    items = [p for p in incoming if slate.is_new_item[p]]
    sellers = [p for p in incoming if not slate.is_new_item[p]]
    slate = slate.with_reasons(items, EXPLORE_LEARNED_ITEM).with_reasons(sellers, EXPLORE_LEARNED_SELLER)
    return slate.with_reasons(outgoing, DISPLACED_BY_LEARNED), promote(order, incoming, outgoing)
