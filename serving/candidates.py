"""Candidate retrieval: co-visitation with the user's recent items, category affinity, trending, new items and
popularity, merged and deduplicated up to the configured candidate count.

Sources (the retrieval marts, as of the serving snapshot; a missing file leaves its source empty):
- ``retrieval_user_recent`` + ``retrieval_covisitation``: neighbours of the items the user clicked recently;
- category affinity: the most popular items of the user's top categories (user_cat_share_NN, from the same
  online read as the ranking features), in proportion to the shares;
- ``retrieval_trending``: items trending per category (the user's categories first), then globally;
- new items (item_is_new in the item cache), best smoothed CTR first;
- popularity (item_clicks_7d) fills whatever is left.
With a recall index (shoprank/recall.py, built by the `build-retrieval` step) two more sources:
- ``text`` (a search with a query): BM25 matches of the query over titles and category words, first, with
  ``recall.text_share`` of the budget; the query's category (query analysis) then filters every other source, and
  popularity fills from that category before the whole catalogue;
- ``embedding``: nearest items to the user's vector (ALS user factors; else the mean of their recent clicks, else
  their category shares), ``recall.embedding_share`` of the budget, after co-visitation.
Each source gets a share of the budget in that order; unused budget falls through to the next source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from serving.item_cache import ItemCache
from shoprank.recall import RecallIndex
from shoprank.settings import RecallSettings

SOURCE_SHARES = {"covisitation": 0.35, "category": 0.3, "trending": 0.1, "new": 0.1}


def split_known(candidate_ids: list[str], items: ItemCache) -> tuple[list[str], list[str]]:
    """The candidates the item cache knows, in order, and the unknown ones: an id that exists in no mart is not
    ranked (nor logged as shown). An empty cache (no item mart at all) knows nothing and drops nothing."""
    if not len(items):
        return candidate_ids, []
    known = items.positions
    return [c for c in candidate_ids if c in known], [c for c in candidate_ids if c not in known]


def _read(path: Path, columns: list[str]) -> pd.DataFrame | None:
    return pd.read_parquet(path, columns=columns) if path.exists() else None


def _grouped(frame: pd.DataFrame | None, key: str, value: str, order: str) -> dict[object, list[str]]:
    if frame is None or frame.empty:
        return {}
    frame = frame.sort_values([key, order])
    return {k: [str(v) for v in values] for k, values in frame.groupby(key, sort=False)[value]}


@dataclass(frozen=True)
class RetrievalIndex:
    popular: list[str] = field(default_factory=list)
    popular_by_category: dict[int, list[str]] = field(default_factory=dict)
    new_items: list[str] = field(default_factory=list)
    covisitation: dict[object, list[str]] = field(default_factory=dict)
    user_recent: dict[object, list[str]] = field(default_factory=dict)
    trending_by_category: dict[object, list[str]] = field(default_factory=dict)
    trending: list[str] = field(default_factory=list)
    item_category: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, cache: ItemCache, marts_dir: Path) -> RetrievalIndex:
        rows = np.arange(len(cache))
        clicks = np.nan_to_num(cache.column("item_clicks_7d", rows))
        category = cache.column("item_category_id", rows)
        is_new = cache.column("item_is_new", rows) == 1
        ctr = np.nan_to_num(cache.column("item_ctr_7d", rows))
        ids = np.asarray(cache.all_ids(), dtype=object)
        popular_order = np.lexsort((ids, -clicks))
        by_category: dict[int, list[str]] = {}
        item_category: dict[str, int] = {}
        for position in popular_order:
            if np.isfinite(category[position]):
                by_category.setdefault(int(category[position]), []).append(str(ids[position]))
                item_category[str(ids[position])] = int(category[position])
        new_order = [p for p in np.lexsort((ids, -ctr)) if is_new[p]]
        trending = _read(
            marts_dir / "retrieval_trending.parquet", ["item_id", "category_id", "trend_score", "trend_rank"]
        )
        trending_all = (
            []
            if trending is None
            else trending.sort_values(["trend_score", "item_id"], ascending=[False, True])["item_id"]
        )
        return cls(
            popular=[str(ids[p]) for p in popular_order],
            popular_by_category=by_category,
            new_items=[str(ids[p]) for p in new_order],
            covisitation=_grouped(
                _read(marts_dir / "retrieval_covisitation.parquet", ["item_id", "neighbour_item_id", "neighbour_rank"]),
                "item_id",
                "neighbour_item_id",
                "neighbour_rank",
            ),
            user_recent=_grouped(
                _read(marts_dir / "retrieval_user_recent.parquet", ["user_id", "item_id", "recency_rank"]),
                "user_id",
                "item_id",
                "recency_rank",
            ),
            trending_by_category=_grouped(
                None if trending is None else trending.astype({"category_id": int}),
                "category_id",
                "item_id",
                "trend_rank",
            ),
            trending=list(dict.fromkeys(str(i) for i in trending_all)),
            item_category=item_category,
        )

    def retrieve(
        self,
        user_id: str,
        category_shares: Sequence[float] | None,
        n: int,
        query: str | None = None,
        recall: RecallIndex | None = None,
        cfg: RecallSettings | None = None,
    ) -> tuple[list[str], dict[str, str]]:
        """Up to ``n`` distinct candidate ids and, per id, the source that brought it."""
        cfg = cfg or RecallSettings()
        picked: dict[str, str] = {}

        def take(ids: Sequence[str] | list[str], budget: int, source: str) -> None:
            limit = min(len(picked) + budget, n)
            for item_id in ids:
                if len(picked) >= limit:
                    return
                picked.setdefault(item_id, source)

        text = recall.text if recall is not None else None
        query_category: int | None = None
        if query and text is not None:
            take(text.search(query, n), int(cfg.text_share * n), "text")
            query_category = text.query_category(query)

        def in_query_category(ids: Sequence[str]) -> Sequence[str]:
            if query_category is None:
                return ids
            return [i for i in ids if self.item_category.get(i) == query_category]

        recent = self.user_recent.get(user_id, [])
        neighbours: list[str] = []
        # interleave rank by rank across seeds, so every recent item contributes its best neighbours first
        if recent:
            lists = [self.covisitation.get(item, []) for item in recent]
            neighbours = [lst[r] for r in range(max(map(len, lists), default=0)) for lst in lists if r < len(lst)]
        take(in_query_category(neighbours), int(SOURCE_SHARES["covisitation"] * n), "covisitation")
        embeddings = recall.embeddings if recall is not None else None
        if embeddings is not None:
            vector = embeddings.user_vector(user_id, recent, category_shares)
            if vector is not None:
                # a category filter keeps about 1/categories of the neighbours: ask for more
                wanted = n if query_category is None else n * max(len(self.popular_by_category), 1)
                take(
                    in_query_category(embeddings.neighbours(vector, wanted)), int(cfg.embedding_share * n), "embedding"
                )
        top_categories: list[int] = []
        if query_category is not None:
            top_categories = [query_category]
            take(self.popular_by_category.get(query_category, []), int(SOURCE_SHARES["category"] * n), "category")
        elif category_shares is not None:
            shares = np.nan_to_num(np.asarray(category_shares, dtype=float))
            if shares.sum() > 0:
                top_categories = [int(c) for c in np.argsort(-shares, kind="stable") if shares[c] > 0]
                budget = int(SOURCE_SHARES["category"] * n)
                for c in top_categories:
                    take(
                        self.popular_by_category.get(c, []), int(np.ceil(budget * shares[c] / shares.sum())), "category"
                    )
        trending = [i for c in top_categories[:3] for i in self.trending_by_category.get(c, [])] + self.trending
        take(in_query_category(trending), int(SOURCE_SHARES["trending"] * n), "trending")
        take(in_query_category(self.new_items), int(SOURCE_SHARES["new"] * n), "new-item")
        if query_category is not None:
            take(self.popular_by_category.get(query_category, []), n, "popular")
        take(self.popular, n, "popular")
        return list(picked), picked
