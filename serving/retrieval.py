"""Popularity: the fallback ranking, and the last source of candidate retrieval (serving/candidates.py).

The item universe and its popularity come from the item_features mart (``<marts>/item_features.parquet``, the
file Feast's item view reads offline), keeping each item's latest snapshot (max ``feature_ts``) and ranking by
``POPULARITY_FEATURE`` (ties by item_id). It is loaded once when the service starts; co-visitation, category
affinity, trending and new-item pools (serving/candidates.py) come first. The same popularity scores are the
fallback ranking when the online store or the model is unavailable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from serving.item_cache import ItemCache
from shoprank.ranking_features import POPULARITY_FEATURE


@dataclass
class PopularityIndex:
    """Items ordered by popularity (most popular first), with their popularity as a float."""

    popularity: pd.Series = field(default_factory=lambda: pd.Series(dtype=float, name=POPULARITY_FEATURE))

    @classmethod
    def from_frame(cls, items: pd.DataFrame) -> PopularityIndex:
        """From mart rows (item_id, feature_ts, POPULARITY_FEATURE, ...): one latest snapshot per item."""
        if items.empty:
            return cls()
        latest = items.sort_values(["item_id", "feature_ts"]).drop_duplicates("item_id", keep="last")
        values = pd.to_numeric(latest[POPULARITY_FEATURE], errors="coerce").fillna(0.0).astype(float)
        series = pd.Series(values.to_numpy(), index=latest["item_id"].astype(str).to_numpy(), name=POPULARITY_FEATURE)
        order = np.lexsort((series.index.to_numpy(dtype=object), -series.to_numpy()))
        return cls(series.iloc[order])

    @classmethod
    def from_items(cls, cache: ItemCache) -> PopularityIndex:
        """From the item cache (one latest row per item already)."""
        rows = np.arange(len(cache))
        values = np.nan_to_num(cache.column(POPULARITY_FEATURE, rows))
        series = pd.Series(values, index=cache.ids.to_numpy(dtype=object), name=POPULARITY_FEATURE)
        order = np.lexsort((series.index.to_numpy(dtype=object), -series.to_numpy()))
        return cls(series.iloc[order])

    @classmethod
    def from_parquet(cls, path: Path) -> PopularityIndex:
        columns = ["item_id", "feature_ts", POPULARITY_FEATURE]
        return cls.from_frame(pd.read_parquet(path, columns=columns))

    def __len__(self) -> int:
        return len(self.popularity)

    def top(self, n: int) -> list[str]:
        return [str(i) for i in self.popularity.index[:n]]

    def scores(self, item_ids: Sequence[str]) -> np.ndarray:
        """Popularity of each item; items outside the index score 0."""
        return self.popularity.reindex(list(item_ids)).fillna(0.0).to_numpy(dtype=float)
