"""Recall indexes: the on-disk format the retrieval stage writes (retrieval/build.py) and serving reads.

A version is a directory ``<settings.recall_dir>/<day>/`` holding
- ``text/``: a bm25s index over each item's title and its category's words, plus ``text_items.npy`` (doc -> item id)
  and ``word_categories.json`` (word -> share of the catalogue's items with that word per category: query analysis);
- ``embeddings.faiss`` + ``embedding_items.npy`` + ``embedding_vectors.npy`` + ``embedding_categories.npy``: item
  vectors (ALS item factors, or L2-normalised item2vec vectors) and their inner-product faiss index; with ALS also
  ``embedding_users.npy`` + ``embedding_user_vectors.npy`` (the user factors of the training window's users);
- ``manifest.json``, written last: a directory without it is incomplete and never loaded.
``<recall_dir>/CURRENT`` names the version to serve; it is replaced atomically once the version is complete.
Both halves are optional (a catalogue without clicks has no embeddings); a missing half is ``None``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from shoprank.settings import RecallSettings

MANIFEST = "manifest.json"
CURRENT = "CURRENT"
TEXT_DIR = "text"
TANTIVY_DIR = "text_tantivy"  # the text index when recall.text_engine is tantivy (docs/retrieval.md)
TANTIVY_FIELD = "body"
TANTIVY_DOC = "doc"
TEXT_ITEMS = "text_items.npy"
WORD_CATEGORIES = "word_categories.json"
EMBEDDING_INDEX = "embeddings.faiss"
EMBEDDING_ITEMS = "embedding_items.npy"
EMBEDDING_VECTORS = "embedding_vectors.npy"
EMBEDDING_CATEGORIES = "embedding_categories.npy"
EMBEDDING_USERS = "embedding_users.npy"
EMBEDDING_USER_VECTORS = "embedding_user_vectors.npy"

_WORD = re.compile(r"[a-z0-9]+")


def tokenize(text: str | None) -> list[str]:
    """Lowercased alphanumeric words ("Smart Sleeping-Bag" -> smart, sleeping, bag): titles and queries alike."""
    return _WORD.findall(text.lower()) if text else []


Vectors = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]


def als_vectors(sequences: dict[str, list[str]], cfg: RecallSettings) -> Vectors:
    """Implicit ALS on the user x item click counts: (item ids, item factors, user ids, user factors)."""
    import scipy.sparse as sp
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    users = sorted(sequences)
    items = sorted({i for clicked in sequences.values() for i in clicked})
    column = {item: c for c, item in enumerate(items)}
    rows = [u for u, user in enumerate(users) for _ in sequences[user]]
    cols = [column[i] for user in users for i in sequences[user]]
    # repeated clicks on an item add up (the COO -> CSR conversion sums duplicates)
    counts = sp.coo_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(users), len(items))).tocsr()
    model = AlternatingLeastSquares(
        factors=cfg.embedding_dim,
        regularization=cfg.regularization,
        iterations=cfg.iterations,
        random_state=cfg.seed,
        num_threads=1,
    )
    with threadpool_limits(1, "blas"):  # implicit warns that a BLAS thread pool slows its solver down
        model.fit(counts, show_progress=False)
    return (
        np.asarray(items, dtype=str),
        np.asarray(model.item_factors, dtype=np.float32),
        np.asarray(users, dtype=str),
        np.asarray(model.user_factors, dtype=np.float32),
    )


class RecallIndexError(ValueError):
    """A recall index version that cannot be served (incomplete or unreadable), naming the path."""


@dataclass(frozen=True)
class TextIndex:
    """BM25 over item titles + category words, and the word -> category shares that analyse a query."""

    retriever: Any  # bm25s.BM25
    item_ids: np.ndarray
    word_categories: dict[str, dict[int, float]]

    def query_category(self, query: str | None) -> int | None:
        """The category the query's words point to most (summed per-word shares), None for unknown words."""
        votes: dict[int, float] = {}
        for word in tokenize(query):
            for category, share in self.word_categories.get(word, {}).items():
                votes[category] = votes.get(category, 0.0) + share
        return max(sorted(votes), key=votes.__getitem__) if votes else None

    def search(self, query: str | None, n: int) -> list[str]:
        """Up to ``n`` items whose text matches the query, best BM25 score first (ties by item id order)."""
        return [str(i) for i in self.item_ids[self.search_rows(query, n)]]

    def search_rows(self, query: str | None, n: int) -> np.ndarray:
        """:meth:`search` as rows of ``item_ids`` (retrieval maps them to candidates without a str per item)."""
        vocab = self.retriever.vocab_dict
        words = [w for w in tokenize(query) if w in vocab]
        if not words or n <= 0:
            return np.zeros(0, dtype=np.int64)
        scores = np.asarray(self.retriever.get_scores(words))
        hits = np.flatnonzero(scores > 0)
        return hits[np.lexsort((hits, -scores[hits]))][:n].astype(np.int64)


@dataclass(frozen=True)
class TantivyTextIndex(TextIndex):
    """The same documents in a tantivy index (``retriever`` is the ``tantivy.Index``; each document stores its row of
    ``item_ids``). tantivy's default tokenizer splits and lowercases as :func:`tokenize` does."""

    def search_rows(self, query: str | None, n: int) -> np.ndarray:
        words = tokenize(query)
        if not words or n <= 0:
            return np.zeros(0, dtype=np.int64)
        searcher = self.retriever.searcher()
        hits = searcher.search(self.retriever.parse_query(" ".join(words), [TANTIVY_FIELD]), n).hits
        return np.asarray([searcher.doc(address)[TANTIVY_DOC][0] for _, address in hits], dtype=np.int64)


@dataclass(frozen=True)
class EmbeddingIndex:
    """Item vectors and their nearest-neighbour index. A user is their own vector (ALS user factors), else the mean
    of their recent items' vectors, else (no clicks) the category centroids weighted by their category shares."""

    index: Any  # faiss.Index over ``vectors`` (inner product)
    item_ids: np.ndarray
    vectors: np.ndarray  # float32, one L2-normalised row per item
    categories: np.ndarray  # category id per item (-1: unknown)
    user_ids: np.ndarray | None = None
    user_vectors: np.ndarray | None = None
    positions: dict[str, int] = field(default_factory=dict)
    user_positions: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.positions:
            object.__setattr__(self, "positions", {str(i): p for p, i in enumerate(self.item_ids)})
        if not self.user_positions and self.user_ids is not None:
            object.__setattr__(self, "user_positions", {str(u): p for p, u in enumerate(self.user_ids)})

    def user_vector(
        self, user_id: str, recent: Sequence[str], category_shares: Sequence[float] | None
    ) -> np.ndarray | None:
        if self.user_vectors is not None and user_id in self.user_positions:
            return self.user_vectors[self.user_positions[user_id]]
        rows = [self.positions[i] for i in recent if i in self.positions]
        if rows:
            vector = self.vectors[rows].mean(axis=0)
        elif category_shares is not None:
            shares = np.nan_to_num(np.asarray(category_shares, dtype=np.float32))
            vector = np.zeros(self.vectors.shape[1], dtype=np.float32)
            for category in np.flatnonzero(shares > 0):
                members = self.categories == category
                if members.any():
                    vector += shares[category] * self.vectors[members].mean(axis=0)
        else:
            return None
        return vector.astype(np.float32) if np.any(vector) else None

    def neighbours(self, vector: np.ndarray, n: int) -> list[str]:
        """The ``n`` items nearest to ``vector`` (inner product), nearest first."""
        ids = self.id_strings
        return [ids[p] for p in self.neighbour_rows(vector, n).tolist()]

    def neighbour_rows(self, vector: np.ndarray, n: int) -> np.ndarray:
        """:meth:`neighbours` as rows of ``item_ids`` (retrieval maps them to candidates without a str per item)."""
        n = min(n, len(self.item_ids))
        if n <= 0:
            return np.zeros(0, dtype=np.int64)
        _, found = self.index.search(vector.reshape(1, -1).astype(np.float32), n)
        return found[0][found[0] >= 0].astype(np.int64)

    @cached_property
    def id_strings(self) -> list[str]:
        """``item_ids`` as a list of str (one conversion per index, not one per neighbour and request)."""
        return [str(i) for i in self.item_ids]


@dataclass(frozen=True)
class RecallIndex:
    """One loaded version (``version`` = its day); the empty index serves nothing."""

    version: str | None = None
    text: TextIndex | None = None
    embeddings: EmbeddingIndex | None = None


def current_version(recall_dir: Path) -> str | None:
    pointer = recall_dir / CURRENT
    return pointer.read_text().strip() or None if pointer.exists() else None


def load_recall_index(recall_dir: Path) -> RecallIndex:
    """The version CURRENT names (the empty index when nothing was built yet); raises :class:`RecallIndexError` on a
    version that is incomplete or unreadable, so the caller keeps what it serves."""
    version = current_version(recall_dir)
    if version is None:
        return RecallIndex()
    path = recall_dir / version
    if not (path / MANIFEST).exists():
        raise RecallIndexError(f"recall index {path} is incomplete (no {MANIFEST})")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        return RecallIndex(
            version=version,
            text=_load_text(path, manifest["text"].get("engine", "bm25s")) if manifest.get("text") else None,
            embeddings=_load_embeddings(path) if manifest.get("embeddings") else None,
        )
    except Exception as exc:
        raise RecallIndexError(f"recall index {path} unreadable: {type(exc).__name__}: {exc}") from exc


def _load_text(path: Path, engine: str = "bm25s") -> TextIndex:
    shares = json.loads((path / WORD_CATEGORIES).read_text())
    if engine == "tantivy":
        import tantivy

        return TantivyTextIndex(
            retriever=tantivy.Index.open(str(path / TANTIVY_DIR)),
            item_ids=np.load(path / TEXT_ITEMS, allow_pickle=False),
            word_categories={w: {int(c): float(s) for c, s in cats.items()} for w, cats in shares.items()},
        )
    import bm25s

    retriever = bm25s.BM25.load(str(path / TEXT_DIR), show_progress=False)
    return TextIndex(
        retriever=retriever,
        item_ids=np.load(path / TEXT_ITEMS, allow_pickle=False),
        word_categories={w: {int(c): float(s) for c, s in cats.items()} for w, cats in shares.items()},
    )


def _load_embeddings(path: Path) -> EmbeddingIndex:
    import faiss

    # one OpenMP thread: requests already run in parallel, and a single-query search spread over threads spiked
    # to a 16 ms p99 on the shared 2-core box
    faiss.omp_set_num_threads(1)
    index = faiss.read_index(str(path / EMBEDDING_INDEX))
    vectors = np.load(path / EMBEDDING_VECTORS, allow_pickle=False)
    items = np.load(path / EMBEDDING_ITEMS, allow_pickle=False)
    if index.ntotal != len(vectors) or len(items) != len(vectors):
        raise RecallIndexError(f"{path}: {index.ntotal} indexed vectors, {len(vectors)} vectors, {len(items)} items")
    users = path / EMBEDDING_USERS
    return EmbeddingIndex(
        index=index,
        item_ids=items,
        vectors=vectors,
        categories=np.load(path / EMBEDDING_CATEGORIES),
        user_ids=np.load(users, allow_pickle=False) if users.exists() else None,
        user_vectors=np.load(path / EMBEDDING_USER_VECTORS, allow_pickle=False) if users.exists() else None,
    )
