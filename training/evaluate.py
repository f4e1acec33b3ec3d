"""Ranking metrics over grouped lists (one group = one request's slate)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def ndcg_at_k(
    frame: pd.DataFrame, score_column: str, k: int, group_column: str = "request_id", label_column: str = "relevance"
) -> float:
    """Mean NDCG@k over groups that have at least one relevant item (exponential gain 2^rel - 1).

    Ties in score are broken by item_id so the figure is reproducible.
    """
    columns = [group_column, label_column, score_column, "item_id"]
    data = frame[columns].copy()
    positive_groups = data.groupby(group_column)[label_column].transform("max") > 0
    data = data[positive_groups]
    if data.empty:
        raise ValueError("no group has a relevant item; NDCG is undefined")
    gains = np.exp2(data[label_column].to_numpy(dtype=float)) - 1.0

    def discounted(order_columns: list[str], ascending: list[bool]) -> pd.Series:
        ordered = data.assign(_gain=gains).sort_values(order_columns, ascending=ascending, kind="mergesort")
        rank = ordered.groupby(group_column).cumcount() + 1
        contribution = np.where(rank <= k, ordered["_gain"] / np.log2(rank + 1), 0.0)
        return pd.Series(contribution, index=ordered.index).groupby(ordered[group_column]).sum()

    dcg = discounted([group_column, score_column, "item_id"], [True, False, True])
    ideal = discounted([group_column, label_column, "item_id"], [True, False, True])
    return float((dcg / ideal).mean())


def evaluate_scores(frame: pd.DataFrame, score_columns: dict[str, str], k: int) -> dict[str, float]:
    """NDCG@k for each named score column, e.g. {"model": "score", "popularity": "item_clicks_7d"}."""
    return {f"{name}_ndcg@{k}": ndcg_at_k(frame, column, k) for name, column in score_columns.items()}
