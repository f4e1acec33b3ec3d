"""Scoring and top-k selection: pure functions over pandas/numpy, no BentoML, no Feast.

The feature frame has one row per candidate item, built from the user's stored features and the items' stored
features exactly as training builds it (shoprank.ranking_features). Unknown users and items are cold starts, not
errors: their stored features are NaN (XGBoost routes missing values), and an unknown user gets
``user_is_cold_start = 1``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from serving.item_cache import SELLER_COLUMN
from shoprank.query_relevance import COLUMN as RELEVANCE_COLUMN
from shoprank.ranking_features import (
    DERIVED_FEATURES,
    ITEM_FEATURES,
    ON_DEMAND_FEATURES,
    QUERY_FEATURES,
    USER_CATEGORY_ABSENT,
    TitleWordIndex,
    add_derived_features,
    category_share_columns,
    request_time_features,
    stored_user_features,
)
from shoprank.session import (
    SESSION_CANDIDATE_COLUMNS,
    SESSION_QUERY_COLUMNS,
    SESSION_USER_COLUMNS,
    SessionConfig,
    TitleIndex,
    candidate_session_features,
    pushed_columns,
    session_query_features,
    session_user_features,
)

REASON_MODEL = "model"
REASON_POPULAR = "popular-fallback"


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


def _category_values(values: Any, categories: np.ndarray, n_categories: int) -> np.ndarray:
    """Per row, the per-category ``values`` (a sequence indexed by category_id) at the row's category; NaN when the
    category is unknown or out of range."""
    table = np.array([np.nan if _is_missing(v) else float(v) for v in values], dtype=float)
    out = np.full(len(categories), np.nan)
    known = np.isfinite(categories) & (categories >= 0) & (categories < min(n_categories, len(table)))
    out[known] = table[categories[known].astype(int)]
    return out


def build_feature_frame(
    user_features: Mapping[str, Any] | None,
    item_features: pd.DataFrame,
    candidate_ids: Sequence[str],
    n_categories: int,
    per_row: Mapping[str, Sequence[float] | np.ndarray] | None = None,
) -> pd.DataFrame:
    """One row per candidate (in ``candidate_ids`` order) with stored, derived and request-time features, built
    with the functions training uses (pandas; the reference the fast path is tested against).

    ``item_features`` is indexed by item_id (missing items give NaN rows). ``user_features`` is what
    OnlineFeatureReader.user_features returns: scalars per user feature, tuples per user x category feature.
    ``per_row``: request-time columns given per candidate (e.g. the query match, as training reads it).
    """
    cold = is_unknown_user(user_features, n_categories)
    given = dict(user_features or {})
    per_category = {name: v for name, v in given.items() if isinstance(v, tuple | list)}
    scalar_names = list(dict.fromkeys([*stored_user_features(n_categories), *(set(given) - set(per_category))]))
    user_values = {name: (np.nan if cold or _is_missing(given.get(name)) else given[name]) for name in scalar_names}
    if cold:
        user_values["user_is_cold_start"] = 1
    columns = list(dict.fromkeys([*ITEM_FEATURES, *item_features.columns]))
    items = item_features.reindex(index=pd.Index(list(candidate_ids), name="item_id"), columns=columns)
    frame = items.reset_index()
    for name, value in user_values.items():
        frame[name] = value
    for name in [*scalar_names, *columns]:
        if name != SELLER_COLUMN:
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    category = frame["item_category_id"].to_numpy(dtype=float)
    for name, values in per_category.items():
        frame[name] = np.nan if cold else _category_values(values, category, n_categories)
    for name, row_values in (per_row or {}).items():
        frame[name] = np.asarray(row_values, dtype=float)
    frame = add_derived_features(frame, n_categories)
    return frame.join(request_time_features(frame))


# ---- the fast path: numpy only, from the item cache's matrix -------------------------------------------------
# Columns computed per request from the user's and the items' stored features (the same logic as
# shoprank.ranking_features.add_derived_features and the on-demand view's request_time_features).
# QUERY_FEATURES come per row from the request's query and the items' titles (query_match_columns).
# SESSION_COLUMNS come per row from the user's pushed session row, the request's time and the items' categories
# (session_columns).
SESSION_COLUMNS = frozenset(SESSION_USER_COLUMNS + SESSION_CANDIDATE_COLUMNS + SESSION_QUERY_COLUMNS)
# The relevance model's score (RELEVANCE_COLUMN) comes per row from the request's query and the items' parsed titles,
# categories and prices (serving/relevance.py).
REQUEST_TIME_COLUMNS = (
    frozenset([*DERIVED_FEATURES, *ON_DEMAND_FEATURES, *QUERY_FEATURES, RELEVANCE_COLUMN]) | SESSION_COLUMNS
)


def uses_session(feature_columns: Sequence[str]) -> bool:
    return not SESSION_COLUMNS.isdisjoint(feature_columns)


def session_columns(
    feature_columns: Sequence[str],
    user_features: Mapping[str, Any] | None,
    item_ids: Sequence[str],
    item_category: np.ndarray,
    now: Any,
    config: SessionConfig,
    n_categories: int,
    titles: TitleIndex | None = None,
    rows: np.ndarray | None = None,
    catalogue_category: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The model's session columns per candidate, with shoprank.session's functions (training's): the user-level
    ones from the user's pushed session row (absent: no session), the candidate ones joined on each item's id and
    category, like the user x category view; the session_query ones from the row's last query against ``titles``
    (the item cache's title index; ``rows``: the candidates' cache rows, ``catalogue_category``: every cache row's
    category). Empty for a model without session columns."""
    wanted = SESSION_COLUMNS.intersection(feature_columns)
    if not wanted:
        return {}
    given = user_features or {}
    values = {name: given.get(name) for name in pushed_columns(n_categories)}
    n = len(item_ids)
    out = {name: np.full(n, column[0]) for name, column in session_user_features(values, now, config, 1).items()}
    out.update(candidate_session_features(values, item_category, item_ids, now, config, n_categories=n_categories))
    if not wanted.isdisjoint(SESSION_QUERY_COLUMNS):
        if titles is None or rows is None or catalogue_category is None:
            raise ValueError("the model uses the session's query columns but the item cache has no titles")
        out.update(
            session_query_features(values, now, config, titles, rows, catalogue_category, n_categories=n_categories)
        )
    return {name: column for name, column in out.items() if name in wanted}


def query_match_columns(
    feature_columns: Sequence[str],
    surface: str,
    query: str | None,
    titles: TitleWordIndex | None,
    rows: np.ndarray,
) -> dict[str, np.ndarray]:
    """QUERY_FEATURES the model uses, per candidate row of the item cache: NaN without a search query (a feed
    request, as training's feed impressions have no query_item_match row). ``titles``: the cache's title word
    index (ItemCache.title_index, the pre-ranker's too), whose values are query_title_match's (a test pins them)."""
    if not set(QUERY_FEATURES) & set(feature_columns):
        return {}
    if titles is None:
        raise ValueError("the model uses query features but the item cache has no titles")
    return {"query_title_match": titles.match(query if surface == "search" else None, rows)}


def user_vector(
    user_features: Mapping[str, Any] | None, n_categories: int, names: Sequence[str] = ()
) -> tuple[bool, dict[str, float]]:
    """(cold, scalar user features as floats): the v1 stored user features plus ``names``, NaN where missing; a
    cold user gets ``user_is_cold_start = 1``."""
    cold = is_unknown_user(user_features, n_categories)
    values: dict[str, float] = {}
    for name in dict.fromkeys([*stored_user_features(n_categories), *names]):
        raw = None if cold else (user_features or {}).get(name)
        try:
            values[name] = float("nan") if _is_missing(raw) else float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            values[name] = float("nan")
    if cold:
        values["user_is_cold_start"] = 1.0
    return cold, values


def category_table(
    user_features: Mapping[str, Any] | None, names: Sequence[str], n_categories: int, cold: bool
) -> dict[str, np.ndarray]:
    """Per user x category feature, its values by category_id, plus one last entry for items of no known
    category. A pair the store has no value for gets USER_CATEGORY_ABSENT's value for a known user (as training
    fills it), NaN for a cold one."""
    table: dict[str, np.ndarray] = {}
    for name in names:
        values = np.full(n_categories + 1, np.nan)
        if not cold:
            given = list((user_features or {}).get(name) or ())[:n_categories]
            absent = USER_CATEGORY_ABSENT.get(name, np.nan)
            values[:] = absent
            for c, value in enumerate(given):
                if not _is_missing(value):
                    values[c] = float(value)
        table[name] = values
    return table


def servable_columns_missing(
    feature_columns: Sequence[str],
    item_columns: Sequence[str],
    user_names: Sequence[str],
    category_names: Sequence[str],
) -> list[str]:
    """The model's columns the fast path cannot build from these stored features (empty: servable)."""
    known = {*item_columns, *user_names, *category_names, *REQUEST_TIME_COLUMNS}
    return [name for name in feature_columns if name not in known]


def fast_matrix(
    user: Mapping[str, float],
    items: np.ndarray,
    feature_columns: Sequence[str],
    n_categories: int,
    item_columns: Mapping[str, int] | Sequence[str] = ITEM_FEATURES,
    categories: Mapping[str, np.ndarray] | None = None,
    per_row: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """The model matrix for one user and the item cache rows ``items`` (columns ``item_columns``), without pandas.

    ``user``: scalar user features (:func:`user_vector`); ``categories``: user x category features per category
    (:func:`category_table`), looked up at each item's category; ``per_row``: columns already computed per row
    (:func:`query_match_columns`). Same values as
    ``model_matrix(build_feature_frame(...), feature_columns)`` (tests check it); columns outside the stored ones
    and REQUEST_TIME_COLUMNS read as NaN (load_state refuses such a model, see servable_columns_missing).
    """
    index = item_columns if isinstance(item_columns, Mapping) else {name: j for j, name in enumerate(item_columns)}
    categories, per_row = categories or {}, per_row or {}
    n = items.shape[0]
    out = np.empty((n, len(feature_columns)), dtype=np.float32)
    category = items[:, index["item_category_id"]]
    price = items[:, index["item_price"]]
    in_range = np.isfinite(category) & (category >= 0) & (category < n_categories)
    shares: np.ndarray | None = None
    avg = user.get("user_avg_click_price_30d", np.nan)
    for j, name in enumerate(feature_columns):
        if name in index:
            out[:, j] = items[:, index[name]]
        elif name in per_row:
            out[:, j] = per_row[name]
        elif name in categories:
            by_category = categories[name]
            looked_up = np.full(n, by_category[-1])
            looked_up[in_range] = by_category[category[in_range].astype(int)]
            out[:, j] = looked_up
        elif name in ("user_category_affinity", "item_in_user_top_category"):
            if shares is None:
                shares = np.array([user.get(c, np.nan) for c in category_share_columns(n_categories)], dtype=float)
                shares = np.nan_to_num(shares, nan=0.0)
            if name == "user_category_affinity":
                affinity = np.zeros(n)
                affinity[in_range] = shares[category[in_range].astype(int)]
                out[:, j] = affinity
            else:
                top = int(np.argmax(shares)) if shares.sum() > 0 else -1
                out[:, j] = (np.nan_to_num(category, nan=-1) == top) & (top >= 0)
        elif name == "price_to_user_avg":
            out[:, j] = price / avg if np.isfinite(avg) and avg > 0 else np.nan
        elif name == "price_to_user_band":
            with np.errstate(divide="ignore", invalid="ignore"):
                out[:, j] = np.log(price / avg) if np.isfinite(avg) and avg > 0 else np.nan
        else:
            out[:, j] = user.get(name, np.nan)
    return out
