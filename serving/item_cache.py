"""In-process item feature cache: every item's latest features, loaded once at start-up and on reload.

Source: the latest snapshot (max ``feature_ts`` per item) of the item_features mart's parquet export, the same rows
the materialize step loads into the online store (the online store keeps the newest value per entity), read in
one ~10 ms file scan. Reading it from the online store instead would need the list of all item ids anyway (the
store cannot be enumerated) and costs a Feast call per refresh; the mart file also carries a modification time,
so the service can cheaply notice a new snapshot (``cache_refresh_seconds``) besides POST /admin/reload.

Lookups are vectorised: ``rows(ids)`` maps ids to row positions through a pandas Index; unknown ids map to a
trailing all-NaN row (cold-start items).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from shoprank.ranking_features import ITEM_FEATURES

ITEM_FEATURES_FILE = "item_features.parquet"


@dataclass(frozen=True, eq=False)
class ItemCache:
    ids: pd.Index
    # (n_items + 1, len(ITEM_FEATURES)) float64 in ITEM_FEATURES order; the last row is all NaN (unknown items).
    matrix: np.ndarray
    seller: np.ndarray  # object, "" for the unknown row
    seller_is_new: np.ndarray  # bool: the seller's oldest item is younger than new_seller_days
    snapshot_ts: str | None
    source_mtime: float

    @classmethod
    def empty(cls) -> ItemCache:
        return cls.from_frame(pd.DataFrame(columns=["item_id", "feature_ts", "item_seller_id", *ITEM_FEATURES]))

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, new_seller_days: float = 14.0, mtime: float = 0.0) -> ItemCache:
        latest = frame.sort_values(["item_id", "feature_ts"]).drop_duplicates("item_id", keep="last")
        matrix = latest[ITEM_FEATURES].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        matrix = np.vstack([matrix, np.full((1, len(ITEM_FEATURES)), np.nan)])
        sellers = latest["item_seller_id"].fillna("").astype(str).to_numpy(dtype=object)
        ages = pd.to_numeric(latest["item_age_days"], errors="coerce")
        oldest = ages.groupby(sellers).transform("max").to_numpy(dtype=float) if len(latest) else np.zeros(0)
        seller_is_new = np.append((oldest < new_seller_days) & (sellers != ""), False)
        snapshot = str(latest["feature_ts"].max()) if len(latest) else None
        return cls(
            ids=pd.Index(latest["item_id"].astype(str).to_numpy(), name="item_id"),
            matrix=matrix,
            seller=np.append(sellers, ""),
            seller_is_new=seller_is_new,
            snapshot_ts=snapshot,
            source_mtime=mtime,
        )

    @classmethod
    def from_marts(cls, marts_dir: Path, new_seller_days: float = 14.0) -> ItemCache:
        path = Path(marts_dir) / ITEM_FEATURES_FILE
        columns = ["item_id", "feature_ts", "item_seller_id", *ITEM_FEATURES]
        mtime = path.stat().st_mtime
        return cls.from_frame(pd.read_parquet(path, columns=columns), new_seller_days, mtime)

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, item_ids: Sequence[str]) -> np.ndarray:
        """Row positions of ``item_ids``; unknown ids point at the trailing NaN row."""
        lookup, missing = self.positions, len(self.ids)
        return np.fromiter((lookup.get(i, missing) for i in item_ids), dtype=np.int64, count=len(item_ids))

    @cached_property
    def positions(self) -> dict[str, int]:
        """item_id -> row (a dict lookup beats pandas' indexer at a few hundred ids per request)."""
        return {str(item_id): row for row, item_id in enumerate(self.ids)}

    def column(self, name: str, rows: np.ndarray) -> np.ndarray:
        return self.matrix[rows, ITEM_FEATURES.index(name)]

    def frame(self, item_ids: Sequence[str]) -> pd.DataFrame:
        """Stored features of ``item_ids`` indexed by item_id (NaN rows for unknown items)."""
        rows = self.rows(item_ids)
        frame = pd.DataFrame(self.matrix[rows], columns=ITEM_FEATURES, index=pd.Index(list(item_ids), name="item_id"))
        frame["item_seller_id"] = self.seller[rows]
        return frame

    def all_ids(self) -> list[str]:
        return [str(i) for i in self.ids]
