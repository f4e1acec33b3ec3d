"""Scoring and top-k selection: pure functions over pandas/numpy, no BentoML, no Feast.

The feature frame has one row per candidate item, built from the user's stored features and the items' stored
features exactly as training builds it (shoprank.ranking_features). Unknown users and items are cold starts, not
errors: their stored features are NaN (XGBoost routes missing values), and an unknown user gets
``user_is_cold_start = 1``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from shoprank.ranking_features import ITEM_FEATURES, add_derived_features, model_matrix, stored_user_features

REASON_MODEL = "model"
REASON_POPULAR = "popular-fallback"


class Scorer(Protocol):
    def predict(self, X: Any) -> Any: ...


@dataclass(frozen=True)
class Ranked:
    item_id: str
    score: float
    rank: int
    reason: str


def dedupe(ids: Iterable[str]) -> list[str]:
    """The ids in first-seen order, each once."""
    return list(dict.fromkeys(ids))


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def is_unknown_user(user_features: Mapping[str, Any] | None, n_categories: int) -> bool:
    """True when the store has no stored feature for the user (never seen, or not materialized yet)."""
    if not user_features:
        return True
    return all(_is_missing(user_features.get(name)) for name in stored_user_features(n_categories))


def build_feature_frame(
    user_features: Mapping[str, Any] | None,
    item_features: pd.DataFrame,
    candidate_ids: Sequence[str],
    n_categories: int,
) -> pd.DataFrame:
    """One row per candidate (in ``candidate_ids`` order) with stored and derived features.

    ``item_features`` is indexed by item_id (extra columns are ignored, missing items give NaN rows).
    """
    user_columns = stored_user_features(n_categories)
    cold = is_unknown_user(user_features, n_categories)
    user_values = {
        name: (np.nan if cold or _is_missing((user_features or {}).get(name)) else user_features[name])  # type: ignore[index]
        for name in user_columns
    }
    if cold:
        user_values["user_is_cold_start"] = 1
    items = item_features.reindex(index=pd.Index(list(candidate_ids), name="item_id"), columns=ITEM_FEATURES)
    frame = items.reset_index()
    for name, value in user_values.items():
        frame[name] = value
    for name in user_columns + ITEM_FEATURES:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    return add_derived_features(frame, n_categories)


def score(model: Scorer, frame: pd.DataFrame, feature_columns: list[str]) -> np.ndarray:
    """Model scores, one per row of ``frame``, as float64."""
    if frame.empty:
        return np.zeros(0)
    return np.asarray(model.predict(model_matrix(frame, feature_columns)), dtype=float).reshape(-1)


def top_k(item_ids: Sequence[str], scores: Sequence[float] | np.ndarray, k: int, reason: str) -> list[Ranked]:
    """The k best items by score (descending), ties broken by item_id (ascending).

    A NaN score ranks last and stays NaN (callers that serialize JSON give NaN-free scores: models do not
    produce NaN, and popularity fills unknown items with 0).
    """
    if len(item_ids) != len(scores):
        raise ValueError(f"{len(item_ids)} items but {len(scores)} scores")
    values = np.asarray(scores, dtype=float)
    sortable = np.where(np.isnan(values), -np.inf, values)
    ids = np.asarray(item_ids, dtype=object)
    order = np.lexsort((ids, -sortable))[: max(k, 0)]
    return [Ranked(item_id=str(ids[i]), score=float(values[i]), rank=r + 1, reason=reason) for r, i in enumerate(order)]
