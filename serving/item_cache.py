"""In-process item feature cache: every item's latest features, loaded once at start-up and on reload.

Source: the latest snapshot (max ``feature_ts`` per entity) of each item-side mart the serving model's feature
service names (its views keyed on item_id, and on seller_id, joined through the item's seller), read from the
marts' parquet exports: the same rows the materialize step loads into the online store (which keeps the newest
value per entity), in one file scan each. The item_features mart is always read: retrieval and the business rules
need its columns whatever the model. Reading the online store instead would need the list of all item ids anyway
(the store cannot be enumerated) and costs a Feast call per refresh. The marts directory is a pointer to the
published snapshot (warehouse.publish): a publish moves it to a new directory, which the service notices cheaply
(``cache_refresh_seconds``, :func:`published_sources`) besides POST /admin/reload.

Lookups are vectorised: ``rows(ids)`` maps ids to row positions; unknown ids map to a trailing all-NaN row
(cold-start items).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from shoprank.mart_files import DAY_FILE_GLOB, read_mart
from shoprank.query_relevance import parse
from shoprank.ranking_features import ITEM_FEATURES, TitleWordIndex, title_words

ITEM_FEATURES_FILE = "item_features.parquet"
SELLER_COLUMN = "item_seller_id"


@dataclass(frozen=True)
class ItemView:
    """An item-side feature view of the serving feature service: its mart (Feast's source path: the mart's file, or
    the folder of a day-partitioned mart's day files, shoprank/mart_files.py), join key and numeric features.

    ``join_key`` is ``item_id``, or ``seller_id`` for a view joined through each item's seller."""

    name: str
    path: Path
    join_key: str
    features: tuple[str, ...]


def _latest(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    return frame.sort_values([key, "feature_ts"]).drop_duplicates(key, keep="last")


@dataclass(frozen=True, eq=False)
class ItemCache:
    ids: pd.Index
    # (n_items + 1, len(columns)) float64; ITEM_FEATURES first, then the views' features; the last row is all NaN.
    matrix: np.ndarray
    columns: tuple[str, ...]
    seller: np.ndarray  # object, "" for the unknown row
    seller_is_new: np.ndarray  # bool: the seller's oldest item is younger than new_seller_days
    snapshot_ts: str | None
    source_mtime: float
    # The mart files the cache was built from (the refresh watcher compares their newest modification time).
    sources: tuple[Path, ...] = ()
    # Each item's title words (title_words), for the request-time query match; loaded only for models that use it
    # (None: not loaded). The unknown row has no words.
    titles: np.ndarray | None = None
    # Each item's title as the relevance model reads it (shoprank.query_relevance.parse), loaded with the words.
    parsed_titles: np.ndarray | None = None
    # The inverted index of ``titles`` (built with them): the one query_title_match of serving, for the final
    # ranker's candidates and the pre-ranker's thousands alike.
    title_index: TitleWordIndex | None = None

    @classmethod
    def empty(cls) -> ItemCache:
        return cls.from_frame(pd.DataFrame(columns=["item_id", "feature_ts", SELLER_COLUMN, *ITEM_FEATURES]))

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        new_seller_days: float = 14.0,
        mtime: float = 0.0,
        views: Sequence[tuple[ItemView, pd.DataFrame]] = (),
        sources: tuple[Path, ...] = (),
    ) -> ItemCache:
        """From item_features rows, plus (view, mart rows) pairs of further item-side views."""
        latest = _latest(frame, "item_id").reset_index(drop=True)
        blocks = [latest[ITEM_FEATURES].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)]
        columns = list(ITEM_FEATURES)
        sellers = latest[SELLER_COLUMN].fillna("").astype(str).to_numpy(dtype=object)
        for view, rows in views:
            features = [f for f in view.features if f not in columns]
            if not features:
                continue
            snapshot = _latest(rows, view.join_key).set_index(view.join_key)[features]
            keys = latest["item_id"] if view.join_key == "item_id" else pd.Series(sellers)
            aligned = snapshot.reindex(keys.astype(str).to_numpy())  # entities absent from the view: NaN
            blocks.append(aligned.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float))
            columns += features
        matrix = np.hstack(blocks) if blocks else np.zeros((0, 0))
        matrix = np.vstack([matrix, np.full((1, len(columns)), np.nan)])
        ages = pd.to_numeric(latest["item_age_days"], errors="coerce")
        oldest = ages.groupby(sellers).transform("max").to_numpy(dtype=float) if len(latest) else np.zeros(0)
        seller_is_new = np.append((oldest < new_seller_days) & (sellers != ""), False)
        snapshot_ts = str(latest["feature_ts"].max()) if len(latest) else None
        return cls(
            ids=pd.Index(latest["item_id"].astype(str).to_numpy(), name="item_id"),
            matrix=matrix,
            columns=tuple(columns),
            seller=np.append(sellers, ""),
            seller_is_new=seller_is_new,
            snapshot_ts=snapshot_ts,
            source_mtime=mtime,
            sources=sources,
        )

    @classmethod
    def from_marts(cls, marts_dir: Path, new_seller_days: float = 14.0, views: Sequence[ItemView] = ()) -> ItemCache:
        """item_features from ``marts_dir``, plus every view in ``views`` from its own mart file."""
        path = Path(marts_dir) / ITEM_FEATURES_FILE
        base = pd.read_parquet(path, columns=["item_id", "feature_ts", SELLER_COLUMN, *ITEM_FEATURES])
        extra = [v for v in views if set(v.features) - set(ITEM_FEATURES)]
        loaded = [(view, read_view(view.path, [view.join_key, "feature_ts", *view.features])) for view in extra]
        sources = (path, *(Path(v.path) for v in extra))
        return cls.from_frame(base, new_seller_days, newest_mtime(sources), loaded, sources)

    def with_titles(self, catalogue: pd.DataFrame) -> ItemCache:
        """This cache with the titles of ``catalogue`` (item_id, title; the raw items table) attached."""
        words = catalogue.drop_duplicates("item_id", keep="last").set_index("item_id")["title"].map(title_words)
        aligned = words.reindex(self.ids.astype(str))
        empty = frozenset[str]()
        titles = np.empty(len(self.ids) + 1, dtype=object)
        titles[:] = [w if isinstance(w, frozenset) else empty for w in aligned] + [empty]
        raw = catalogue.drop_duplicates("item_id", keep="last").set_index("item_id")["title"]
        parsed = np.empty(len(self.ids) + 1, dtype=object)
        parsed[:] = [parse(t) for t in raw.reindex(self.ids.astype(str))] + [parse(None)]
        return replace(self, titles=titles, parsed_titles=parsed, title_index=TitleWordIndex(titles))

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

    @cached_property
    def column_index(self) -> dict[str, int]:
        return {name: j for j, name in enumerate(self.columns)}

    def column(self, name: str, rows: np.ndarray) -> np.ndarray:
        return self.matrix[rows, self.column_index[name]]

    def frame(self, item_ids: Sequence[str]) -> pd.DataFrame:
        """Stored features of ``item_ids`` indexed by item_id (NaN rows for unknown items)."""
        rows = self.rows(item_ids)
        index = pd.Index(list(item_ids), name="item_id")
        frame = pd.DataFrame(self.matrix[rows], columns=list(self.columns), index=index)
        frame[SELLER_COLUMN] = self.seller[rows]
        return frame

    def all_ids(self) -> list[str]:
        return [str(i) for i in self.ids]


def read_view(path: Path, columns: list[str]) -> pd.DataFrame:
    """An item-side view's mart at its Feast source ``path``: ``<mart>.parquet`` or a day-partitioned mart's folder,
    read in day order (shoprank/mart_files.py: read_mart)."""
    path = Path(path)
    return read_mart(path.parent, path.name.removesuffix(".parquet"), columns)


def newest_mtime(paths: Sequence[Path]) -> float:
    """The newest modification time among ``paths`` that exist, a folder's day files included (a day file rewritten
    in place does not touch its folder's mtime); 0 when none exists."""
    files = [f for p in map(Path, paths) for f in ([p, *p.glob(DAY_FILE_GLOB)] if p.is_dir() else [p])]
    return max((f.stat().st_mtime for f in files if f.exists()), default=0.0)


def published_sources(marts_dir: Path, loaded: Sequence[Path]) -> tuple[Path, ...]:
    """The files a cache loaded from ``loaded`` would read now: those of the snapshot the marts pointer
    ``marts_dir`` resolves to (a publish swaps the pointer to a new directory; the watcher compares the two)."""
    published = Path(marts_dir).resolve()
    if not loaded:
        return (published / ITEM_FEATURES_FILE,)
    root = Path(loaded[0]).parent  # item_features' directory: the snapshot the cache was loaded from
    return tuple(published / Path(p).name if Path(p).parent == root else Path(p) for p in loaded)
