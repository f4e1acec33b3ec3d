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

from shoprank.ranking_features import (
    DERIVED_FEATURES,
    ITEM_FEATURES,
    USER_FEATURES,
    add_derived_features,
    category_share_columns,
    model_matrix,
    stored_user_features,
)

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


# ---- the fast path: numpy only, from the item cache's matrix -------------------------------------------------
FAST_PATH_COLUMNS = frozenset(USER_FEATURES + ITEM_FEATURES + DERIVED_FEATURES)


def user_vector(user_features: Mapping[str, Any] | None, n_categories: int) -> tuple[bool, dict[str, float]]:
    """(cold, stored user features as floats): NaN where missing; a cold user gets ``user_is_cold_start = 1``."""
    cold = is_unknown_user(user_features, n_categories)
    values: dict[str, float] = {}
    for name in stored_user_features(n_categories):
        raw = None if cold else (user_features or {}).get(name)
        try:
            values[name] = float("nan") if _is_missing(raw) else float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            values[name] = float("nan")
    if cold:
        values["user_is_cold_start"] = 1.0
    return cold, values


def fast_matrix(
    user: Mapping[str, float], items: np.ndarray, feature_columns: Sequence[str], n_categories: int
) -> np.ndarray:
    """The model matrix for one user and the item rows ``items`` (ITEM_FEATURES order), without pandas.

    Same values as ``model_matrix(add_derived_features(frame), feature_columns)`` on the frame built by
    :func:`build_feature_frame` (a test checks it); only for columns in FAST_PATH_COLUMNS.
    """
    n = items.shape[0]
    out = np.empty((n, len(feature_columns)), dtype=np.float32)
    category = items[:, ITEM_FEATURES.index("item_category_id")]
    price = items[:, ITEM_FEATURES.index("item_price")]
    for j, name in enumerate(feature_columns):
        if name in ITEM_FEATURES:
            out[:, j] = items[:, ITEM_FEATURES.index(name)]
        elif name == "user_category_affinity":
            shares = np.array([user.get(c, np.nan) for c in category_share_columns(n_categories)], dtype=float)
            shares = np.nan_to_num(shares, nan=0.0)
            known = np.isfinite(category) & (category >= 0) & (category < n_categories)
            affinity = np.zeros(n)
            affinity[known] = shares[category[known].astype(int)]
            out[:, j] = affinity
        elif name == "price_to_user_avg":
            avg = user.get("user_avg_click_price_30d", np.nan)
            out[:, j] = price / avg if np.isfinite(avg) and avg > 0 else np.nan
        else:
            out[:, j] = user.get(name, np.nan)
    return out
