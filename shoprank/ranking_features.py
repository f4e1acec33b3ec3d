"""The ranker's feature contract, shared by training and serving so both build the same matrix.

Stored features come from the Feast views over the marts (see feature_repo/); derived features are computed in
process from stored ones (here, the user's affinity to the candidate item's category), identically at training
and at request time. ``feature_columns_for`` gives each ranker version's (feature service's) columns in model
order; serving builds exactly those, in that order, from the model card (serving/ranking.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from shoprank import feature_contract as contract
from shoprank.feature_contract import CATEGORY_KEY, category_share_columns, feature_columns_for

__all__ = ["CATEGORY_KEY", "category_share_columns", "feature_columns_for"]

# The columns of each declared view and computed group (shoprank/feature_contract.py declares them once).
USER_FEATURES = contract.view_features("user_features")
ITEM_FEATURES = contract.view_features("item_features")
DERIVED_FEATURES = list(contract.COMPUTED["derived"].columns)

# The popularity baseline ranks by this stored item feature.
POPULARITY_FEATURE = "item_clicks_7d"


def stored_user_features(n_categories: int) -> list[str]:
    return USER_FEATURES + category_share_columns(n_categories)


def model_feature_columns() -> list[str]:
    """Columns the model sees, in order. Category shares enter only through user_category_affinity."""
    return USER_FEATURES + ITEM_FEATURES + DERIVED_FEATURES


def add_derived_features(frame: pd.DataFrame, n_categories: int) -> pd.DataFrame:
    """Return a copy of ``frame`` with DERIVED_FEATURES added (rows: one user-item pair each)."""
    out = frame.copy()
    share_columns = category_share_columns(n_categories)
    shares = out[share_columns].to_numpy(dtype=float, na_value=0.0)
    category = pd.to_numeric(out["item_category_id"], errors="coerce").to_numpy(dtype=float)
    known = ~np.isnan(category) & (category >= 0) & (category < n_categories)
    affinity = np.zeros(len(out))
    rows = np.nonzero(known)[0]
    affinity[rows] = shares[rows, category[rows].astype(int)]
    out["user_category_affinity"] = affinity
    user_avg_price = pd.to_numeric(out["user_avg_click_price_30d"], errors="coerce")
    item_price = pd.to_numeric(out["item_price"], errors="coerce")
    out["price_to_user_avg"] = (item_price / user_avg_price.where(user_avg_price > 0)).astype(float)
    if any(name in out.columns for name in USER_CATEGORY_FEATURES):
        fill_absent_user_category(out)
    return out


def model_matrix(frame: pd.DataFrame, feature_columns: list[str]) -> np.ndarray:
    """A float32 matrix in ``feature_columns`` order; missing values stay NaN (XGBoost handles them)."""
    missing = [c for c in feature_columns if c not in frame.columns]
    if missing:
        raise KeyError(f"feature columns missing from frame: {missing}")
    selected = frame[feature_columns]
    # Only non-numeric columns need coercing: a column-wise apply over every column copied the whole frame (about
    # 4% of `shoprank train`'s CPU at 1M events, profiled). pd.to_numeric leaves numeric columns as they are.
    odd = [name for name, dtype in selected.dtypes.items() if not pd.api.types.is_numeric_dtype(dtype)]
    if odd:
        selected = selected.assign(**{name: pd.to_numeric(selected[name], errors="coerce") for name in odd})
    return selected.to_numpy(dtype=np.float32)


# ---- ranker versions ---------------------------------------------------------------------------------------------
SELLER_FEATURES = contract.view_features("seller_features")
ON_DEMAND_FEATURES = list(contract.COMPUTED["user_item_match"].columns)
ITEM_WINDOW_FEATURES = contract.view_features("item_window_features")
USER_WINDOW_FEATURES = contract.view_features("user_window_features")
USER_CATEGORY_FEATURES = contract.view_features("user_category_features")
# A (user, category) pair the mart has no row for had no impressions in the window: for a user the store knows,
# its counts and click share are 0 and its CTR unknown (NaN). Training and serving fill it the same way.
USER_CATEGORY_ABSENT = {
    "uc_impressions_30d": 0.0,
    "uc_clicks_30d": 0.0,
    "uc_purchases_30d": 0.0,
    "uc_ctr_30d": float("nan"),
    "uc_click_share_30d": 0.0,
    # the population prior of the window, which serving does not know: missing, as in training
    "uc_taste_30d": float("nan"),
}


# The search query's match with the item's title: a request-time feature (it needs only the request and the
# catalogue, so it is point-in-time by construction). No Feast view holds it: there is no entity to key it on.
# Training reads it per impression from the query_item_match mart; serving computes it with query_title_match.
# Feed requests have no query: NaN (as the mart has no row for them).
QUERY_FEATURES = list(contract.COMPUTED["query"].columns)


def title_words(title: str | None) -> frozenset[str]:
    """A title's words as query_item_match splits them: lowercase, split on single spaces."""
    return frozenset((title or "").lower().split(" "))


def query_title_match(query: str | None, titles: Sequence[frozenset[str]]) -> np.ndarray:
    """Per title (as :func:`title_words`), the share of the query's distinct words found in it, exactly as the
    query_item_match mart computes it in SQL (a test pins both); NaN for every title without a query."""
    if query is None:
        return np.full(len(titles), np.nan)
    words = set(query.lower().split(" "))
    return np.fromiter((len(words & title) / len(words) for title in titles), dtype=float, count=len(titles))


class TitleWordIndex:
    """:func:`query_title_match` over a fixed list of titles, for thousands of rows per request (the pre-ranker's
    5,000 candidates): an inverted index of each word's rows, so a query costs its words' postings instead of one
    Python set intersection per title (4 ms per 5,000 titles). Same values as query_title_match (a test pins them)."""

    def __init__(self, titles: Iterable[frozenset[str]]) -> None:
        postings: dict[str, list[int]] = {}
        size = 0
        for row, words in enumerate(titles):
            size = row + 1
            for word in words:
                postings.setdefault(word, []).append(row)
        self.postings = {word: np.asarray(rows, dtype=np.int64) for word, rows in postings.items()}
        self.size = size

    def match(self, query: str | None, rows: np.ndarray) -> np.ndarray:
        """query_title_match(query, titles[rows]): per row, the share of the query's distinct words in its title."""
        if query is None:
            return np.full(len(rows), np.nan)
        words = set(query.lower().split(" "))
        counts = np.zeros(self.size, dtype=np.int64)
        for word in words:
            hits = self.postings.get(word)
            if hits is not None:
                counts[hits] += 1  # a word's rows are distinct: a plain fancy-index add is exact
        return counts[rows] / len(words)


def fill_absent_user_category(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with USER_CATEGORY_ABSENT filled in where the user is known (has user_features) but the pair has
    no row; unknown users keep NaN, like their other stored features. In place on the given frame's columns."""
    known_user = pd.to_numeric(frame["user_impressions_30d"], errors="coerce").notna()
    for name, value in USER_CATEGORY_ABSENT.items():
        if name in frame.columns and not np.isnan(value):
            column = pd.to_numeric(frame[name], errors="coerce").astype(float)
            frame[name] = column.mask(known_user & column.isna(), value)
    return frame


def request_time_features(frame: pd.DataFrame) -> pd.DataFrame:
    """ON_DEMAND_FEATURES of user-item rows (Feast's on-demand view calls this; so can anything in process).

    price_to_user_band: log(item price / the user's average clicked price); 0 at the centre of the user's band,
    NaN with no click history. item_in_user_top_category: 1 when the item's category is the user's most clicked.
    """
    shares = frame[[c for c in frame.columns if c.startswith("user_cat_share_")]].sort_index(axis=1)
    shares_np = shares.to_numpy(dtype=float, na_value=0.0)
    has_clicks = shares_np.sum(axis=1) > 0
    top = shares_np.argmax(axis=1) if shares_np.shape[1] else np.zeros(len(frame), dtype=int)
    category = pd.to_numeric(frame["item_category_id"], errors="coerce").fillna(-1).to_numpy(dtype=int)
    user_avg = pd.to_numeric(frame["user_avg_click_price_30d"], errors="coerce").to_numpy(dtype=float)
    price = pd.to_numeric(frame["item_price"], errors="coerce").to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        band = np.where(user_avg > 0, np.log(price / user_avg), np.nan)
    return pd.DataFrame(
        {
            "price_to_user_band": band.astype(float),
            "item_in_user_top_category": (has_clicks & (top == category)).astype("int64"),
        },
        index=frame.index,
    )
