"""The service's count of impressions per seller today, for the new-seller exposure floor (rules: seller_floor).

"Today" is the item cache's feature snapshot (``ItemCache.snapshot_ts``): the daily pipeline publishes a new one
each day, so the counts start again when the service loads it. The day's requests so far against the previous
day's total paces the floor through the day. In memory, per service process (a restart starts the day again).
"""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pandas as pd

from serving.item_cache import ItemCache
from serving.rules.slate import Slate


def seller_ages(items: ItemCache) -> np.ndarray:
    """Per cache row (the unknown last row included: NaN), the age in days of the seller's oldest item."""
    ages = items.matrix[:-1, items.column_index["item_age_days"]] if len(items) else np.zeros(0)
    sellers = items.seller[:-1]
    oldest = pd.Series(ages).groupby(pd.Series(sellers)).transform("max").to_numpy(dtype=float)
    oldest[sellers == ""] = np.nan
    return np.append(oldest, np.nan)


class SellerExposure:
    """Impressions served per seller since the current snapshot, and the requests that served them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.day: str | None = None
        self.counts: dict[str, int] = {}
        self.requests = 0
        self.previous_requests: int | None = None
        self._ages: tuple[ItemCache, np.ndarray] | None = None

    def _roll(self, day: str | None) -> None:
        if day != self.day:
            self.previous_requests = self.requests if self.day is not None and self.requests else None
            self.day, self.counts, self.requests = day, {}, 0

    def annotate(self, slate: Slate, items: ItemCache, rows: np.ndarray, count: bool = True) -> tuple[Slate, float]:
        """``slate`` (its items at ``rows`` of ``items``) with its sellers' ages and impressions so far today, and
        the share of the day gone (requests so far, this one too when ``count``, / yesterday's; 1 without
        yesterday's). ``count`` False (/explain): the request is not one of the day's."""
        with self._lock:
            self._roll(items.snapshot_ts)
            self.requests += int(count)
            if self._ages is None or self._ages[0] is not items:
                self._ages = (items, seller_ages(items))
            ages = self._ages[1][rows]
            shown = np.array([self.counts.get(str(s), 0) for s in slate.seller], dtype=float)
            fraction = min(max(self.requests, 1) / self.previous_requests, 1.0) if self.previous_requests else 1.0
        return replace(slate, seller_age_days=ages, seller_shown_today=shown), fraction

    def record(self, sellers: np.ndarray, request: bool = False) -> None:
        """Count one impression for the seller of each served item; ``request``: count the request too (an
        interleaved slate, whose two arms' rankings read the counts without counting, serves once)."""
        with self._lock:
            self.requests += int(request)
            for seller in sellers:
                if seller:
                    self.counts[str(seller)] = self.counts.get(str(seller), 0) + 1
