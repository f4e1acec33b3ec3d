"""The pre-ranker: a cheap first-stage model between retrieval and the final ranker (issue 16's funnel).

Its features are all cheap at request time for thousands of candidates: the item-side columns of the item cache
(ITEM_FEATURES, one matrix row per item per snapshot), the user's share of clicks in the item's category
(``user_category_affinity``, as the final ranker derives it) and the inner product of the user's and the item's
learned recall vectors (``embedding_score``; NaN when either has no vector) and, on a search, the share of the
query's words in the item's title (``query_title_match``, the final ranker's request-time column; NaN on the feed):
without it the pre-ranker could not tell which of 5,000 candidates suit the query. Training (training/preranker.py)
and serving (serving/prerank.py) build the matrix with :func:`prerank_matrix`.

A version is ``<settings.preranker_dir>/<day>/`` with ``model.json`` (an XGBoost booster) and ``card.json``
(features, data window, metrics; written last: a directory without it is incomplete and never loaded).
``<preranker_dir>/CURRENT`` names the version to serve; it is replaced atomically once the version is complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shoprank.ranking_features import ITEM_FEATURES, QUERY_FEATURES

AFFINITY = "user_category_affinity"
EMBEDDING_SCORE = "embedding_score"
(QUERY_MATCH,) = QUERY_FEATURES  # query_title_match
FEATURES = [*ITEM_FEATURES, AFFINITY, EMBEDDING_SCORE, QUERY_MATCH]
# The columns a pre-ranker computes itself (training and serving alike); the rest are stored point-in-time columns.
REQUEST_COLUMNS = (EMBEDDING_SCORE, QUERY_MATCH)
MODEL_FILE = "model.json"
CARD_FILE = "card.json"
CURRENT = "CURRENT"


class PreRankerError(ValueError):
    """A pre-ranker version that cannot be served (incomplete, unreadable, other features), naming the path."""


def category_affinity(shares: np.ndarray | None, categories: np.ndarray) -> np.ndarray:
    """Per item, the user's click share of its category (0 for unknown categories or a user without shares)."""
    out = np.zeros(len(categories), dtype=np.float32)
    if shares is None:
        return out
    shares = np.nan_to_num(np.asarray(shares, dtype=np.float32))
    known = np.isfinite(categories) & (categories >= 0) & (categories < len(shares))
    out[known] = shares[categories[known].astype(np.int64)]
    return out


def embedding_scores(user: np.ndarray | None, item_vectors: np.ndarray, has_vector: np.ndarray) -> np.ndarray:
    """Inner products of ``user`` with each row of ``item_vectors``; NaN where the item (or the user) has none."""
    out = np.full(len(item_vectors), np.nan, dtype=np.float32)
    if user is not None:
        out[has_vector] = item_vectors[has_vector] @ np.asarray(user, dtype=np.float32)
    return out


def prerank_matrix(
    items: np.ndarray, affinity: np.ndarray, embedding: np.ndarray, query_match: np.ndarray
) -> np.ndarray:
    """The model matrix in FEATURES order: ``items`` holds the ITEM_FEATURES columns, one row per candidate."""
    columns = [items.astype(np.float32, copy=False), affinity, embedding, query_match]
    return np.column_stack(columns).astype(np.float32, copy=False)


@dataclass(frozen=True)
class PreRanker:
    """One loaded version: the booster and its card."""

    version: str
    booster: Any  # xgboost.Booster
    card: dict[str, Any] = field(default_factory=dict)
    # The booster with the query match's splits cut to their missing branch (shoprank/missing_branch.py): a request
    # without a query (the feed) gets the same scores from it walking fewer nodes. Built here; None if it cannot be.
    no_query_booster: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from shoprank.missing_branch import fix_missing

        try:
            specialised = fix_missing(self.booster, [FEATURES.index(QUERY_MATCH)])
            specialised.set_param({"nthread": 1})  # as load_preranker sets the booster's
        except ValueError:
            specialised = None
        object.__setattr__(self, "no_query_booster", specialised)

    def score(self, matrix: np.ndarray, query: bool = True) -> np.ndarray:
        """Scores of the rows of a :func:`prerank_matrix` (higher: more likely in the final ranker's top).
        ``query`` False: the rows' query match is NaN (no query), scored by the same model's shorter trees."""
        if not len(matrix):
            return np.zeros(0, dtype=np.float32)
        booster = self.booster if query or self.no_query_booster is None else self.no_query_booster
        return np.asarray(booster.inplace_predict(matrix), dtype=np.float32)


def current_version(root: Path) -> str | None:
    pointer = root / CURRENT
    return pointer.read_text().strip() or None if pointer.exists() else None


def load_preranker(root: Path) -> PreRanker | None:
    """The version CURRENT names (None when none was trained yet); raises :class:`PreRankerError` on a version that
    is incomplete, unreadable or built for other features, so the caller keeps what it serves."""
    version = current_version(root)
    if version is None:
        return None
    path = root / version
    if not (path / CARD_FILE).exists():
        raise PreRankerError(f"pre-ranker {path} is incomplete (no {CARD_FILE})")
    try:
        import xgboost as xgb

        card = json.loads((path / CARD_FILE).read_text())
        booster = xgb.Booster()
        booster.load_model(path / MODEL_FILE)
        booster.set_param({"nthread": 1})  # requests already run in parallel; one thread per predict
    except Exception as exc:
        raise PreRankerError(f"pre-ranker {path} unreadable: {type(exc).__name__}: {exc}") from exc
    if card.get("features") != FEATURES or booster.num_features() != len(FEATURES):
        raise PreRankerError(f"pre-ranker {path} was trained on {card.get('features')}, serving builds {FEATURES}")
    return PreRanker(version=version, booster=booster, card=card)
