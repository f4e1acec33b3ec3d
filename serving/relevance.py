"""The search relevance feature at request time: the newest query-item relevance model version (trained by the
labelling flow on human grades, shoprank/query_relevance.py) scores each search candidate from the query, the
item's title, category and price. Without a version the feature is NaN and the response says why
(``relevance-model-missing``); a feed request has no query, so NaN, as in training."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shoprank import query_relevance
from shoprank.query_relevance import COLUMN, RelevanceModel
from shoprank.settings import Settings

log = logging.getLogger("shoprank.serving")

RELEVANCE_MODEL_MISSING = "relevance-model-missing"


@dataclass(frozen=True)
class ServedRelevance:
    model: RelevanceModel | None = None
    version: str | None = None
    error: str | None = None


def uses_relevance(feature_columns: Sequence[str]) -> bool:
    return COLUMN in feature_columns


def load_relevance(settings: Settings, previous: ServedRelevance | None = None) -> ServedRelevance:
    """The newest version (every label it learned from is from a day before today's requests); a version that
    fails to load keeps the previous one, with the error."""
    try:
        loaded = query_relevance.load_latest(settings)
    except Exception as exc:
        log.exception("relevance model could not be loaded")
        kept = previous or ServedRelevance()
        return ServedRelevance(kept.model, kept.version, f"{type(exc).__name__}: {exc}")
    if loaded is None:
        return ServedRelevance()
    return ServedRelevance(loaded[0], loaded[1].isoformat())


def relevance_columns(
    feature_columns: Sequence[str],
    served: ServedRelevance,
    surface: str,
    query: str | None,
    parsed_titles: np.ndarray | None,
    rows: np.ndarray,
    category: np.ndarray,
    price: np.ndarray,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """COLUMN per candidate (item-cache ``rows``, their category and price) and the degraded reasons: empty for a
    model without the feature; NaN with RELEVANCE_MODEL_MISSING on a search without a loaded version."""
    if not uses_relevance(feature_columns):
        return {}, []
    search = surface == "search" and bool(query)
    if parsed_titles is None:
        raise ValueError("the model uses the relevance feature but the item cache has no titles")
    reasons = [RELEVANCE_MODEL_MISSING] if search and served.model is None else []
    titles = list(parsed_titles[rows])
    scores = query_relevance.score_pairs(served.model, query if search else None, titles, category, price)
    return {COLUMN: scores}, reasons
