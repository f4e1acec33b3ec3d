"""The query-item relevance feature of training rows, point in time: each day's search impressions are scored by
the relevance model version trained only on labels from days before it (shoprank/query_relevance.py); a day
without such a version, and every feed impression, gets NaN, as serving does without a model or a query."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from shoprank import feature_contract as contract
from shoprank import query_relevance
from shoprank.settings import Settings

# The search impression's query and the item's title, read from the query_item_match mart beside the query match
# and dropped once the feature is computed.
QUERY_COLUMN, TITLE_COLUMN = "_query", "_item_title"


def reads_relevance(feature_service: str) -> bool:
    return "relevance" in contract.ranker(feature_service).columns


def add_relevance(settings: Settings, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with COLUMN per row, without the query and title columns it was computed from."""
    out = np.full(len(frame), np.nan)
    days = pd.to_datetime(frame["dt"]).dt.date.to_numpy()
    queries = frame[QUERY_COLUMN].to_numpy(dtype=object)
    for day in sorted(set(days)):
        loaded = query_relevance.load_for_day(settings, day if isinstance(day, date) else date.fromisoformat(day))
        rows = np.nonzero((days == day) & pd.notna(queries))[0]
        if loaded is None or not len(rows):
            continue
        titles = [query_relevance.parse(t) for t in frame[TITLE_COLUMN].to_numpy(dtype=object)[rows]]
        out[rows] = query_relevance.score_pairs(
            loaded[0],
            list(queries[rows]),
            titles,
            pd.to_numeric(frame["item_category_id"], errors="coerce").to_numpy(dtype=float)[rows],
            pd.to_numeric(frame["item_price"], errors="coerce").to_numpy(dtype=float)[rows],
        )
    return frame.drop(columns=[QUERY_COLUMN, TITLE_COLUMN]).assign(**{query_relevance.COLUMN: out})
