"""Text and learned recall (issue 16): the build-retrieval step over a small hand-made catalogue, the indexes
serving loads, the merged retrieval with a query, and a broken index version that leaves the previous one serving.

Small parquet files stand in for the raw items table and the published marts (the real build: make bench-retrieval).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrieval.build import ann_index, build_retrieval
from serving.candidates import RetrievalIndex
from serving.state import ServingState, load_recall, load_state
from shoprank.recall import CURRENT, EMBEDDING_INDEX, TantivyTextIndex, TextIndex, load_recall_index
from shoprank.settings import RecallSettings, Settings

DAY = date(2026, 1, 7)
NOUNS = {0: ["boots", "sneakers"], 1: ["rug", "lamp"], 2: ["kettle", "toaster"]}
ADJECTIVES = ["smart", "vintage", "leather", "compact", "eco"]


def catalogue() -> pd.DataFrame:
    """60 items: item k in category k % 3, titled adjective + one of its category's nouns."""
    rows = []
    for k in range(60):
        category = k % 3
        title = f"{ADJECTIVES[k % 5]} {NOUNS[category][(k // 3) % 2]}"
        rows.append({"item_id": f"i{k:03d}", "category_id": category, "title": title})
    return pd.DataFrame(rows)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(home=tmp_path / "home")
    settings.ensure_dirs()
    items = catalogue()
    (settings.raw_dir / "items" / f"dt={DAY}").mkdir(parents=True)
    items[["item_id", "title"]].to_parquet(settings.raw_dir / "items" / f"dt={DAY}" / "part-0.parquet")
    marts = settings.marts_export_dir
    marts.mkdir(parents=True)
    features = items.rename(columns={"category_id": "item_category_id"})[["item_id", "item_category_id"]]
    features.assign(feature_ts=pd.Timestamp("2026-01-08", tz="UTC")).to_parquet(marts / "item_features.parquet")
    # 40 users, each clicking a run of items of one category, in time order
    rng = np.random.default_rng(0)
    clicks = []
    for u in range(40):
        category = u % 3
        pool = [f"i{k:03d}" for k in range(category, 60, 3)]
        for t, item in enumerate(rng.choice(pool, size=8)):
            clicks.append(
                {
                    "user_id": f"u{u:03d}",
                    "item_id": item,
                    "event_ts": pd.Timestamp("2026-01-06") + pd.Timedelta(minutes=t),
                    "label_click": 1,
                }
            )
    pd.DataFrame(clicks).to_parquet(marts / "training_examples.parquet")
    return settings


def retrieval_index() -> RetrievalIndex:
    items = catalogue()
    by_category = {int(c): list(g["item_id"]) for c, g in items.groupby("category_id")}
    return RetrievalIndex(
        popular=list(items["item_id"]),
        popular_by_category=by_category,
        item_category=dict(zip(items["item_id"], items["category_id"].astype(int), strict=True)),
    )


@pytest.mark.parametrize("engine", ["bm25s", "tantivy"])
def test_a_search_for_an_items_title_words_retrieves_that_item(settings: Settings, engine: str) -> None:
    settings = settings.model_copy(update={"recall": settings.recall.model_copy(update={"text_engine": engine})})
    build_retrieval(settings, DAY)
    recall = load_recall_index(settings.recall_dir)
    assert recall.version == DAY.isoformat() and recall.text is not None
    assert type(recall.text) is (TantivyTextIndex if engine == "tantivy" else TextIndex)
    # "leather kettle": items 2, 32 (k % 5 == 2, category 2, noun index (k // 3) % 2 == 0)
    assert set(recall.text.search("Leather KETTLE", 2)) == {"i002", "i032"}
    assert recall.text.query_category("leather kettle") == 2
    ids, sources = retrieval_index().retrieve("u999", None, 30, query="leather kettle", recall=recall)
    assert set(ids[:2]) == {"i002", "i032"} and sources["i002"] == "text"
    # after the text matches, the query's category (2) fills first, then popularity over the whole catalogue
    category = retrieval_index().popular_by_category[2]
    rest = [i for i in category if sources.get(i) != "text"]
    others = [i for i in ids if sources[i] != "text"]
    assert rest and set(others[: len(rest)]) == set(rest) and len(ids) == 30


def test_the_ann_index_returns_the_exact_top_k(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[:20] + 0.1 * rng.normal(size=(20, 16)).astype(np.float32)
    exact = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :10]
    for kind in ("flat", "hnsw"):
        _, found = ann_index(vectors, kind).search(queries, 10)
        recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact, strict=True)])
        assert recall == 1.0, kind


@pytest.mark.parametrize("model", ["als", "item2vec"])
def test_learned_recall_serves_known_and_unknown_users(settings: Settings, model: str) -> None:
    settings = settings.model_copy(update={"recall": RecallSettings(model=model)})
    assert build_retrieval(settings, DAY)["embeddings"]["model"] == model
    recall = load_recall_index(settings.recall_dir)
    assert recall.embeddings is not None
    index = retrieval_index()
    index = RetrievalIndex(**{**index.__dict__, "user_recent": {"u000": ["i000", "i003"]}})
    ids, sources = index.retrieve("u000", None, 20, recall=recall)
    assert "embedding" in sources.values()
    # a user the marts never saw: category shares pick the neighbours; without them still a full candidate list
    shares = [0.0, 1.0, 0.0]
    for user_shares in (shares, None):
        for query in ("vintage lamp", None, "no such words"):
            ids, _ = index.retrieve("unknown", user_shares, 20, query=query, recall=recall)
            assert len(ids) == 20 and len(set(ids)) == 20


def test_a_recall_index_that_fails_to_load_leaves_the_previous_one_serving(settings: Settings) -> None:
    build_retrieval(settings, DAY)
    served = load_state(settings)
    assert served.recall.version == DAY.isoformat()
    next_day = date(2026, 1, 8)
    build_retrieval(settings, next_day)
    (settings.recall_dir / next_day.isoformat() / EMBEDDING_INDEX).write_bytes(b"not a faiss index")
    state = load_state(settings, previous=served)
    assert state.recall is served.recall
    assert any(e.startswith("recall:") and "retrieval/2026-01-08 unreadable" in e for e in state.errors)
    # a version without its manifest (a build that died) is refused too; a good one then loads
    (settings.recall_dir / CURRENT).write_text("2026-01-09")
    recall, error = load_recall(settings, served.recall)
    assert recall is served.recall and error is not None and "incomplete" in error
    build_retrieval(settings, next_day)
    assert load_state(settings, previous=ServingState(recall=served.recall)).recall.version == next_day.isoformat()
