"""The funnel's pre-ranking stage: score several thousand retrieved candidates cheaply, keep the best for the model.

With a pre-ranker loaded (shoprank/prerank.py, trained by the `train-preranker` step) and ``recall.prerank`` on,
a request without candidate ids retrieves ``recall.prerank_candidates`` items; :meth:`Funnel.keep` scores them
in one vectorised predict over the item cache's rows (ITEM_FEATURES), the user's category shares, the inner
product of the user's and the items' recall vectors and, on a search, the query's match with each title, and passes
the best ``recall.prerank_keep`` on, in score order. ``recall.prerank_quotas`` reserves a share of the kept for a
retrieval source's best candidates (:func:`quota_cut`). The item-side part (each cache row's features, its row in
the recall vectors, the title word index) is built once per (item snapshot, recall version, pre-ranker) and shared
by every request on that state.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from serving.item_cache import ItemCache
from shoprank import prerank
from shoprank.prerank import PreRanker
from shoprank.ranking_features import ITEM_FEATURES, TitleWordIndex
from shoprank.recall import RecallIndex

_AFFINITY, _EMBEDDING, _QUERY_MATCH = (
    prerank.FEATURES.index(name) for name in (prerank.AFFINITY, prerank.EMBEDDING_SCORE, prerank.QUERY_MATCH)
)


@dataclass(frozen=True)
class Funnel:
    model: PreRanker
    items: ItemCache
    recall: RecallIndex
    item_features: np.ndarray  # (cache rows + 1, ITEM_FEATURES) float32; the last row (unknown items) all NaN
    categories: np.ndarray  # item_category_id per cache row
    vector_rows: np.ndarray  # per cache row, its row of the recall vectors (-1: no vector)
    titles: TitleWordIndex | None  # the item cache's title word index (None: no titles loaded: no query match)
    # prerank.prerank_matrix's rows per cache row: the item columns filled, the request columns NaN (set per request)
    base: np.ndarray

    @classmethod
    def build(cls, model: PreRanker, items: ItemCache, recall: RecallIndex) -> Funnel:
        columns = [items.column_index[name] for name in ITEM_FEATURES]
        features = items.matrix[:, columns].astype(np.float32)
        vector_rows = np.full(len(items) + 1, -1, dtype=np.int64)
        if recall.embeddings is not None:
            positions = recall.embeddings.positions
            vector_rows[:-1] = [positions.get(str(i), -1) for i in items.ids]
        category = features[:, ITEM_FEATURES.index("item_category_id")]
        base = np.full((len(features), len(prerank.FEATURES)), np.nan, dtype=np.float32)
        base[:, : len(ITEM_FEATURES)] = features
        return cls(model, items, recall, features, category, vector_rows, items.title_index, base)

    def scores(
        self,
        user_id: str,
        recent: Sequence[str],
        shares: Sequence[float] | None,
        rows: np.ndarray,
        query: str | None = None,
    ) -> np.ndarray:
        """The pre-ranker's score of each item cache row in ``rows`` for this user (``query``: a search's)."""
        embeddings = self.recall.embeddings
        embedding = np.full(len(rows), np.nan, dtype=np.float32)
        user = None if embeddings is None else embeddings.user_vector(user_id, recent, shares)
        if embeddings is not None and user is not None:
            # prerank.embedding_scores' values, gathering only the candidates with a vector, once (not every
            # candidate's vector, then those with one again)
            vector_rows = self.vector_rows[rows]
            has = vector_rows >= 0
            embedding[has] = embeddings.vectors[vector_rows[has]] @ np.asarray(user, dtype=np.float32)
        affinity = prerank.category_affinity(None if shares is None else np.asarray(shares), self.categories[rows])
        # as the final ranker: NaN without a query (training's feed impressions have no query_item_match row)
        titles = self.titles if query is not None else None
        query_match = titles.match(query, rows) if titles is not None else np.full(len(rows), np.nan)
        # prerank.prerank_matrix(self.item_features[rows], affinity, embedding, query_match), in one gather of the
        # prepared rows and three column writes (no column_stack of copies per request)
        matrix = self.base[rows]
        matrix[:, _AFFINITY] = affinity
        matrix[:, _EMBEDDING] = embedding
        matrix[:, _QUERY_MATCH] = query_match
        return self.model.score(matrix, query=titles is not None)  # no query: the booster without its splits

    def keep(
        self,
        user_id: str,
        recent: Sequence[str],
        shares: Sequence[float] | None,
        candidates: list[str],
        n: int,
        query: str | None = None,
        sources: Mapping[str, str] | None = None,
        quotas: Mapping[str, float] | None = None,
    ) -> tuple[list[str], dict[str, float]]:
        """The best ``n`` candidates by pre-rank score (ties: retrieval order), each source in ``quotas`` keeping
        its best up to its share of ``n`` (:func:`quota_cut`), and their scores (for /explain)."""
        if not candidates:
            return [], {}
        labels = [sources.get(c, "") for c in candidates] if sources is not None and quotas else None
        order, scores = self.keep_rows(user_id, recent, shares, self.items.rows(candidates), n, query, labels, quotas)
        kept = [candidates[p] for p in order]
        return kept, dict(zip(kept, scores.tolist(), strict=True))

    def keep_rows(
        self,
        user_id: str,
        recent: Sequence[str],
        shares: Sequence[float] | None,
        rows: np.ndarray,
        n: int,
        query: str | None = None,
        sources: Sequence[str] | np.ndarray | None = None,
        quotas: Mapping[str, float] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`keep` over the candidates' item cache ``rows`` (``sources``: each one's source): the positions
        of the kept ones, best first, and their scores."""
        if not len(rows):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores = self.scores(user_id, recent, shares, rows, query)
        order = quota_cut(scores, sources if quotas else None, n, quotas or {})
        return order, scores[order]


def quota_cut(
    scores: np.ndarray, sources: Sequence[str] | np.ndarray | None, n: int, quotas: Mapping[str, float]
) -> np.ndarray:
    """Positions of the ``n`` kept candidates, best score first (ties: the earlier position).

    Each source in ``quotas`` first keeps its best-scored candidates, up to ``int(share * n)`` (fewer when it
    brought fewer); the rest of the ``n`` go to the best of the others by score. Why: the pre-ranker ranks by
    what the logged impressions taught it, and a source it cannot see (on a search, the query's text matches)
    can otherwise lose candidates the final ranker would have put first."""
    if not quotas or sources is None:
        return best_positions(scores, n)
    order = np.argsort(-scores, kind="stable")
    labels = np.asarray(sources, dtype=object)[order]
    chosen = np.zeros(len(scores), dtype=bool)
    for source, share in quotas.items():
        chosen[order[labels == source][: int(share * n)]] = True
    rest = order[~chosen[order]][: max(n - int(chosen.sum()), 0)]
    chosen[rest] = True
    return order[chosen[order]][:n]  # shares summing above 1 keep the best n of their picks


def best_positions(scores: np.ndarray, n: int) -> np.ndarray:
    """``np.argsort(-scores, kind="stable")[:n]`` (best first, ties: the earlier position) without sorting all of
    them: a partition finds the n-th best score, and only the candidates at or above it are sorted (5,000 scores,
    500 kept)."""
    negated = -np.asarray(scores)
    if n >= len(negated):
        return np.argsort(negated, kind="stable")
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    cutoff = np.partition(negated, n - 1)[n - 1]
    if np.isnan(cutoff):  # fewer than n real scores: NaNs go last, as argsort puts them
        return np.argsort(negated, kind="stable")[:n]
    above = np.flatnonzero(negated < cutoff)
    tied = np.flatnonzero(negated == cutoff)[: n - len(above)]  # the earliest of the scores equal to the n-th
    chosen = np.sort(np.concatenate([above, tied]))
    return chosen[np.argsort(negated[chosen], kind="stable")]


_lock = threading.Lock()
_built: list[Funnel] = []  # the last funnel built: requests on the same state reuse it


def funnel_for(model: PreRanker | None, items: ItemCache, recall: RecallIndex) -> Funnel | None:
    """The funnel over this pre-ranker, item snapshot and recall version (None without a pre-ranker)."""
    if model is None:
        return None
    with _lock:
        if _built and _built[0].model is model and _built[0].items is items and _built[0].recall is recall:
            return _built[0]
    funnel = Funnel.build(model, items, recall)
    with _lock:
        _built[:] = [funnel]
    return funnel
