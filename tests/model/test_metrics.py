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


def test_auc_ranks_missing_scores_last_and_is_undefined_with_one_class_or_no_score():
    from training.evaluate import auc

    labels = np.array([1, 0, 1, 0])
    # A popularity baseline with an item that has no snapshot: NaN ranks below every scored row, as in NDCG.
    assert auc(labels, np.array([0.9, np.nan, 0.8, 0.1])) == pytest.approx(1.0)
    assert auc(labels, np.array([np.nan, 0.9, 0.8, 0.1])) == pytest.approx(0.25)
    assert auc(labels, np.array([0.9, np.inf, 0.8, -np.inf])) == pytest.approx(0.5)
    assert np.isnan(auc(np.array([1, 1]), np.array([0.2, 0.1])))  # one class: nothing to separate
    assert np.isnan(auc(labels, np.full(4, np.nan)))  # no row scored


def test_degenerate_holdouts_give_undefined_metrics_never_a_crash():
    import json

    from training.train import json_safe

    def slate(request_ids: list[str], clicks: list[int]) -> pd.DataFrame:
        return pd.DataFrame(
            {"request_id": request_ids, "item_id": [f"i{n}" for n in range(len(clicks))], "label_click": clicks}
        ).assign(relevance=lambda f: f["label_click"], label_purchase=0, item_price=10.0)

    holdouts = {  # a baseline with missing scores (items without a snapshot) on each
        "single request, one click": slate(["r1"] * 3, [1, 0, 0]),
        "every impression a click": slate(["r1"] * 3, [1, 1, 1]),
        "no click": slate(["r1", "r1", "r2"], [0, 0, 0]),
    }
    for name, holdout in holdouts.items():
        scored = holdout.assign(model=[0.3, 0.2, 0.1], baseline=[np.nan, 5.0, np.nan])
        metrics = json_safe(evaluate_holdout(scored, {"model": "model", "popularity": "baseline"}, k=10))
        json.dumps(metrics, allow_nan=False)  # strict JSON, as BentoML metadata needs
        assert metrics["model_auc_purchase"] is None and metrics["model_revenue_ndcg@10"] is None, name
        if name == "single request, one click":
            assert metrics["model_auc_click"] == pytest.approx(1.0)
            assert metrics["popularity_auc_click"] == pytest.approx(0.25)  # the unscored clicked item ranks last
            assert metrics["popularity_ndcg@10"] == pytest.approx(1 / np.log2(3))  # NDCG ranks it last too
        elif name == "every impression a click":
            assert metrics["model_auc_click"] is None and metrics["model_ndcg@10"] == pytest.approx(1.0)
        else:
            assert metrics["model_auc_click"] is None and metrics["model_ndcg@10"] is None


def test_early_stopping_never_picks_fewer_trees_than_the_floor():
    """A validation day whose labels contradict the training days: NDCG peaks at the first tree."""
    from shoprank.settings import TrainingSettings
    from training.models import fit_classifier, fit_ranker

    rng = np.random.default_rng(0)
    rows = 40 * 8
    frame = pd.DataFrame({"f0": rng.normal(size=rows), "f1": rng.normal(size=rows)})
    frame["request_id"] = [f"r{n // 8:03d}" for n in range(rows)]
    frame["relevance"] = (frame["f0"] > 0.5).astype(int)
    frame["label_click"] = frame["relevance"]
    fit, validation = frame.iloc[: rows // 2].copy(), frame.iloc[rows // 2 :].copy()
    validation["relevance"] = (validation["f0"] < -0.5).astype(int)
    validation["label_click"] = validation["relevance"]
    cfg = TrainingSettings(n_estimators=60, classifier_n_estimators=60, early_stopping_rounds=5, min_trees=15)
    ranker, params = fit_ranker(cfg, fit, validation, ["f0", "f1"])
    assert params["n_estimators"] == 15 and ranker.get_booster().num_boosted_rounds() == 15
    _, classifier_params = fit_classifier(cfg, fit, validation, ["f0", "f1"], "label_click")
    assert classifier_params["n_estimators"] == 15
    # The floor never exceeds the most trees allowed.
    capped = TrainingSettings(n_estimators=10, early_stopping_rounds=5, min_trees=15)
    assert fit_ranker(capped, fit, validation, ["f0", "f1"])[1]["n_estimators"] == 10
