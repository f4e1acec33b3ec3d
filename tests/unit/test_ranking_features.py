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


def test_absent_user_category_pairs_are_zero_for_known_users_and_nan_for_unknown_ones():
    from shoprank.ranking_features import fill_absent_user_category

    frame = pd.DataFrame(
        {
            "user_impressions_30d": [5.0, 5.0, None],  # the third user has no user_features row
            "uc_clicks_30d": [2.0, None, None],
            "uc_ctr_30d": [0.3, None, None],
            "uc_click_share_30d": [0.5, None, None],
        }
    )
    pairs = frame.assign(item_category_id=1, item_price=1.0, user_avg_click_price_30d=1.0)
    filled = add_derived_features(pairs.assign(**dict.fromkeys(category_share_columns(3), 0.0)), 3)
    assert filled["uc_clicks_30d"].tolist()[:2] == [2.0, 0.0] and np.isnan(filled["uc_clicks_30d"].iloc[2])
    assert filled["uc_click_share_30d"].tolist()[:2] == [0.5, 0.0]
    assert filled["uc_ctr_30d"].iloc[0] == 0.3 and filled["uc_ctr_30d"].iloc[1:].isna().all()  # no evidence: NaN
    assert fill_absent_user_category(frame.copy())["uc_clicks_30d"].tolist()[:2] == [2.0, 0.0]


def test_query_title_match_is_the_share_of_query_words_in_the_title():
    from shoprank.ranking_features import query_title_match, title_words

    titles = [title_words(t) for t in ("Pro Kite", "kite review video", "eco rug", None)]
    assert query_title_match("pro kite", titles).tolist() == [1.0, 0.5, 0.0, 0.0]
    assert query_title_match("kite kite", titles).tolist() == [1.0, 1.0, 0.0, 0.0]  # distinct query words
    assert np.isnan(query_title_match(None, titles)).all()  # a feed request has no query


def test_v3_columns_extend_v1_with_the_window_marts_and_no_duplicates():
    from shoprank.ranking_features import (
        ITEM_WINDOW_FEATURES,
        QUERY_FEATURES,
        USER_CATEGORY_FEATURES,
        USER_WINDOW_FEATURES,
        feature_columns_for,
        model_feature_columns,
    )

    columns = feature_columns_for("ranker_v3", 12)
    assert columns[: len(model_feature_columns())] == model_feature_columns()
    assert set(ITEM_WINDOW_FEATURES + USER_WINDOW_FEATURES + USER_CATEGORY_FEATURES + QUERY_FEATURES) <= set(columns)
    assert len(columns) == len(set(columns))
    with pytest.raises(KeyError, match="ranker_v9"):
        feature_columns_for("ranker_v9", 12)


def test_model_matrix_coerces_only_what_is_not_numeric_and_equals_a_full_coercion():
    """Object columns (numbers as strings, junk, None) are coerced, numeric ones (nullable ints with NA, bools,
    floats with NaN) pass as they are; the matrix equals coercing every column, in the columns' order."""
    frame = pd.DataFrame(
        {
            "a": [1.5, np.nan, 3.0],
            "b": pd.array([1, None, 3], dtype="Int64"),
            "c": ["2.5", "junk", None],
            "d": [True, False, True],
            "unused": ["x", "y", "z"],
        }
    )
    columns = ["d", "c", "a", "b"]
    expected = frame[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float32)
    matrix = model_matrix(frame, columns)
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, expected)
    np.testing.assert_array_equal(matrix[:, 1], np.array([2.5, np.nan, np.nan], dtype=np.float32))
