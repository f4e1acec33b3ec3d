"""Build the day's recall indexes from the published snapshot and the catalogue (the `build-retrieval` step).

- text: a bm25s index over each item's title plus its category's words (the words that point to one category:
  P(category | word) >= 0.5), and the word -> category shares serving uses to analyse a query;
- embeddings from each user's clicks in the published training window (``recall.model``): implicit-feedback ALS
  (the `implicit` library; user and item factors, score = inner product; the default: on the default world its
  top 100 held 0.41 of the next day's feed clicks against 0.15 for item2vec) or item2vec (gensim Word2Vec,
  skip-gram over the clicks in time order, L2-normalised); item vectors in a faiss inner-product index (exact
  ``flat``, or ``hnsw``).
The catalogue is the published item_features mart's items (what serving can rank) and categories, titled from the
raw items table (latest row per item). Written to a temporary directory, renamed to ``<recall_dir>/<day>/``, then
``CURRENT`` is replaced: serving sees the previous version or the complete new one. Format: shoprank/recall.py.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprank import recall
from shoprank.mart_files import mart_exists, read_mart
from shoprank.recall import Vectors, als_vectors
from shoprank.settings import RecallSettings, Settings

CATEGORY_WORD_SHARE = 0.5  # a word is its category's when at least this share of the items with it are in it
MIN_WORD_SHARE = 0.05  # query analysis ignores a word's categories below this share


def catalogue(settings: Settings) -> pd.DataFrame:
    """item_id, category_id, title of every item the published item_features mart knows (its latest category), with
    the title of its latest raw row (empty when the raw items table has none)."""
    marts = settings.marts_export_dir.resolve()
    known = pd.read_parquet(marts / "item_features.parquet", columns=["item_id", "feature_ts", "item_category_id"])
    known = known.sort_values(["item_id", "feature_ts"]).drop_duplicates("item_id", keep="last")
    raw = pd.read_parquet(settings.raw_dir / "items", columns=["item_id", "title", "dt"])
    titles = raw.sort_values(["item_id", "dt"]).drop_duplicates("item_id", keep="last").set_index("item_id")["title"]
    titles.index = titles.index.astype(str)
    items = pd.DataFrame(
        {
            "item_id": known["item_id"].astype(str).to_numpy(),
            "category_id": known["item_category_id"].fillna(-1).astype(int).to_numpy(),
        }
    )
    items["title"] = items["item_id"].map(titles).fillna("").astype(str)
    return items.sort_values("item_id").reset_index(drop=True)


def click_sequences(settings: Settings) -> dict[str, list[str]]:
    """user -> their clicked items in time order, over the published training window."""
    marts = settings.marts_export_dir.resolve()
    if not mart_exists(marts, "training_examples"):  # no training window published yet: no learned recall
        return {}
    examples = read_mart(marts, "training_examples", ["user_id", "item_id", "event_ts", "label_click"])
    clicks = examples[examples["label_click"] > 0].sort_values(["user_id", "event_ts"])
    return {str(user): [str(i) for i in items] for user, items in clicks.groupby("user_id", sort=True)["item_id"]}


def word_category_shares(items: pd.DataFrame) -> dict[str, dict[int, float]]:
    """word -> {category: share of the catalogue's items carrying the word that are in the category}."""
    counts: dict[str, Counter[int]] = defaultdict(Counter)
    for title, category in zip(items["title"], items["category_id"], strict=True):
        for word in set(recall.tokenize(title)):
            counts[word][int(category)] += 1
    shares = {}
    for word, per_category in counts.items():
        total = sum(per_category.values())
        kept = {c: n / total for c, n in per_category.items() if n / total >= MIN_WORD_SHARE}
        if kept:
            shares[word] = kept
    return shares


def text_documents(items: pd.DataFrame, shares: dict[str, dict[int, float]]) -> list[list[str]]:
    """Per item: its title's words, then its category's words (so a query for the category finds all of it)."""
    category_words: dict[int, list[str]] = defaultdict(list)
    for word, per_category in sorted(shares.items()):
        for category, share in per_category.items():
            if share >= CATEGORY_WORD_SHARE:
                category_words[category].append(word)
    return [
        recall.tokenize(title) + category_words.get(int(category), [])
        for title, category in zip(items["title"], items["category_id"], strict=True)
    ]


def build_text(items: pd.DataFrame, out: Path, engine: str = "bm25s") -> dict[str, Any]:
    """The text index of ``items`` with ``engine`` (bm25s or tantivy), its doc -> item ids and the word shares."""
    if items.empty:
        return {"items": 0}
    shares = word_category_shares(items)
    documents = text_documents(items, shares)
    if engine == "tantivy":
        write_tantivy(documents, out / recall.TANTIVY_DIR)
    else:
        import bm25s

        retriever = bm25s.BM25()
        retriever.index(documents, show_progress=False)
        retriever.save(str(out / recall.TEXT_DIR), show_progress=False)
    np.save(out / recall.TEXT_ITEMS, items["item_id"].to_numpy(dtype=str), allow_pickle=False)
    (out / recall.WORD_CATEGORIES).write_text(json.dumps(shares, sort_keys=True))
    return {"items": len(items), "words": len(shares), "engine": engine}


def write_tantivy(documents: list[list[str]], path: Path) -> None:
    """A tantivy index of the documents (their words joined), each storing its row number; one writer thread."""
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_text_field(recall.TANTIVY_FIELD, stored=False)
    builder.add_integer_field(recall.TANTIVY_DOC, stored=True, indexed=False)
    path.mkdir(parents=True)
    index = tantivy.Index(builder.build(), path=str(path))
    writer = index.writer(heap_size=50_000_000, num_threads=1)
    for row, words in enumerate(documents):
        writer.add_document(tantivy.Document(**{recall.TANTIVY_FIELD: " ".join(words), recall.TANTIVY_DOC: row}))
    writer.commit()
    writer.wait_merging_threads()


def ann_index(vectors: np.ndarray, kind: str) -> Any:
    """A faiss inner-product index over ``vectors``: exact (flat) or HNSW (searched with a generous efSearch)."""
    import faiss

    dim = vectors.shape[1]
    index: Any
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 200
        index.hnsw.efSearch = 256
    else:
        index = faiss.IndexFlatIP(dim)
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def item2vec_vectors(sequences: dict[str, list[str]], cfg: RecallSettings) -> Vectors:
    """item2vec: (item ids, L2-normalised float32 vectors, no user vectors) from click sequences."""
    from gensim.models import Word2Vec

    model = Word2Vec(
        [clicked for clicked in sequences.values() if len(clicked) > 1],
        vector_size=cfg.embedding_dim,
        window=cfg.window,
        min_count=1,
        sg=1,
        epochs=cfg.epochs,
        seed=cfg.seed,
        workers=1,  # one worker: the same data and seed give the same vectors
    )
    ids = np.asarray(model.wv.index_to_key, dtype=str)
    vectors = model.wv.vectors.astype(np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return ids, vectors / np.where(norms > 0, norms, 1.0), None, None


def build_embeddings(items: pd.DataFrame, sequences: dict[str, list[str]], cfg: RecallSettings, out: Path) -> dict:
    import faiss

    known = set(items["item_id"])
    sequences = {u: kept for u, seq in sequences.items() if (kept := [i for i in seq if i in known])}
    if not any(len(seq) > 1 for seq in sequences.values()):
        return {"items": 0}
    ids, vectors, user_ids, user_vectors = (als_vectors if cfg.model == "als" else item2vec_vectors)(sequences, cfg)
    categories = items.set_index("item_id")["category_id"].reindex(ids).fillna(-1).to_numpy(dtype=np.int64)
    faiss.write_index(ann_index(vectors, cfg.ann), str(out / recall.EMBEDDING_INDEX))
    np.save(out / recall.EMBEDDING_ITEMS, ids, allow_pickle=False)
    np.save(out / recall.EMBEDDING_VECTORS, vectors, allow_pickle=False)
    np.save(out / recall.EMBEDDING_CATEGORIES, categories, allow_pickle=False)
    if user_ids is not None and user_vectors is not None:
        np.save(out / recall.EMBEDDING_USERS, user_ids, allow_pickle=False)
        np.save(out / recall.EMBEDDING_USER_VECTORS, user_vectors, allow_pickle=False)
    return {
        "model": cfg.model,
        "items": len(ids),
        "users": len(sequences),
        "dim": int(vectors.shape[1]),
        "ann": cfg.ann,
    }


def build_retrieval(settings: Settings, run_date: date) -> dict[str, Any]:
    """Build and publish the run's recall indexes; returns what was built and how long each part took."""
    root = settings.recall_dir
    root.mkdir(parents=True, exist_ok=True)
    version = run_date.isoformat()
    tmp = root / f".{version}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        started = time.perf_counter()
        items = catalogue(settings)
        text = build_text(items, tmp, settings.recall.text_engine)
        text["seconds"] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        embeddings = build_embeddings(items, click_sequences(settings), settings.recall, tmp)
        embeddings["seconds"] = round(time.perf_counter() - started, 3)
        manifest: dict[str, Any] = {
            "version": version,
            "text": text if text["items"] else None,
            "embeddings": embeddings if embeddings["items"] else None,
            "marts_snapshot": settings.marts_export_dir.resolve().name,
        }
        (tmp / recall.MANIFEST).write_text(json.dumps(manifest, indent=2))
        target = root / version
        if target.exists():  # a re-run of the day: replace it whole
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    pointer = root / f".{recall.CURRENT}.tmp-{os.getpid()}"
    pointer.write_text(version)
    os.replace(pointer, root / recall.CURRENT)
    manifest["pruned"] = _prune(root, version, settings.recall.versions_kept)
    manifest["path"] = str(target)
    return manifest


def _prune(root: Path, keep: str, kept: int) -> list[str]:
    """Delete the oldest versions beyond ``kept`` (never the served one)."""
    versions = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    old = [v for v in versions[:-kept] if v != keep]
    for name in old:
        shutil.rmtree(root / name, ignore_errors=True)
    return old
