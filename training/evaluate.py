"""Ranking metrics over grouped lists (one group = one request's slate)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def ndcg_per_group(
    frame: pd.DataFrame, score_column: str, k: int, group_column: str = "request_id", label_column: str = "relevance"
) -> pd.Series:
    """NDCG@k of each group that has a relevant item (exponential gain 2^rel - 1); empty when none has.

    Ties in score are broken by item_id so the figure is reproducible.
    """
    columns = [group_column, label_column, score_column, "item_id"]
    data = frame[columns].copy()
    positive_groups = data.groupby(group_column)[label_column].transform("max") > 0
    data = data[positive_groups]
    if data.empty:
        return pd.Series(dtype=float)
    data = data.assign(_gain=np.exp2(data[label_column].to_numpy(dtype=float)) - 1.0)
    return _discounted_gain(data, group_column, score_column, k) / _discounted_gain(data, group_column, label_column, k)


def _discounted_gain(data: pd.DataFrame, group_column: str, order_column: str, k: int) -> pd.Series:
    """Per group, the DCG@k of ``_gain`` with rows ordered by ``order_column`` (descending; ties by item_id)."""
    ordered = data.sort_values([group_column, order_column, "item_id"], ascending=[True, False, True], kind="mergesort")
    rank = ordered.groupby(group_column).cumcount() + 1
    contribution = np.where(rank <= k, ordered["_gain"] / np.log2(rank + 1), 0.0)
    return pd.Series(contribution, index=ordered.index).groupby(ordered[group_column]).sum()


def ndcg_at_k(
    frame: pd.DataFrame, score_column: str, k: int, group_column: str = "request_id", label_column: str = "relevance"
) -> float:
    """Mean NDCG@k over groups that have at least one relevant item (:func:`ndcg_per_group`)."""
    per_group = ndcg_per_group(frame, score_column, k, group_column, label_column)
    if per_group.empty:
        raise ValueError("no group has a relevant item; NDCG is undefined")
    return float(per_group.mean())


def revenue_ndcg_per_group(
    frame: pd.DataFrame, score_column: str, k: int, group_column: str = "request_id", price_column: str = "item_price"
) -> pd.Series:
    """Revenue NDCG@k (gain = price x purchase, linear) of each group with a purchase; empty when none has."""
    data = frame[[group_column, score_column, "item_id"]].assign(
        _gain=pd.to_numeric(frame[price_column], errors="coerce").fillna(0.0) * frame["label_purchase"]
    )
    data = data[data.groupby(group_column)["_gain"].transform("max") > 0]
    if data.empty:
        return pd.Series(dtype=float)
    return _discounted_gain(data, group_column, score_column, k) / _discounted_gain(data, group_column, "_gain", k)


def revenue_ndcg_at_k(
    frame: pd.DataFrame, score_column: str, k: int, group_column: str = "request_id", price_column: str = "item_price"
) -> float:
    """NDCG@k with gain = price x purchase (linear): how much realized GMV the order puts on top, over requests
    with a purchase. The GMV objective's headline metric."""
    per_group = revenue_ndcg_per_group(frame, score_column, k, group_column, price_column)
    if per_group.empty:
        raise ValueError("no group has a purchase; revenue NDCG is undefined")
    return float(per_group.mean())


def map_per_group(
    frame: pd.DataFrame, score_column: str, k: int, group_column: str = "request_id", label_column: str = "relevance"
) -> pd.Series:
    """Average precision@k of each group with a relevant item (relevant: label > 0; ties broken by item_id)."""
    data = frame[[group_column, label_column, score_column, "item_id"]]
    data = data[data.groupby(group_column)[label_column].transform("max") > 0]
    if data.empty:
        return pd.Series(dtype=float)
    ordered = data.sort_values([group_column, score_column, "item_id"], ascending=[True, False, True], kind="mergesort")
    relevant = (ordered[label_column].to_numpy() > 0).astype(float)
    rank = ordered.groupby(group_column).cumcount().to_numpy() + 1
    hits = pd.Series(relevant, index=ordered.index).groupby(ordered[group_column]).cumsum().to_numpy()
    precision_at_hit = np.where((rank <= k) & (relevant > 0), hits / rank, 0.0)
    per_group = pd.DataFrame({"g": ordered[group_column].to_numpy(), "p": precision_at_hit, "r": relevant})
    sums = per_group.groupby("g").agg(p=("p", "sum"), r=("r", "sum"))
    return sums["p"] / np.minimum(sums["r"], k)


def map_at_k(
    frame: pd.DataFrame, score_column: str, k: int, group_column: str = "request_id", label_column: str = "relevance"
) -> float:
    """Mean average precision@k over groups with a relevant item (:func:`map_per_group`)."""
    per_group = map_per_group(frame, score_column, k, group_column, label_column)
    if per_group.empty:
        raise ValueError("no group has a relevant item; MAP is undefined")
    return float(per_group.mean())


def auc(labels: np.ndarray | pd.Series, scores: np.ndarray | pd.Series) -> float:
    """ROC AUC; NaN (undefined) when only one class is present or no row has a score.

    A missing score (e.g. popularity of an item with no snapshot) ranks below every scored row, as NDCG orders it.
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels, dtype=float)
    s = np.asarray(scores, dtype=float)
    if len(np.unique(y)) < 2 or not np.isfinite(s).any():
        return float("nan")
    finite = s[np.isfinite(s)]
    s = np.nan_to_num(s, nan=finite.min() - 1.0, neginf=finite.min() - 1.0, posinf=finite.max() + 1.0)
    return float(roc_auc_score(y, s))


def calibration_table(
    labels: np.ndarray | pd.Series, probabilities: np.ndarray | pd.Series, bins: int = 10
) -> pd.DataFrame:
    """Predicted vs observed rate per quantile bin of the predicted probability (the calibration curve)."""
    frame = pd.DataFrame({"y": np.asarray(labels, dtype=float), "p": np.asarray(probabilities, dtype=float)})
    frame["bin"] = pd.qcut(frame["p"].rank(method="first"), q=min(bins, len(frame)), labels=False)
    return (
        frame.groupby("bin")
        .agg(predicted=("p", "mean"), observed=("y", "mean"), rows=("y", "size"))
        .reset_index(drop=True)
    )


def expected_calibration_error(table: pd.DataFrame) -> float:
    """Row-weighted mean |predicted - observed| over the calibration table's bins."""
    weights = table["rows"] / table["rows"].sum()
    return float((weights * (table["predicted"] - table["observed"]).abs()).sum())


# ---- the holdout report card ---------------------------------------------------------------------------------
NDCG_CUTOFFS = (5, 10, 20)


def slice_masks(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """Rows of the requests in each slice: a cold-start user's requests; requests showing a new item / seller.

    A slice is a set of whole requests, so NDCG stays a per-request metric inside it.
    """
    flags = {
        "cold_start_user": "user_is_cold_start",
        "new_item": "item_is_new",
        "new_seller": "seller_is_new",
    }
    masks = {}
    for name, column in flags.items():
        if column in frame.columns:
            flagged = pd.to_numeric(frame[column], errors="coerce").fillna(0) > 0
            masks[name] = flagged.groupby(frame["request_id"]).transform("max").astype(bool)
    return masks


def _safe(metric, *args, **kwargs) -> float:
    try:
        return float(metric(*args, **kwargs))
    except ValueError:  # a slice without any relevant item
        return float("nan")


def evaluate_holdout(scored: pd.DataFrame, score_columns: dict[str, str], k: int) -> dict[str, float]:
    """Every holdout metric of every named score column, flat (JSON-able, one level): NDCG@5/10/20, MAP@k,
    click and purchase AUC, then NDCG@k per slice with the slice's request count."""
    metrics: dict[str, float] = {}
    for name, column in score_columns.items():
        for cutoff in sorted({*NDCG_CUTOFFS, k}):
            metrics[f"{name}_ndcg@{cutoff}"] = _safe(ndcg_at_k, scored, column, cutoff)
        metrics[f"{name}_map@{k}"] = _safe(map_at_k, scored, column, k)
        if "label_click" in scored.columns:
            metrics[f"{name}_auc_click"] = auc(scored["label_click"], scored[column])
        if "label_purchase" in scored.columns:
            metrics[f"{name}_auc_purchase"] = auc(scored["label_purchase"], scored[column])
            if "item_price" in scored.columns:
                metrics[f"{name}_revenue_ndcg@{k}"] = _safe(revenue_ndcg_at_k, scored, column, k)
    for slice_name, mask in slice_masks(scored).items():
        part = scored[mask]
        metrics[f"slice_{slice_name}_requests"] = float(part["request_id"].nunique())
        for name, column in score_columns.items():
            metrics[f"slice_{slice_name}_{name}_ndcg@{k}"] = (
                _safe(ndcg_at_k, part, column, k) if len(part) else float("nan")
            )
    return metrics
