"""Mixing: a minimum share of the top k for each item type (product, video, live) on the configured surfaces."""

from __future__ import annotations

import math

import numpy as np

from serving.rules.config import MixingRules
from serving.rules.slate import ITEM_TYPES, Slate, ensure_minimum

MIX_QUOTA = "mix-quota"
DISPLACED_BY_QUOTA = "displaced-by-mix-quota"


def mix_quotas(slate: Slate, order: np.ndarray, cfg: MixingRules, k: int, surface: str) -> tuple[Slate, np.ndarray]:
    """For each type below its minimum, promote its best items in place of the lowest-ranked items of types that
    are not themselves at risk of falling under their own minimum."""
    if surface not in cfg.surfaces:
        return slate, order
    top_k = min(k, len(order))
    minimums = {ITEM_TYPES[name]: math.ceil(share * top_k) for name, share in cfg.min_share.items() if share > 0}
    for code, name in sorted(((ITEM_TYPES[n], n) for n in cfg.min_share), reverse=True):
        if code not in minimums:
            continue
        mask = slate.item_type == code
        # Items of a type with a quota are protected while that type holds no more than its own minimum.
        protected = np.zeros(len(slate), dtype=bool)
        for other, minimum in minimums.items():
            if other != code and int((slate.item_type[order[:top_k]] == other).sum()) <= minimum:
                protected |= slate.item_type == other
        order, promoted, demoted = ensure_minimum(order, mask, minimums[code], top_k, protected)
        if promoted:
            slate = slate.with_reasons(promoted, f"{MIX_QUOTA}:{name}").with_reasons(demoted, DISPLACED_BY_QUOTA)
    return slate, order
