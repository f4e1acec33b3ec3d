"""The derived features training and serving share."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shoprank.ranking_features import add_derived_features, category_share_columns, model_matrix


def _pairs() -> pd.DataFrame:
    shares = {name: [0.0, 0.0, 0.0] for name in category_share_columns(3)}
    shares["user_cat_share_01"] = [0.75, 0.75, 0.0]
    shares["user_cat_share_02"] = [0.25, 0.25, 0.0]
    return pd.DataFrame(
        {
            **shares,
            "item_category_id": [1, 2, None],
            "item_price": [20.0, 5.0, 8.0],
            "user_avg_click_price_30d": [10.0, 10.0, None],
        }
    )


def test_category_affinity_is_the_users_share_of_the_items_category():
    derived = add_derived_features(_pairs(), n_categories=3)
    assert derived["user_category_affinity"].tolist() == [0.75, 0.25, 0.0]


def test_price_ratio_is_nan_without_a_user_price_history():
    derived = add_derived_features(_pairs(), n_categories=3)
    assert derived["price_to_user_avg"].iloc[:2].tolist() == [2.0, 0.5]
    assert np.isnan(derived["price_to_user_avg"].iloc[2])


def test_model_matrix_keeps_column_order_and_names_missing_columns():
    derived = add_derived_features(_pairs(), n_categories=3)
    matrix = model_matrix(derived, ["item_price", "user_category_affinity"])
    assert matrix.dtype == np.float32
    assert matrix[:, 0].tolist() == [20.0, 5.0, 8.0]
    with pytest.raises(KeyError, match="item_age_days"):
        model_matrix(derived, ["item_age_days"])
