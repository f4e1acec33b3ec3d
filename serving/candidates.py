"""Candidate retrieval: co-visitation with the user's recent items, category affinity, trending, new items and
popularity, merged and deduplicated up to the configured candidate count.

Sources (the retrieval marts, as of the serving snapshot; a missing file leaves its source empty):
- ``retrieval_user_recent`` + ``retrieval_covisitation``: neighbours of the items the user clicked recently;
- category affinity: the most popular items of the user's top categories (user_cat_share_NN, from the same
  online read as the ranking features), in proportion to the shares;
- ``retrieval_trending``: items trending per category (the user's categories first), then globally;
- new items (item_is_new in the item cache), best smoothed CTR first;
- popularity (item_clicks_7d) fills whatever is left.
Before them all on a feed request (no query): ``affinity``, the ``recall.affinity_share`` best items of the whole
catalogue by item quality x the user's category lift (:meth:`RetrievalIndex.affinity_items`; quality alone for a
user without category shares), the source that held the most of the next day's feed clicks at 1M events
(docs/retrieval.md).
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
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from serving.item_cache import ItemCache
from shoprank.recall import RecallIndex
from shoprank.settings import RecallSettings

SOURCE_SHARES = {"covisitation": 0.35, "category": 0.3, "trending": 0.1, "new": 0.1}
# The affinity source's score (measured on the 1M-event world's next-day feed clicks; R@500 moved within noise over
# LIFT_POWER 0.5-1.5, SHARE_PRIOR 0.1-0.5, PRIOR_IMPRESSIONS 5-100): an item's expected clicks are its exposure
# (log 7-day impressions) times its click rate (CTR smoothed toward the catalogue's over PRIOR_IMPRESSIONS), times
# the user's lift for its category: their click share over the catalogue's, shrunk toward 1 by SHARE_PRIOR.
PRIOR_IMPRESSIONS = 20.0
SHARE_PRIOR = 0.3
LIFT_POWER = 0.5


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
    # per cache row: the item's id, its category (-1: none), its quality (log impressions x smoothed CTR); per
    # category its share of the catalogue's 7-day clicks (the affinity source)
    row_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    row_category: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    quality: np.ndarray = field(default_factory=lambda: np.zeros(0))
    catalogue_shares: np.ndarray = field(default_factory=lambda: np.zeros(0))

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
        impressions = np.nan_to_num(cache.column("item_impressions_7d", rows))
        prior_ctr = clicks.sum() / impressions.sum() if impressions.sum() > 0 else 0.0
        smoothed_ctr = (clicks + PRIOR_IMPRESSIONS * prior_ctr) / (impressions + PRIOR_IMPRESSIONS)
        with np.errstate(divide="ignore"):
            quality = np.log1p(impressions) + np.log(smoothed_ctr)  # -inf when nothing was ever clicked
        row_category = np.where(np.isfinite(category), category, -1).astype(np.int64)
        known = row_category >= 0
        catalogue_shares = np.bincount(row_category[known], weights=clicks[known]) if known.any() else np.zeros(0)
        if catalogue_shares.sum() > 0:
            catalogue_shares = catalogue_shares / catalogue_shares.sum()
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
            row_ids=ids,
            row_category=row_category,
            quality=quality,
            catalogue_shares=catalogue_shares,
        )

    def affinity_items(self, category_shares: Sequence[float] | None, k: int) -> list[str]:
        """The ``k`` items of the catalogue with the best quality x the user's category lift, best first; a user
        without shares (no clicks) has a lift of 1 everywhere: the catalogue by quality alone (at 1M events their
        feed clicks in it: 0.215 of 396 at 500, vs 0.184 in the other sources' 500). Vectorised over the catalogue:
        one score per item, one partial sort."""
        if k <= 0 or not len(self.quality) or self.catalogue_shares.sum() <= 0:
            return []
        catalogue = self.catalogue_shares
        shares = np.nan_to_num(np.asarray(catalogue if category_shares is None else category_shares, dtype=float))
        if shares.sum() <= 0:
            shares = catalogue  # the user's shares equal the catalogue's: lift 1
        user = np.zeros(len(catalogue))
        m = min(len(shares), len(catalogue))
        user[:m] = shares[:m] / shares.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            lift = (user + SHARE_PRIOR * catalogue) / ((1 + SHARE_PRIOR) * catalogue)
        lift = np.where(np.isfinite(lift) & (lift > 0), lift, 1.0)
        by_row = np.ones(len(self.quality))
        known = self.row_category >= 0
        by_row[known] = lift[self.row_category[known]]
        score = self.quality + LIFT_POWER * np.log(by_row)
        k = min(k, len(score))
        top = np.argpartition(-score, k - 1)[:k]
        top = top[np.lexsort((self.id_order[top], -score[top]))]  # ties: by id, deterministic
        ids = self.id_strings
        return [ids[p] for p in top.tolist()]

    # Per row, the rank of its id among all ids, and the ids as str: the affinity source sorts thousands of rows per
    # feed request (4,500 with the funnel); comparing the object ids themselves cost 7 ms of its 9 (1M-event world).
    @cached_property
    def id_order(self) -> np.ndarray:
        order = np.empty(len(self.row_ids), dtype=np.int64)
        order[np.argsort(self.row_ids.astype(str), kind="stable")] = np.arange(len(self.row_ids))
        return order

    @cached_property
    def id_strings(self) -> list[str]:
        return [str(i) for i in self.row_ids]

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

        if query_category is None and not query and cfg.affinity_share > 0:
            budget = int(cfg.affinity_share * n)
            take(self.affinity_items(category_shares, budget), budget, "affinity")
            # new items keep their share right behind it: the exploration rule can only boost a new item retrieved
            # (the affinity score knows too little of them to pick them: ~8 of 75 new items in 500 on the default
            # world instead of ~46)
            take(self.new_items, int(SOURCE_SHARES["new"] * n), "new-item")
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
