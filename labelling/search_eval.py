"""Search ranking with and without the relevance feature, judged by clicks and by people.

A search ranker (XGBoost LambdaMART on the search log's clicks) ranks each request's shown items. Features: the
item's click-through rate on earlier days, its price, the share of the query's clicks going to its category, and
(the arm "with relevance") ``relevance_score``, the relevance model's P(grade >= 2). Both are trained on the
earlier days' search requests and scored on the last day's. The caller measures NDCG@10 with clicks as labels
and with human grades (aggregated crowd labels of the judged pairs) as gains.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xgboost as xgb

BASE_FEATURES = ("item_ctr", "log_price", "query_category_click_share")


def search_rows(events: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """One row per search impression: request, day, query, item, position, clicked; plus the shown attributes."""
    search = events[events["surface"] == "search"]
    imps = search[search["event_type"] == "impression"][["request_id", "item_id", "query", "position", "day"]]
    clicked = search[search["event_type"] == "click"][["request_id", "item_id"]].drop_duplicates()
    rows = imps.merge(clicked.assign(clicked=1), on=["request_id", "item_id"], how="left").fillna({"clicked": 0})
    rows["clicked"] = rows["clicked"].astype(int)
    return rows.merge(items, left_on="item_id", right_index=True, how="inner")


def add_features(rows: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Features of ``rows`` from ``history`` (earlier search impressions only: no leak from the scored day)."""
    per_item = history.groupby("item_id")["clicked"].agg(["sum", "size"])
    ctr = (per_item["sum"] + 0.5) / (per_item["size"] + 10.0)  # smoothed toward a 5% prior
    per_cat = history.groupby(["query", "category_id"])["clicked"].sum()
    share = per_cat / per_cat.groupby(level=0).transform("sum").replace(0, np.nan)
    key = pd.MultiIndex.from_arrays([rows["query"], rows["category_id"]])
    return rows.assign(
        item_ctr=rows["item_id"].map(ctr).fillna(0.05).to_numpy(),
        log_price=np.log1p(rows["price"].astype(float)),
        query_category_click_share=share.reindex(key).fillna(0.0).to_numpy(),
    )


def train_ranker(train: pd.DataFrame, columns: list[str], seed: int = 7) -> xgb.XGBRanker:
    train = train.sort_values("request_id", kind="stable")
    model = xgb.XGBRanker(
        objective="rank:ndcg", n_estimators=150, max_depth=4, learning_rate=0.1, random_state=seed, n_jobs=1
    )
    model.fit(train[columns].to_numpy(dtype=float), train["clicked"], qid=pd.factorize(train["request_id"])[0])
    return model


def score(model: xgb.XGBRanker, rows: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return model.predict(rows[columns].to_numpy(dtype=float))
