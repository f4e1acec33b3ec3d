"""Unit tests of the pure ranking functions (no BentoML, no Feast)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from serving.ranking import (
    REASON_MODEL,
    build_feature_frame,
    dedupe,
    is_unknown_user,
    score,
    top_k,
)
from serving.retrieval import PopularityIndex
from shoprank.ranking_features import ITEM_FEATURES, model_feature_columns, stored_user_features

N_CAT = 4


class SumModel:
    """Scores a row by item_ctr_7d (column position from the contract), like a one-feature model."""

    def __init__(self, column: str = "item_ctr_7d") -> None:
        self.index = model_feature_columns().index(column)

    def predict(self, X: np.ndarray) -> np.ndarray:
        assert X.dtype == np.float32
        return np.nan_to_num(X[:, self.index], nan=-1.0)


def user(**overrides: float) -> dict[str, float]:
    values = {name: 1.0 for name in stored_user_features(N_CAT)}
    values.update({"user_is_cold_start": 0, "user_avg_click_price_30d": 10.0, "user_cat_share_02": 0.7})
    values.update(overrides)
    return values


def items(ids: list[str], ctr: list[float]) -> pd.DataFrame:
    frame = pd.DataFrame({name: 1.0 for name in ITEM_FEATURES}, index=pd.Index(ids, name="item_id"))
    frame["item_ctr_7d"] = ctr
    frame["item_category_id"] = 2
    frame["item_price"] = 20.0
    frame["item_seller_id"] = "s1"  # stored but not a model feature: ignored
    return frame


def test_top_k_orders_by_score_descending() -> None:
    ranked = top_k(["a", "b", "c", "d"], [0.1, 0.9, 0.5, 0.7], 3, REASON_MODEL)
    assert [r.item_id for r in ranked] == ["b", "d", "c"]
    assert [r.rank for r in ranked] == [1, 2, 3]
    assert all(r.reason == REASON_MODEL for r in ranked)


def test_top_k_larger_than_candidates_returns_all() -> None:
    ranked = top_k(["a", "b"], [0.2, 0.3], 10, REASON_MODEL)
    assert [r.item_id for r in ranked] == ["b", "a"]


def test_top_k_ties_broken_by_item_id_whatever_the_input_order() -> None:
    ids = ["i3", "i1", "i2", "i0"]
    first = top_k(ids, [1.0, 1.0, 2.0, 1.0], 4, REASON_MODEL)
    second = top_k(ids[::-1], [1.0, 2.0, 1.0, 1.0], 4, REASON_MODEL)
    assert [r.item_id for r in first] == ["i2", "i0", "i1", "i3"]
    assert [r.item_id for r in second] == [r.item_id for r in first]


def test_top_k_nan_scores_rank_last() -> None:
    ranked = top_k(["a", "b", "c"], [float("nan"), -5.0, 1.0], 3, REASON_MODEL)
    assert [r.item_id for r in ranked] == ["c", "b", "a"]
    assert math.isnan(ranked[-1].score)


def test_top_k_rejects_mismatched_lengths_and_handles_empty() -> None:
    with pytest.raises(ValueError):
        top_k(["a"], [1.0, 2.0], 1, REASON_MODEL)
    assert top_k([], [], 5, REASON_MODEL) == []


def test_dedupe_keeps_first_seen_order() -> None:
    assert dedupe(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]


def test_feature_frame_has_model_columns_in_candidate_order() -> None:
    frame = build_feature_frame(user(), items(["x", "y"], [0.1, 0.2]), ["y", "x"], N_CAT)
    assert list(frame["item_id"]) == ["y", "x"]
    assert set(model_feature_columns()) <= set(frame.columns)
    assert frame["user_category_affinity"].tolist() == [0.7, 0.7]
    assert frame["price_to_user_avg"].tolist() == [2.0, 2.0]
    assert (frame["user_is_cold_start"] == 0).all()


def test_unknown_item_gets_nan_features_not_an_error() -> None:
    frame = build_feature_frame(user(), items(["x"], [0.1]), ["x", "ghost"], N_CAT)
    ghost = frame.set_index("item_id").loc["ghost"]
    assert all(np.isnan(ghost[name]) for name in ITEM_FEATURES)
    assert ghost["user_category_affinity"] == 0.0
    scores = score(SumModel(), frame, model_feature_columns())
    assert scores.tolist() == pytest.approx([0.1, -1.0])


@pytest.mark.parametrize("features", [None, {}, {name: None for name in stored_user_features(N_CAT)}])
def test_unknown_user_is_cold_start(features: dict | None) -> None:
    assert is_unknown_user(features, N_CAT)
    frame = build_feature_frame(features, items(["x", "y"], [0.3, 0.2]), ["x", "y"], N_CAT)
    assert (frame["user_is_cold_start"] == 1).all()
    assert frame["user_clicks_30d"].isna().all()
    assert (frame["user_category_affinity"] == 0.0).all()
    assert frame["price_to_user_avg"].isna().all()
    ranked = top_k(["x", "y"], score(SumModel(), frame, model_feature_columns()), 2, REASON_MODEL)
    assert [r.item_id for r in ranked] == ["x", "y"]


def test_known_user_with_some_missing_values_is_not_cold() -> None:
    features = user(user_ctr_30d=None)
    assert not is_unknown_user(features, N_CAT)
    frame = build_feature_frame(features, items(["x"], [0.3]), ["x"], N_CAT)
    assert frame["user_is_cold_start"].tolist() == [0]
    assert frame["user_ctr_30d"].isna().all()


def test_score_of_no_candidates_is_empty() -> None:
    frame = build_feature_frame(user(), items([], []), [], N_CAT)
    assert score(SumModel(), frame, model_feature_columns()).shape == (0,)


def test_popularity_index_uses_latest_snapshot_and_breaks_ties_by_id() -> None:
    t0, t1 = pd.Timestamp("2026-01-01", tz="UTC"), pd.Timestamp("2026-01-02", tz="UTC")
    mart = pd.DataFrame(
        {
            "item_id": ["a", "a", "b", "c", "d"],
            "feature_ts": [t1, t0, t1, t1, t1],
            "item_clicks_7d": [1, 100, 5, 5, None],
        }
    )
    index = PopularityIndex.from_frame(mart)
    assert index.top(10) == ["b", "c", "a", "d"]
    assert index.top(2) == ["b", "c"]
    assert index.scores(["a", "zzz"]).tolist() == [1.0, 0.0]
    assert PopularityIndex.from_frame(mart.iloc[:0]).top(3) == []
