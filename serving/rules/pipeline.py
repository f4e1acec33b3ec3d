"""The rules in their order: filters and score adjustments first, then the ordering rules over the sorted slate.

1. supply-demand: remove out-of-stock; damp low stock / boost overstock (score adjustments); pacing by days of
   cover (continuous: scarce stock damped, overstock boosted)
2. cold start (users without history): popularity in the segment replaces the model's scores
3. sort by score
4. cold start: category diversity; supply-demand: max N per seller in the top k
5. mixing quotas (feed); minimum exposure for new sellers
6. exploration for new items / new sellers (Thompson sampling, capped share; the request's seeded RNG)
7. learned exploration: Thompson sampling from the learned cold-start prior, within its budget
8. the new-seller exposure floor: a young seller below its impressions due today gets a slot (its best item)

A later rule may undo an earlier one at the margin (an explored item may belong to a capped seller): the order above
is the priority. Every moved item carries its reasons; removed items are in ``slate.removed``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from serving.rules.cold_start import diversify, explore, popular_in_segment
from serving.rules.config import RulesConfig
from serving.rules.learned_exploration import learned_explore
from serving.rules.mixing import mix_quotas
from serving.rules.pacing import pace_by_cover
from serving.rules.seller_floor import seller_floor
from serving.rules.slate import Slate, by_score
from serving.rules.supply_demand import adjust_for_stock, new_seller_exposure, remove_out_of_stock, seller_cap


@dataclass(frozen=True)
class RuleContext:
    k: int
    surface: str
    cold_user: bool
    seed: int
    segment_category: int | None = None
    # The share of the serving day gone (the seller floor's pacing; serving/seller_exposure.py).
    day_fraction: float = 1.0


def request_seed(*parts: object) -> int:
    """A stable seed from the request's identity (same request, same exploration draws)."""
    return zlib.crc32("|".join(map(str, parts)).encode())


def apply_rules(slate: Slate, rules: RulesConfig, ctx: RuleContext) -> tuple[Slate, np.ndarray]:
    """Returns the slate (scores, reasons, removed items) and the final order of its positions (best first)."""
    sd = rules.supply_demand
    if sd.enabled and sd.remove_out_of_stock:
        slate = remove_out_of_stock(slate, sd)
    if rules.cold_start.enabled and ctx.cold_user:
        slate = popular_in_segment(slate, rules.cold_start, ctx.segment_category)
    if sd.enabled:
        slate = adjust_for_stock(slate, sd)
    if rules.pacing.enabled:
        slate = pace_by_cover(slate, rules.pacing)
    order = by_score(slate)
    if rules.cold_start.enabled and ctx.cold_user:
        slate, order = diversify(slate, order, rules.cold_start, ctx.k)
    if sd.enabled:
        slate, order = seller_cap(slate, order, sd, ctx.k)
    if rules.mixing.enabled:
        slate, order = mix_quotas(slate, order, rules.mixing, ctx.k, ctx.surface)
    if sd.enabled:
        slate, order = new_seller_exposure(slate, order, sd, ctx.k)
    if rules.exploration.enabled:
        slate, order = explore(slate, order, rules.exploration, ctx.k, np.random.default_rng(ctx.seed))
    if rules.learned_exploration.enabled:
        rng = np.random.default_rng([ctx.seed, 1])  # its own stream: the draws above stay as they were
        slate, order = learned_explore(slate, order, rules.learned_exploration, ctx.k, rng)
    if rules.seller_floor.enabled:
        rng = np.random.default_rng([ctx.seed, 2])
        slate, order = seller_floor(
            slate, order, rules.seller_floor, rules.learned_exploration, ctx.k, ctx.day_fraction, rng
        )
    return slate, order
