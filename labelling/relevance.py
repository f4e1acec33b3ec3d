"""The query-item relevance model: trained on aggregated human grades, scored on any (query, item) pair.

Features are what a person judging the pair sees, plus one log statistic: text match (the query's noun and
adjective in the title, token overlap), whether the item is a promotion, its category and price, and the share of
the query's search clicks that went to the item's category (which category the query means). It predicts
P(grade >= 2), "relevant"; its score is the bench's search-ranking feature ``relevance_score`` and the pre-label.

The served ranker's feature ``query_item_relevance`` comes from the same model class on the served features only
(no log statistic: serving has no search log at hand), versioned per labelled day (shoprank/query_relevance.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from shoprank.query_relevance import N_GRADES, RELEVANT_GRADE, SERVED_FEATURES, RelevanceModel, pair_frame

__all__ = ["FEATURES", "N_GRADES", "RELEVANT_GRADE", "RelevanceModel", "auc", "features"]

# The served features (shoprank/query_relevance.py: what a request and the catalogue give) plus two log statistics.
FEATURES = (*SERVED_FEATURES, "query_category_click_share", "query_category_impression_share")


def _category_shares(log_pairs: pd.DataFrame, column: str) -> pd.Series:
    per = log_pairs.groupby(["query", "category_id"])[column].sum()
    return (per / per.groupby(level=0).transform("sum").replace(0, np.nan)).fillna(0.0)


def features(pairs: pd.DataFrame, log_pairs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Model inputs for ``pairs`` (query, title, category_id, price); click shares come from ``log_pairs``
    (the search log's pairs with impressions and clicks; default: ``pairs`` themselves)."""
    log_pairs = pairs if log_pairs is None else log_pairs
    key = pd.MultiIndex.from_arrays([pairs["query"], pairs["category_id"]])
    out = pair_frame(pairs).assign(
        query_category_click_share=_category_shares(log_pairs, "clicks").reindex(key).fillna(0.0).to_numpy(),
        query_category_impression_share=_category_shares(log_pairs, "impressions").reindex(key).fillna(0.0).to_numpy(),
    )
    return out[list(FEATURES)]


def auc(model: RelevanceModel, x: pd.DataFrame, true_grades: np.ndarray) -> float:
    """ROC AUC of the model's score against the true relevance (grade >= 2)."""
    y = (np.asarray(true_grades) >= RELEVANT_GRADE).astype(int)
    return float(roc_auc_score(y, model.predict(x)))
