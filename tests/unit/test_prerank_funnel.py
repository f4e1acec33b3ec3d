"""The pre-ranking stage's request-time parts (issue 16): the query match over thousands of titles, the per-source
quota of the kept candidates, and a pre-ranker that scores a title match above the same item without one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.item_cache import SELLER_COLUMN, ItemCache
from serving.prerank import Funnel, quota_cut
from shoprank import prerank
from shoprank.prerank import PreRanker
from shoprank.ranking_features import ITEM_FEATURES, TitleWordIndex, query_title_match, title_words
from shoprank.recall import RecallIndex


def test_the_title_word_index_gives_query_title_match_values() -> None:
    rng = np.random.default_rng(5)
    vocabulary = ["red", "boots", "leather", "lamp", "oak", "Desk", "", "x"]
    titles = [title_words(" ".join(rng.choice(vocabulary, size=rng.integers(0, 5)))) for _ in range(300)]
    titles += [title_words(None), title_words("")]
    index = TitleWordIndex(titles)
    rows = rng.integers(0, len(titles), size=500)  # repeats and any order, as candidate rows come
    picked = np.empty(len(rows), dtype=object)
    picked[:] = [titles[r] for r in rows]
    for query in ["red boots", "RED red boots", "desk lamp unknownword", "boots  leather", "", "x", None]:
        expected = query_title_match(query, picked)
        got = index.match(query, rows)
        assert np.array_equal(np.isnan(expected), np.isnan(got))
        assert np.array_equal(np.nan_to_num(expected), np.nan_to_num(got))  # exactly: the same division
    assert np.isnan(index.match(None, rows)).all()
    assert index.match("boots", rows).max() == 1.0


def test_without_quotas_the_cut_is_the_best_n_by_score() -> None:
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.3])
    assert quota_cut(scores, None, 3, {}).tolist() == [1, 3, 2]  # ties keep retrieval order
    assert quota_cut(scores, ["a"] * 5, 3, {}).tolist() == [1, 3, 2]


def test_a_source_quota_keeps_its_best_candidates_even_when_they_score_low() -> None:
    rng = np.random.default_rng(0)
    n_text, n_other, keep = 300, 700, 100
    # the text matches all score below every other candidate: by score alone none would be kept
    scores = np.r_[rng.uniform(0, 1, n_text), rng.uniform(2, 3, n_other)]
    sources = ["text"] * n_text + ["category"] * n_other
    kept = quota_cut(scores, sources, keep, {"text": 0.3})
    assert len(kept) == keep == len(set(kept.tolist()))
    kept_text = [p for p in kept if sources[p] == "text"]
    assert len(kept_text) == 30
    # the text source's best 30, and the other 70 are the best of the rest
    assert sorted(kept_text) == sorted(np.argsort(-scores[:n_text])[:30].tolist())
    others = [p for p in kept if sources[p] != "text"]
    assert sorted(others) == sorted((n_text + np.argsort(-scores[n_text:])[:70]).tolist())
    assert np.all(np.diff(scores[kept]) <= 0)  # passed on best score first
    assert quota_cut(scores, sources, keep, {}).tolist() == (n_text + np.argsort(-scores[n_text:])[:keep]).tolist()


def test_a_quota_larger_than_what_the_source_brought_gives_the_rest_to_the_others() -> None:
    scores = np.array([0.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    sources = ["text", "popular", "popular", "popular", "popular", "popular"]
    kept = quota_cut(scores, sources, 4, {"text": 0.9, "new-item": 0.5})
    assert sorted(kept.tolist()) == [0, 1, 2, 3] and kept.tolist() == [1, 2, 3, 0]
    assert len(quota_cut(scores, sources, 2, {"text": 1.0, "popular": 1.0})) == 2  # shares above 1: still n


def _cache(titles: dict[str, str]) -> ItemCache:
    frame = pd.DataFrame({"item_id": list(titles), "feature_ts": pd.Timestamp("2026-01-07"), SELLER_COLUMN: "s1"})
    for name in ITEM_FEATURES:
        frame[name] = 1.0  # identical items but for their titles
    catalogue = pd.DataFrame({"item_id": list(titles), "title": list(titles.values())})
    return ItemCache.from_frame(frame).with_titles(catalogue)


@pytest.fixture(scope="module")
def query_preranker() -> PreRanker:
    """A small LambdaMART fitted on rows where the clicked item is the one whose title matches the query."""
    from xgboost import XGBRanker

    rng = np.random.default_rng(1)
    n = 2000
    x = rng.normal(size=(n, len(prerank.FEATURES))).astype(np.float32)
    match = rng.choice([0.0, 0.5, 1.0], size=n)
    search = rng.random(n) < 0.5
    x[:, prerank.FEATURES.index(prerank.QUERY_MATCH)] = np.where(search, match, np.nan)
    y = ((np.where(search, match, 0.0) + rng.normal(scale=0.3, size=n)) > 0.7).astype(int)
    model = XGBRanker(n_estimators=20, max_depth=3, n_jobs=1).fit(x, y, qid=np.repeat(np.arange(n // 20), 20))
    return PreRanker(version="test", booster=model.get_booster(), card={"features": prerank.FEATURES})


def test_the_preranker_scores_a_title_matching_candidate_higher_on_a_search(query_preranker: PreRanker) -> None:
    cache = _cache({"i1": "red leather boots", "i2": "oak desk lamp", "i3": "red lamp"})
    funnel = Funnel.build(query_preranker, cache, RecallIndex())
    candidates = ["i2", "i3", "i1"]
    rows = cache.rows(candidates)
    searched = funnel.scores("u1", [], None, rows, query="leather boots")
    assert searched[2] > searched[0] and searched[2] > searched[1]
    # the feed (no query) cannot tell the identical items apart
    feed = funnel.scores("u1", [], None, rows)
    assert np.unique(feed).size == 1
    kept, scores = funnel.keep("u1", [], None, candidates, 1, query="leather boots")
    assert kept == ["i1"] and set(scores) == {"i1"}
    # a text quota keeps the text source's best even when the pre-ranker prefers another item
    sources = {"i1": "category", "i2": "text", "i3": "category"}
    kept, _ = funnel.keep("u1", [], None, candidates, 2, "leather boots", sources, {"text": 0.5})
    assert kept[0] == "i1" and "i2" in kept


def test_the_funnel_scores_are_the_preranker_over_prerank_matrix(query_preranker: PreRanker) -> None:
    """Funnel.scores (its prepared rows, one gather of the vectors that exist) gives the pre-ranker's scores over
    prerank.prerank_matrix of the reference columns: item features, category affinity, embedding score (NaN for an
    item without a vector or a user without one), query match; an id the cache lacks included."""
    from shoprank.recall import EmbeddingIndex

    rng = np.random.default_rng(3)
    words = ["red", "lamp", "oak", "desk", "boots", "tent"]
    ids = [f"i{i:03d}" for i in range(60)]
    frame = pd.DataFrame({"item_id": ids, "feature_ts": pd.Timestamp("2026-01-07"), SELLER_COLUMN: "s1"})
    for name in ITEM_FEATURES:
        frame[name] = rng.normal(size=len(ids))
    frame["item_category_id"] = rng.integers(0, 4, len(ids)).astype(float)
    titles = [" ".join(rng.choice(words, 3)) for _ in ids]
    cache = ItemCache.from_frame(frame).with_titles(pd.DataFrame({"item_id": ids, "title": titles}))
    with_vector = ids[::3] + ids[1::3]  # a third of the catalogue has no vector
    vectors = rng.normal(size=(len(with_vector), 8)).astype(np.float32)
    embeddings = EmbeddingIndex(
        index=None,
        item_ids=np.array(with_vector),
        vectors=vectors,
        categories=np.zeros(len(with_vector), dtype=np.int64),
        user_ids=np.array(["u1"]),
        user_vectors=rng.normal(size=(1, 8)).astype(np.float32),
    )
    funnel = Funnel.build(query_preranker, cache, RecallIndex(embeddings=embeddings))
    candidates = [ids[p] for p in rng.permutation(len(ids))[:40]] + ["unknown"]
    rows = cache.rows(candidates)
    items = np.vstack(
        [cache.matrix[:, [cache.column_index[n] for n in ITEM_FEATURES]], np.full(len(ITEM_FEATURES), np.nan)]
    )
    shares = [0.1, 0.2, 0.3, 0.4]
    for user, recent, user_shares in (("u1", [], shares), ("u2", [ids[0], ids[3]], shares), ("u3", [], None)):
        vector = embeddings.user_vector(user, recent, user_shares)
        position = {i: p for p, i in enumerate(with_vector)}
        expected_embedding = np.array(
            [np.nan if vector is None or c not in position else vectors[position[c]] @ vector for c in candidates],
            dtype=np.float32,
        )
        affinity = prerank.category_affinity(
            None if user_shares is None else np.asarray(user_shares),
            items[rows, ITEM_FEATURES.index("item_category_id")],
        )
        for query in (None, "red lamp"):
            match = query_title_match(query, [title_words(t) for t in [*titles, ""]])[rows]
            expected = query_preranker.score(prerank.prerank_matrix(items[rows], affinity, expected_embedding, match))
            got = funnel.scores(user, recent, user_shares, rows, query)
            assert np.array_equal(got, expected)  # exactly: a feed's query-free trees (no_query_booster) too
    assert np.isnan(funnel.base[-1]).all()  # the unknown item's row


def test_the_best_positions_are_the_stable_sorts_first_n() -> None:
    """best_positions (a partition, then a sort of the kept) keeps exactly what a stable argsort keeps, in its
    order: many ties (a small model's scores repeat), ties across the cut, NaN scores, n at and beyond the length."""
    from serving.prerank import best_positions

    rng = np.random.default_rng(9)
    for size, n, levels in [(5000, 500, 40), (5000, 500, 3), (1000, 999, 5), (300, 300, 10), (50, 80, 4), (10, 0, 2)]:
        scores = np.round(rng.normal(size=size) * levels) / levels
        scores = scores.astype(np.float32)
        for nan_share in (0.0, 0.3, 0.95):
            with_nan = np.where(rng.random(size) < nan_share, np.nan, scores).astype(np.float32)
            expected = np.argsort(-with_nan, kind="stable")[:n]
            assert np.array_equal(best_positions(with_nan, n), expected), (size, n, levels, nan_share)
    assert quota_cut(np.array([0.5, 0.9, 0.5, 0.9]), None, 3, {}).tolist() == [1, 3, 0]
