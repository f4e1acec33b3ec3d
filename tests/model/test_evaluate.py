"""NDCG@k against hand-computed values, and the day-based split the holdout depends on."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from training.dataset import time_split
from training.evaluate import ndcg_at_k


def _slate(request: str, relevance: list[int], score: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": request,
            "item_id": [f"i{n}" for n in range(len(relevance))],
            "relevance": relevance,
            "score": score,
        }
    )


def test_perfect_order_scores_one_and_reversed_order_matches_hand_computation():
    perfect = _slate("r1", [3, 1, 0], [0.9, 0.5, 0.1])
    assert ndcg_at_k(perfect, "score", k=10) == pytest.approx(1.0)

    reversed_order = _slate("r1", [3, 1, 0], [0.1, 0.5, 0.9])
    ideal = 7 / np.log2(2) + 1 / np.log2(3)
    actual = 0 / np.log2(2) + 1 / np.log2(3) + 7 / np.log2(4)
    assert ndcg_at_k(reversed_order, "score", k=10) == pytest.approx(actual / ideal)


def test_cutoff_ignores_items_below_k():
    frame = _slate("r1", [0, 0, 1], [0.9, 0.8, 0.1])
    assert ndcg_at_k(frame, "score", k=2) == 0.0
    assert ndcg_at_k(frame, "score", k=3) == pytest.approx(1 / np.log2(4))


def test_mean_over_requests_skips_requests_without_a_relevant_item():
    frame = pd.concat(
        [
            _slate("r1", [1, 0], [0.9, 0.1]),  # 1.0
            _slate("r2", [1, 0], [0.1, 0.9]),  # 1/log2(3)
            _slate("r3", [0, 0], [0.5, 0.4]),  # no positive: excluded
        ]
    )
    assert ndcg_at_k(frame, "score", k=10) == pytest.approx((1.0 + 1 / np.log2(3)) / 2)


def test_ties_break_by_item_id_so_the_figure_is_reproducible():
    frame = _slate("r1", [0, 1], [0.5, 0.5])  # i0 first on a tie
    assert ndcg_at_k(frame, "score", k=10) == pytest.approx(1 / np.log2(3))


def test_no_relevant_item_anywhere_is_an_error():
    with pytest.raises(ValueError, match="no group has a relevant item"):
        ndcg_at_k(_slate("r1", [0, 0], [0.1, 0.2]), "score", k=10)


def test_time_split_skips_burn_in_and_holds_out_the_last_days():
    days = [date(2026, 1, d) for d in range(1, 6)]
    frame = pd.DataFrame({"dt": np.repeat(days, 2), "request_id": [f"r{n}" for n in range(10)]})
    train, holdout = time_split(frame, holdout_days=1, burn_in_days=1)
    assert sorted(set(train["dt"])) == days[1:4]
    assert set(holdout["dt"]) == {days[4]}
    assert not set(train["request_id"]) & set(holdout["request_id"])
    with pytest.raises(ValueError, match="need more than"):
        time_split(frame, holdout_days=3, burn_in_days=2)
