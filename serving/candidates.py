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
(docs/retrieval.md); right behind it the new items' share, the new items best by the same score.
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
# Given the user's click count over the shares' window (user_clicks_30d, which the shares divide by; serving passes
# it), the lift is the Dirichlet posterior mean of their category distribution: their clicks per category plus
# PSEUDO_CLICKS clicks spread as the catalogue's shares, over the catalogue's share. So 2 clicks of 2 in a category
# lift it less than 40 of 50 do (by shares alone both get the same lift). At 1M events, next-day feed clicks in the
# merged 500: 0.268 -> 0.274 (1,553 clicks), 0.282 -> 0.287 (4,315) (docs/retrieval.md; PSEUDO_CLICKS 2-10, power
# 0.6-0.8 measured).
PSEUDO_CLICKS = 5.0
COUNT_LIFT_POWER = 0.6


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


_NONE = np.zeros(0, dtype=np.int64)
_NO_CATEGORY = np.iinfo(np.int64).min  # an item without a category: equal to no query's category
SOURCES = ("text", "affinity", "new-item", "covisitation", "embedding", "category", "trending", "popular")


@dataclass(frozen=True)
class Retrieved:
    """Retrieved candidates as arrays: ``codes`` index ``ids`` (the universe of :class:`Codes` plus the recall
    index's own ids), ``sources`` index :data:`SOURCES`; in retrieval order."""

    codes: np.ndarray
    sources: np.ndarray
    universe: list[str]

    def ids(self) -> list[str]:
        universe = self.universe
        return [universe[c] for c in self.codes.tolist()]

    def source_names(self) -> list[str]:
        return [SOURCES[s] for s in self.sources.tolist()]

    def __len__(self) -> int:
        return len(self.codes)


@dataclass
class RecallCodes:
    """A recall index's rows as codes of a :class:`Codes` universe: its text documents' and its vectors' items;
    ``ids`` the items the universe lacks (coded after it), ``category`` per code of both (the query filter)."""

    text: np.ndarray | None
    embedding: np.ndarray | None
    ids: list[str]
    category: np.ndarray


@dataclass
class Codes:
    """The retrieval sources' ids as int64 codes of one universe (``ids``; ``universe`` id -> code)."""

    universe: dict[str, int]
    ids: list[str]
    category: np.ndarray  # per code, its item's category (_NO_CATEGORY: none)
    popular: np.ndarray
    popular_by_category: dict[int, np.ndarray]
    new_items: np.ndarray
    covisitation: dict[str, np.ndarray]
    trending_by_category: dict[int, np.ndarray]
    trending: np.ndarray
    item_category: dict[str, int] = field(default_factory=dict)
    _recall: list[tuple[RecallIndex, RecallCodes]] = field(default_factory=list)

    def for_recall(self, recall: RecallIndex | None) -> RecallCodes:
        """The recall index's rows as codes (built once per recall version: the last one is kept)."""
        cached = self._recall
        if cached and cached[0][0] is recall:
            return cached[0][1]
        extra: dict[str, int] = {}
        size = len(self.ids)

        def code(item_id: str) -> int:
            found = self.universe.get(item_id)
            return extra.setdefault(item_id, size + len(extra)) if found is None else found

        def encode(item_ids: np.ndarray) -> np.ndarray:
            return np.fromiter((code(str(i)) for i in item_ids), dtype=np.int64, count=len(item_ids))

        text = encode(recall.text.item_ids) if recall is not None and recall.text is not None else None
        embeddings = recall.embeddings if recall is not None else None
        embedding = encode(embeddings.item_ids) if embeddings is not None else None
        category = np.concatenate(
            [self.category, np.fromiter((self.item_category.get(i, _NO_CATEGORY) for i in extra), dtype=np.int64)]
        )
        codes = RecallCodes(text, embedding, list(extra), category)
        if recall is not None:
            self._recall[:] = [(recall, codes)]
        return codes


class _Picker:
    """The merge: each source's codes in order, those not picked yet, up to its budget and ``n`` in all."""

    def __init__(self, n: int, universe: int) -> None:
        self.n = n
        self.seen = np.zeros(universe, dtype=bool)
        self.codes: list[np.ndarray] = []
        self.sizes: list[int] = []
        self.sources: list[int] = []
        self.count = 0

    def take(self, codes: np.ndarray, budget: int, source: str) -> None:
        room = min(budget, self.n - self.count)
        if room <= 0 or not len(codes):
            return
        # the first ``room`` distinct unseen codes: look at a growing prefix, so a long list (the catalogue by
        # popularity) costs about what is taken from it
        size = room
        while True:
            head = codes[:size]
            fresh = head[~self.seen[head]]
            _, first = np.unique(fresh, return_index=True)
            if len(first) >= room or size >= len(codes):
                break
            size *= 4
        fresh = fresh[np.sort(first)][:room]
        self.seen[fresh] = True
        self.codes.append(fresh)
        self.sizes.append(len(fresh))
        self.sources.append(SOURCES.index(source))
        self.count += len(fresh)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.codes:
            return _NONE, np.zeros(0, dtype=np.int8)
        return np.concatenate(self.codes), np.repeat(np.asarray(self.sources, dtype=np.int8), self.sizes)


def _interleave(lists: Sequence[np.ndarray]) -> np.ndarray:
    """The lists' elements rank by rank: every list's first, then every list's second, ..."""
    lists = [lst for lst in lists if len(lst)]
    if not lists:
        return _NONE
    if len(lists) == 1:
        return lists[0]
    lengths = np.asarray([len(lst) for lst in lists])
    grid = np.full((len(lists), lengths.max()), -1, dtype=np.int64)
    for row, lst in enumerate(lists):
        grid[row, : len(lst)] = lst
    flat = grid.T.ravel()
    return flat[flat >= 0]


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
    # the rows of the new items (item_is_new), in row order: the feed's new-item share picks among them by the
    # affinity source's score (:meth:`affinity_new_rows`)
    new_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

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
        index = cls(
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
            new_rows=np.flatnonzero(is_new).astype(np.int64),
        )
        index.codes  # noqa: B018  (built at load, not by the first request)
        index.is_new_row  # noqa: B018
        return index

    def affinity_items(
        self, category_shares: Sequence[float] | None, k: int, user_clicks: float | None = None
    ) -> list[str]:
        """:meth:`affinity_rows` as item ids."""
        ids = self.id_strings
        return [ids[p] for p in self.affinity_rows(category_shares, k, user_clicks).tolist()]

    def affinity_rows(
        self, category_shares: Sequence[float] | None, k: int, user_clicks: float | None = None
    ) -> np.ndarray:
        """The rows of the ``k`` items of the catalogue with the best quality x the user's category lift, best
        first; a user without shares (no clicks) has a lift of 1 everywhere: the catalogue by quality alone (at 1M
        events their feed clicks in it: 0.215 of 396 at 500, vs 0.184 in the other sources' 500). With
        ``user_clicks`` (the clicks the shares are of, > 0) the lift is the count-aware one (PSEUDO_CLICKS), else the
        shares' (SHARE_PRIOR). Vectorised over the catalogue: one score per item, one partial sort."""
        score = self.affinity_scores(category_shares, user_clicks)
        return _NONE if score is None else self._best(score, None, k)

    def affinity_new_items(
        self, category_shares: Sequence[float] | None, k: int, user_clicks: float | None = None
    ) -> list[str]:
        """:meth:`affinity_new_rows` as item ids."""
        ids = self.id_strings
        score = self.affinity_scores(category_shares, user_clicks)
        return [] if score is None else [ids[p] for p in self._best(score, self.new_rows, k).tolist()]

    def affinity_new_rows(self, score: np.ndarray, k: int) -> np.ndarray:
        """The rows of the ``k`` new items with the best affinity ``score`` (:meth:`affinity_scores`), best first:
        the feed's new-item share, so the new items a user gets are the ones of their categories (the exploration
        rule can only boost a new item retrieved). At 1M events the 50 new items so picked hold 0.011 of the next
        day's feed clicks (4,315) against 0.004 for the catalogue's best-CTR new items, the same for every user
        (docs/retrieval.md, session 12)."""
        return self._best(score, self.new_rows, k)

    def affinity_scores(self, category_shares: Sequence[float] | None, user_clicks: float | None) -> np.ndarray | None:
        """Per row, the affinity source's score: quality + the power of the user's category lift (None: no
        quality or no catalogue shares to lift by)."""
        if not len(self.quality) or self.catalogue_shares.sum() <= 0:
            return None
        catalogue = self.catalogue_shares
        shares = np.nan_to_num(np.asarray(catalogue if category_shares is None else category_shares, dtype=float))
        if shares.sum() <= 0:
            shares = catalogue  # the user's shares equal the catalogue's: lift 1
        user = np.zeros(len(catalogue))
        m = min(len(shares), len(catalogue))
        user[:m] = shares[:m] / shares.sum()
        counted = user_clicks is not None and np.isfinite(user_clicks) and user_clicks > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            if counted:
                clicks = float(user_clicks)  # type: ignore[arg-type]
                lift = (user * clicks + PSEUDO_CLICKS * catalogue) / ((clicks + PSEUDO_CLICKS) * catalogue)
            else:
                lift = (user + SHARE_PRIOR * catalogue) / ((1 + SHARE_PRIOR) * catalogue)
        lift = np.where(np.isfinite(lift) & (lift > 0), lift, 1.0)
        by_row = np.ones(len(self.quality))
        known = self.row_category >= 0
        by_row[known] = lift[self.row_category[known]]
        return self.quality + (COUNT_LIFT_POWER if counted else LIFT_POWER) * np.log(by_row)

    def _best(self, score: np.ndarray, rows: np.ndarray | None, k: int) -> np.ndarray:
        """The ``k`` of ``rows`` (None: all) with the best ``score``, best first; ties by id (deterministic)."""
        candidates = score if rows is None else score[rows]
        k = min(k, len(candidates))
        if k <= 0:
            return _NONE
        top = np.argpartition(-candidates, k - 1)[:k]
        if rows is not None:
            top = rows[top]
        return top[np.lexsort((self.id_order[top], -score[top]))]

    # Per row, the rank of its id among all ids, and the ids as str: the affinity source sorts thousands of rows per
    # feed request (4,500 with the funnel); comparing the object ids themselves cost 7 ms of its 9 (1M-event world).
    @cached_property
    def id_order(self) -> np.ndarray:
        order = np.empty(len(self.row_ids), dtype=np.int64)
        order[np.argsort(self.row_ids.astype(str), kind="stable")] = np.arange(len(self.row_ids))
        return order

    @cached_property
    def is_new_row(self) -> np.ndarray:
        mask = np.zeros(len(self.row_ids), dtype=bool)
        mask[self.new_rows] = True
        return mask

    @cached_property
    def id_strings(self) -> list[str]:
        return [str(i) for i in self.row_ids]

    def cache_rows(self, found: Retrieved, items: ItemCache) -> np.ndarray:
        """The item cache rows of the ``found`` candidates (unknown items: the cache's trailing NaN row). An index
        built from ``items`` codes its rows as themselves; any other cache is looked up by id."""
        missing = len(items)
        if self._built_from(items):
            return np.where(found.codes < missing, found.codes, missing)
        return items.rows(found.ids())

    def _built_from(self, items: ItemCache) -> bool:
        checked = self._aligned
        if not checked or checked[0] is not items:
            checked[:] = [items, len(self.row_ids) == len(items) and self.id_strings == items.all_ids()]
        return bool(checked[1])

    @cached_property
    def _aligned(self) -> list[object]:
        return []

    def retrieve(
        self,
        user_id: str,
        category_shares: Sequence[float] | None,
        n: int,
        query: str | None = None,
        recall: RecallIndex | None = None,
        cfg: RecallSettings | None = None,
        user_clicks: float | None = None,
    ) -> tuple[list[str], dict[str, str]]:
        """Up to ``n`` distinct candidate ids and, per id, the source that brought it (``user_clicks``: the clicks
        ``category_shares`` are shares of, user_clicks_30d; the affinity source's count-aware lift)."""
        found = self.retrieve_codes(user_id, category_shares, n, query, recall, cfg, user_clicks)
        ids = found.ids()
        return ids, dict(zip(ids, found.source_names(), strict=True))

    def retrieve_codes(
        self,
        user_id: str,
        category_shares: Sequence[float] | None,
        n: int,
        query: str | None = None,
        recall: RecallIndex | None = None,
        cfg: RecallSettings | None = None,
        user_clicks: float | None = None,
    ) -> Retrieved:
        """:meth:`retrieve` as arrays: each candidate's code in the catalogue's universe (:class:`Codes`) and its
        source's. Every source is an array of codes, merged with numpy (no str or dict per candidate): the funnel
        merges 5,000 per request."""
        cfg = cfg or RecallSettings()
        codes = self.codes
        extra = codes.for_recall(recall)
        picked = _Picker(n, len(codes.ids) + len(extra.ids))
        take = picked.take

        text = recall.text if recall is not None else None
        query_category: int | None = None
        if query and text is not None and extra.text is not None:
            take(extra.text[text.search_rows(query, n)], int(cfg.text_share * n), "text")
            query_category = text.query_category(query)

        def in_query_category(found: np.ndarray) -> np.ndarray:
            if query_category is None:
                return found
            return found[extra.category[found] == query_category]

        if query_category is None and not query and cfg.affinity_share > 0:
            budget = int(cfg.affinity_share * n)
            new_budget = int(SOURCE_SHARES["new"] * n)
            score = self.affinity_scores(category_shares, user_clicks)
            new_items = codes.new_items
            if score is not None:
                best = self._best(score, None, budget)
                take(best, budget, "affinity")
                # the best new items by the same score, past those the affinity source took already
                taken = int(np.count_nonzero(self.is_new_row[best]))
                new_items = self.affinity_new_rows(score, new_budget + taken)
            # new items keep their share right behind it: the exploration rule can only boost a new item retrieved
            # (among all items the affinity score puts few new ones first: ~8 of 75 new items in 500 on the default
            # world instead of ~46)
            take(new_items, new_budget, "new-item")
        recent = self.user_recent.get(user_id, [])
        # interleave rank by rank across seeds, so every recent item contributes its best neighbours first
        neighbours = _interleave([codes.covisitation.get(item, _NONE) for item in recent])
        take(in_query_category(neighbours), int(SOURCE_SHARES["covisitation"] * n), "covisitation")
        embeddings = recall.embeddings if recall is not None else None
        # (a full list skips the nearest-neighbour search: on the feed the affinity source and the new items' share
        # fill all n, and asking faiss for 5,000 neighbours cost ~1 ms for nothing)
        if embeddings is not None and extra.embedding is not None and picked.count < n:
            vector = embeddings.user_vector(user_id, recent, category_shares)
            if vector is not None:
                # a category filter keeps about 1/categories of the neighbours: ask for more
                wanted = n if query_category is None else n * max(len(self.popular_by_category), 1)
                near = extra.embedding[embeddings.neighbour_rows(vector, wanted)]
                take(in_query_category(near), int(cfg.embedding_share * n), "embedding")
        top_categories: list[int] = []
        if query_category is not None:
            top_categories = [query_category]
            take(codes.popular_by_category.get(query_category, _NONE), int(SOURCE_SHARES["category"] * n), "category")
        elif category_shares is not None:
            shares = np.nan_to_num(np.asarray(category_shares, dtype=float))
            if shares.sum() > 0:
                top_categories = [int(c) for c in np.argsort(-shares, kind="stable") if shares[c] > 0]
                budget = int(SOURCE_SHARES["category"] * n)
                for c in top_categories:
                    take(
                        codes.popular_by_category.get(c, _NONE),
                        int(np.ceil(budget * shares[c] / shares.sum())),
                        "category",
                    )
        trending = [codes.trending_by_category.get(c, _NONE) for c in top_categories[:3]] + [codes.trending]
        take(in_query_category(np.concatenate(trending)), int(SOURCE_SHARES["trending"] * n), "trending")
        take(in_query_category(codes.new_items), int(SOURCE_SHARES["new"] * n), "new-item")
        if query_category is not None:
            take(codes.popular_by_category.get(query_category, _NONE), n, "popular")
        take(codes.popular, n, "popular")
        return Retrieved(*picked.result(), codes.ids + extra.ids)

    @cached_property
    def codes(self) -> Codes:
        """Every source's ids as codes: one code per distinct id, the cache rows' ids first (so a code below
        ``len(row_ids)`` is that item cache row), then ids only the retrieval marts name."""
        universe: dict[str, int] = {}
        for item_id in self.id_strings:
            universe.setdefault(item_id, len(universe))

        def encode(ids: Sequence[str]) -> np.ndarray:
            return np.fromiter((universe.setdefault(i, len(universe)) for i in ids), dtype=np.int64, count=len(ids))

        popular = encode(self.popular)
        by_category = {c: encode(ids) for c, ids in self.popular_by_category.items()}
        new_items = encode(self.new_items)
        covisitation = {str(k): encode(ids) for k, ids in self.covisitation.items()}
        trending_by_category = {int(c): encode(ids) for c, ids in self.trending_by_category.items()}  # type: ignore[call-overload]
        trending = encode(self.trending)
        category = np.full(len(universe), _NO_CATEGORY, dtype=np.int64)
        for item_id, c in self.item_category.items():
            if item_id in universe:
                category[universe[item_id]] = c
        return Codes(
            universe, list(universe), category, popular, by_category, new_items, covisitation, trending_by_category,
            trending, self.item_category,
        )  # fmt: skip
