"""The cold-start prior's on-disk format: written by training/cold_start_prior.py, read by serving.

One parquet file, one row per catalogue item: ``prior_ctr`` and ``prior_cvr`` (what a new item of this content is
expected to do in its first days: clicks per impression, purchases per click) and the item's history so far
(``impressions``, ``clicks``, ``purchases``), from which the exploration rule forms each item's posterior. It is
replaced atomically (written beside, then renamed), so a reader sees the old file or the new one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ("item_id", "prior_ctr", "prior_cvr", "impressions", "clicks", "purchases")


@dataclass(frozen=True)
class ItemPriors:
    """The table indexed by item id; items it does not know get the mean prior and no history."""

    table: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(COLUMNS)).set_index("item_id"))

    def __len__(self) -> int:
        return len(self.table)

    def lookup(self, item_ids: np.ndarray | list[str]) -> dict[str, np.ndarray]:
        """Per item: prior_ctr, prior_cvr (NaN when unknown) and impressions, clicks, purchases (0 when unknown)."""
        rows = self.table.reindex(pd.Index([str(i) for i in item_ids]))
        out = {name: rows[name].to_numpy(dtype=float) for name in ("prior_ctr", "prior_cvr")}
        for name in ("impressions", "clicks", "purchases"):
            out[name] = np.nan_to_num(rows[name].to_numpy(dtype=float))
        return out


def write_priors(frame: pd.DataFrame, path: Path) -> None:
    missing = set(COLUMNS) - set(frame.columns)
    if missing:
        raise ValueError(f"the prior table lacks columns {sorted(missing)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    frame[list(COLUMNS)].to_parquet(partial, index=False)
    os.replace(partial, path)


def load_priors(path: Path) -> ItemPriors:
    """The prior table at ``path``; an empty one when none has been trained yet."""
    if not Path(path).exists():
        return ItemPriors()
    frame = pd.read_parquet(path, columns=list(COLUMNS))
    return ItemPriors(frame.astype({"item_id": str}).set_index("item_id"))
