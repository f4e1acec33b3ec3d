"""MAP@k, calibration and slices against hand-computed values; the time splits never mix days."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from training.dataset import validation_split
from training.evaluate import calibration_table, evaluate_holdout, expected_calibration_error, map_at_k, slice_masks


def _slates() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": ["r1"] * 3 + ["r2"] * 3 + ["r3"] * 2,
            "item_id": ["a", "b", "c", "a", "b", "c", "a", "b"],
            "relevance": [0, 1, 1, 1, 0, 0, 0, 0],
            "score": [0.9, 0.8, 0.1, 0.2, 0.9, 0.5, 0.3, 0.2],
            "label_click": [0, 1, 1, 1, 0, 0, 0, 0],
            "label_purchase": [0, 0, 1, 0, 0, 0, 0, 0],
            "user_is_cold_start": [1, 1, 1, 0, 0, 0, 0, 0],
            "item_is_new": [0, 0, 0, 0, 0, 1, 0, 0],
        }
    )


def test_map_matches_hand_computation_and_skips_requests_without_relevant_items():
    # r1: hits at ranks 2 and 3 -> (1/2 + 2/3) / 2; r2: hit at rank 3 -> 1/3; r3 has no relevant item.
    expected = ((1 / 2 + 2 / 3) / 2 + 1 / 3) / 2
    assert map_at_k(_slates(), "score", k=10) == pytest.approx(expected)
    # With k=2, r1 counts only its rank-2 hit over min(2 relevant, k=2); r2 has none in its top 2.
    assert map_at_k(_slates(), "score", k=2) == pytest.approx(((1 / 2) / 2 + 0) / 2)


def test_calibration_of_a_perfectly_calibrated_predictor_is_near_zero_and_a_biased_one_is_not():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.3, 50_000)
    y = rng.random(50_000) < p
    assert expected_calibration_error(calibration_table(y, p)) < 0.01
    assert expected_calibration_error(calibration_table(y, p * 2)) > 0.1


def test_slices_are_whole_requests():
    masks = slice_masks(_slates())
    assert set(masks) == {"cold_start_user", "new_item"}  # no seller flag in this frame: no seller slice
    assert masks["cold_start_user"].tolist() == [True] * 3 + [False] * 5
    assert masks["new_item"].tolist() == [False] * 3 + [True] * 3 + [False] * 2
    metrics = evaluate_holdout(_slates(), {"model": "score"}, k=10)
    assert metrics["slice_new_item_requests"] == 1
    assert metrics["slice_new_item_model_ndcg@10"] == pytest.approx(1 / np.log2(4))
    assert metrics["model_auc_purchase"] == 0.0  # the one purchase has the lowest score of all eight rows


def test_validation_split_takes_the_last_training_day_and_keeps_requests_whole():
    days = [date(2026, 1, d) for d in (2, 3, 4)]
    frame = pd.DataFrame({"dt": np.repeat(days, 4), "request_id": np.repeat([f"r{n}" for n in range(6)], 2)})
    fit, validation = validation_split(frame, validation_days=1)
    assert set(validation["dt"]) == {days[-1]} and set(fit["dt"]) == set(days[:2])
    assert not set(fit["request_id"]) & set(validation["request_id"])
    fit, validation = validation_split(frame[frame["dt"] == days[0]], validation_days=1)
    assert validation.empty and len(fit) == 4


def test_revenue_ndcg_weights_purchases_by_price():
    from training.evaluate import revenue_ndcg_at_k

    frame = pd.DataFrame(
        {
            "request_id": ["r1"] * 3,
            "item_id": ["a", "b", "c"],
            "item_price": [10.0, 90.0, 50.0],
            "label_purchase": [1, 1, 0],
            "cheap_first": [0.9, 0.5, 0.1],
            "dear_first": [0.1, 0.9, 0.5],
        }
    )
    ideal = 90 + 10 / np.log2(3)
    assert revenue_ndcg_at_k(frame, "dear_first", k=10) == pytest.approx((90 + 10 / np.log2(4)) / ideal)
    assert revenue_ndcg_at_k(frame, "cheap_first", k=10) == pytest.approx((10 + 90 / np.log2(3)) / ideal)
