"""user_category_features.uc_taste_30d is shoprank/taste.py's estimator of the raw events strictly before the feature
day: the SQL and the Python agree, and nothing on or after the day (the user's own later events included) moves it."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from shoprank.mart_files import read_mart
from shoprank.settings import Settings
from shoprank.taste import category_taste, population_ctr, prior_shape

WINDOW_DAYS = 30  # dbt var user_window_days
FALLBACK_CTR = 0.05  # dbt var fallback_ctr_prior


def _pairs_before(events: pd.DataFrame, day) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """Impressions and clicks per (user, category) over [day - 30, day), pairs with impressions only."""
    window = events[(events["day"] < day) & (events["day"] >= day - timedelta(days=WINDOW_DAYS))]
    counts = window.pivot_table(
        index=["user_id", "category_id"], columns="event_type", values="item_id", aggfunc="size", fill_value=0
    ).reindex(columns=["impression", "click"], fill_value=0)
    return counts[counts["impression"] > 0].reset_index()


def _expected_taste(events: pd.DataFrame, day) -> pd.Series:  # type: ignore[no-untyped-def]
    pairs = _pairs_before(events, day)
    ctr = population_ctr(pairs["click"], pairs["impression"], FALLBACK_CTR)
    shape = prior_shape(pairs["click"], pairs["impression"], ctr)
    taste = category_taste(pairs["click"], pairs["impression"], ctr, shape)
    return pd.Series(taste, index=pd.MultiIndex.from_frame(pairs[["user_id", "category_id"]]))


def _events(settings: Settings) -> pd.DataFrame:
    events = pd.read_parquet(settings.raw_dir / "events", columns=["event_type", "user_id", "item_id", "event_ts"])
    items = pd.read_parquet(settings.raw_dir / "items", columns=["item_id", "category_id"]).drop_duplicates("item_id")
    return events.merge(items, on="item_id").assign(day=lambda f: f["event_ts"].dt.date)


def test_taste_is_the_python_estimator_of_the_events_before_the_day(warehouse: dict) -> None:
    settings: Settings = warehouse["settings"]
    mart = read_mart(settings.marts_build_dir, "user_category_features")
    mart["day"] = pd.to_datetime(mart["dt"]).dt.date
    events = _events(settings)
    checked = 0
    for day, rows in mart.groupby("day"):
        expected = _expected_taste(events, day)
        keys = pd.MultiIndex.from_frame(rows[["user_id", "category_id"]])
        assert set(keys) == set(expected.index)  # the mart's pairs are the pairs with impressions before the day
        assert np.allclose(rows["uc_taste_30d"].to_numpy(), expected.reindex(keys).to_numpy(), rtol=0, atol=1e-9)
        checked += len(rows)
    assert checked == len(mart) > 0
    # the estimate separates pairs: not one value per day
    assert mart.groupby("day")["uc_taste_30d"].nunique().min() > 10


def test_a_users_later_events_do_not_change_an_earlier_rows_taste(warehouse: dict) -> None:
    settings: Settings = warehouse["settings"]
    mart = read_mart(settings.marts_build_dir, "user_category_features")
    mart["day"] = pd.to_datetime(mart["dt"]).dt.date
    events = _events(settings)
    first_day = min(mart["day"])
    # a user with a row on the mart's first day and events on that day: recompute the row without everything the
    # user did on or after the day
    on_day = events[(events["day"] == first_day) & events["user_id"].isin(mart[mart["day"] == first_day]["user_id"])]
    user = on_day["user_id"].value_counts().index[0]
    later = (events["user_id"] == user) & (events["day"] >= first_day)
    rows = mart[(mart["day"] == first_day) & (mart["user_id"] == user)]
    without_later = _expected_taste(events[~later], first_day)
    keys = pd.MultiIndex.from_frame(rows[["user_id", "category_id"]])
    assert np.allclose(without_later.reindex(keys).to_numpy(), rows["uc_taste_30d"].to_numpy(), rtol=0, atol=1e-9)
    # ... while the next day's rows, which the user's events of that day belong to, do move with them
    next_rows = mart[(mart["day"] == first_day + timedelta(days=1)) & (mart["user_id"] == user)]
    moved = _expected_taste(events[~later], first_day + timedelta(days=1))
    next_keys = pd.MultiIndex.from_frame(next_rows[["user_id", "category_id"]])
    assert not np.allclose(moved.reindex(next_keys).to_numpy(), next_rows["uc_taste_30d"].to_numpy(), equal_nan=False)
