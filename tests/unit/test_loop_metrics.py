"""The closed loop's new-seller survival judges only sellers who had something to sell in their window."""

from __future__ import annotations

import numpy as np

from orchestration.loop_metrics import judged_new_sellers


def test_a_seller_without_a_listing_is_not_judged() -> None:
    # run days 10..40, window 7. Sellers: 0 old; 1 arrives on day 12 and lists on day 12; 2 arrives on day 14 and
    # never lists; 3 arrives on day 15 but lists on day 21 (first served on 22, after its window ends on 21);
    # 4 arrives on day 36, too late for a whole window; 5 arrives on day 20 and lists twice, first on day 25.
    seller_created_day = np.array([-3, 12, 14, 15, 36, 20])
    item_seller = np.array([0, 0, 1, 3, 4, 5, 5])
    item_created_day = np.array([-5, 2, 12, 21, 36, 27, 25])

    judged = judged_new_sellers(seller_created_day, item_seller, item_created_day, 10, 40, 7)

    assert judged.tolist() == [1, 5]


def test_every_arrival_with_an_early_listing_is_judged() -> None:
    seller_created_day = np.array([0, 11, 12])
    item_seller = np.array([0, 1, 2])
    item_created_day = np.array([0, 11, 13])

    assert judged_new_sellers(seller_created_day, item_seller, item_created_day, 10, 40, 7).tolist() == [1, 2]
