"""The vectorised merge of the retrieval sources (serving/candidates.py: codes, numpy dedup) returns exactly what
the plain merge did: the same candidates, in the same order, each with the same source. ``reference`` below is
that plain merge (a dict of picked ids, one source list after the other), kept here as the specification.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from retrieval.build import build_retrieval
from serving.candidates import SOURCE_SHARES, RetrievalIndex
from serving.item_cache import SELLER_COLUMN, ItemCache
from shoprank.ranking_features import ITEM_FEATURES
from shoprank.recall import RecallIndex, load_recall_index
from shoprank.settings import RecallSettings, Settings
from tests.unit.test_recall import DAY, retrieval_index, settings  # noqa: F401  (settings: the fixture)


def reference(
    index: RetrievalIndex,
    user_id: str,
    category_shares: Sequence[float] | None,
    n: int,
    query: str | None = None,
    recall: RecallIndex | None = None,
    cfg: RecallSettings | None = None,
) -> tuple[list[str], dict[str, str]]:
    cfg = cfg or RecallSettings()
    picked: dict[str, str] = {}

    def take(ids: Sequence[str], budget: int, source: str) -> None:
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
        return [i for i in ids if index.item_category.get(i) == query_category]

    if query_category is None and not query and cfg.affinity_share > 0:
        budget = int(cfg.affinity_share * n)
        take(index.affinity_items(category_shares, budget), budget, "affinity")
        # the new items best by the affinity score (up to `budget` of them taken already)
        new_budget = int(SOURCE_SHARES["new"] * n)
        take(index.affinity_new_items(category_shares, budget + new_budget), new_budget, "new-item")
    recent = index.user_recent.get(user_id, [])
    lists = [index.covisitation.get(item, []) for item in recent]
    neighbours = [lst[r] for r in range(max(map(len, lists), default=0)) for lst in lists if r < len(lst)]
    take(in_query_category(neighbours), int(SOURCE_SHARES["covisitation"] * n), "covisitation")
    embeddings = recall.embeddings if recall is not None else None
    if embeddings is not None:
        vector = embeddings.user_vector(user_id, recent, category_shares)
        if vector is not None:
            wanted = n if query_category is None else n * max(len(index.popular_by_category), 1)
            take(in_query_category(embeddings.neighbours(vector, wanted)), int(cfg.embedding_share * n), "embedding")
    top_categories: list[int] = []
    if query_category is not None:
        top_categories = [query_category]
        take(index.popular_by_category.get(query_category, []), int(SOURCE_SHARES["category"] * n), "category")
    elif category_shares is not None:
        shares = np.nan_to_num(np.asarray(category_shares, dtype=float))
        if shares.sum() > 0:
            top_categories = [int(c) for c in np.argsort(-shares, kind="stable") if shares[c] > 0]
            budget = int(SOURCE_SHARES["category"] * n)
            for c in top_categories:
                take(index.popular_by_category.get(c, []), int(np.ceil(budget * shares[c] / shares.sum())), "category")
    trending = [i for c in top_categories[:3] for i in index.trending_by_category.get(c, [])] + index.trending
    take(in_query_category(trending), int(SOURCE_SHARES["trending"] * n), "trending")
    take(in_query_category(index.new_items), int(SOURCE_SHARES["new"] * n), "new-item")
    if query_category is not None:
        take(index.popular_by_category.get(query_category, []), n, "popular")
    take(index.popular, n, "popular")
    return list(picked), picked


def _random_index(tmp_path) -> RetrievalIndex:  # noqa: ANN001
    """300 cached items in 6 categories; co-visitation and trending lists with repeats and ids the cache lacks."""
    rng = np.random.default_rng(7)
    k = np.arange(300)
    frame = pd.DataFrame(
        {"item_id": [f"i{j:03d}" for j in rng.permutation(k)], "feature_ts": pd.Timestamp("2026-01-07")}
    )
    frame[SELLER_COLUMN] = "s1"
    for name in ITEM_FEATURES:
        frame[name] = 0.0
    frame["item_category_id"] = (k % 6).astype(float)
    frame.loc[k % 50 == 0, "item_category_id"] = np.nan  # a few items without a category
    frame["item_impressions_7d"] = rng.integers(0, 500, len(k)).astype(float)
    frame["item_clicks_7d"] = np.floor(frame["item_impressions_7d"] * rng.uniform(0, 0.1, len(k)))
    frame["item_ctr_7d"] = rng.uniform(0, 0.1, len(k))
    frame["item_is_new"] = (rng.uniform(size=len(k)) < 0.15).astype(float)
    frame.to_parquet(tmp_path / "items.parquet")
    index = RetrievalIndex.build(ItemCache.from_frame(frame), tmp_path)
    pool = [f"i{j:03d}" for j in k] + [f"x{j:02d}" for j in range(20)]  # x..: in no item cache

    def some(size: int) -> list[str]:
        return [str(i) for i in rng.choice(pool, size=size)]  # with repeats

    covisitation = {item: some(int(rng.integers(0, 40))) for item in pool[::2]}
    users = {f"u{u}": some(int(rng.integers(0, 6))) for u in range(30)}
    trending = {c: some(15) for c in range(6)}
    return replace(
        index,
        covisitation=covisitation,
        user_recent=users,
        trending_by_category=trending,  # type: ignore[arg-type]
        trending=some(60),
    )


def _shares(rng: np.random.Generator) -> list[float] | None:
    draw = rng.uniform(size=6) * (rng.uniform(size=6) < 0.5)
    return None if rng.uniform() < 0.2 else draw.tolist()


def test_the_merge_keeps_the_plain_merges_candidates_order_and_sources(tmp_path) -> None:  # noqa: ANN001
    index = _random_index(tmp_path)
    rng = np.random.default_rng(3)
    for case in range(200):
        user = f"u{rng.integers(0, 35)}"  # u30..u34: no recent items
        n = int(rng.choice([0, 1, 7, 40, 150, 500]))
        cfg = RecallSettings(affinity_share=float(rng.choice([0.0, 0.5, 0.9])))
        query = "red lamp" if case % 5 == 0 else None  # no text index: a query only turns the affinity source off
        shares = _shares(rng)
        got = index.retrieve(user, shares, n, query, None, cfg)
        assert got == reference(index, user, shares, n, query, None, cfg), case
        assert len(got[0]) == len(set(got[0])) == min(n, len(got[0]))
    # the candidates' item cache rows from their codes: the rows their ids have (ids the cache lacks: its NaN row)
    items = ItemCache.from_frame(pd.read_parquet(tmp_path / "items.parquet"))
    found = index.retrieve_codes("u3", None, 250)
    assert any(i.startswith("x") for i in found.ids())
    assert index.cache_rows(found, items).tolist() == items.rows(found.ids()).tolist()


def test_with_the_recall_index_the_merge_is_the_plain_merge(settings: Settings) -> None:  # noqa: F811
    build_retrieval(settings, DAY)
    recall = load_recall_index(settings.recall_dir)
    assert recall.text is not None and recall.embeddings is not None
    base = retrieval_index()
    index = replace(base, user_recent={"u000": ["i000", "i003"], "u001": ["i004", "zz"]})
    rng = np.random.default_rng(5)
    for user in ("u000", "u001", "u002", "stranger"):
        for query in (None, "leather kettle", "vintage lamp", "no such words", "smart"):
            for n in (5, 20, 45, 60, 200):
                shares = [float(s) for s in rng.uniform(size=3)] if n % 2 else None
                got = index.retrieve(user, shares, n, query, recall)
                assert got == reference(index, user, shares, n, query, recall), (user, query, n)
    # retrieve_codes: the same candidates as codes, each one's item cache row from them
    found = index.retrieve_codes("u000", None, 30, "leather kettle", recall)
    assert found.ids() == index.retrieve("u000", None, 30, "leather kettle", recall)[0]
