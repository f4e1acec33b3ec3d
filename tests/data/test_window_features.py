"""The window marts are point-in-time (a row for day D sees only days before D); item rates are smoothed toward
the category prior."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from shoprank.mart_files import read_mart
from shoprank.settings import Settings


def test_windows_count_exactly_the_days_before_the_feature_day(warehouse: dict) -> None:
    settings: Settings = warehouse["settings"]
    mart = read_mart(settings.marts_build_dir, "item_window_features")
    events = pd.read_parquet(settings.raw_dir / "events", columns=["event_type", "item_id", "event_ts"])
    imp = events[events["event_type"] == "impression"].assign(day=lambda f: f["event_ts"].dt.date)
    daily = imp.groupby(["item_id", "day"]).size()
    mart["day"] = pd.to_datetime(mart["dt"]).dt.date
    for window, column in ((1, "item_impressions_1d"), (7, "item_impressions_7d"), (30, "item_impressions_30d")):
        expected = np.zeros(len(mart), dtype=np.int64)
        for lag in range(1, window + 1):  # days D-1 .. D-window, never D itself
            keys = pd.MultiIndex.from_arrays([mart["item_id"], mart["day"] - timedelta(days=lag)])
            expected += daily.reindex(keys).fillna(0).to_numpy(dtype=np.int64)
        assert (mart[column].to_numpy() == expected).all(), column


def test_items_without_data_sit_at_their_category_prior(warehouse: dict) -> None:
    settings: Settings = warehouse["settings"]
    mart = read_mart(settings.marts_build_dir, "item_window_features")
    category = pd.read_parquet(settings.raw_dir / "items").set_index("item_id")["category_id"]
    mart["item_category_id"] = category.reindex(mart["item_id"]).to_numpy()
    unseen = mart[mart["item_impressions_7d"] == 0]
    assert len(unseen) > 0
    # Every unseen item of one category and day gets the same rate (the prior), and categories differ.
    per_group = unseen.groupby(["dt", "item_category_id"])["item_ctr_7d_cat"].nunique()
    assert (per_group == 1).all()
    # An item with data lies between its own raw rate and its category's prior (shrinkage, not extrapolation).
    prior = unseen.groupby(["dt", "item_category_id"])["item_ctr_7d_cat"].first().rename("prior").reset_index()
    seen = mart[mart["item_impressions_7d"] > 0].merge(prior, on=["dt", "item_category_id"])
    assert len(seen) > 0
    raw = seen["item_clicks_7d"] / seen["item_impressions_7d"]
    low, high = np.minimum(raw, seen["prior"]), np.maximum(raw, seen["prior"])
    assert seen["item_ctr_7d_cat"].between(low - 1e-12, high + 1e-12).all()
    assert mart["item_ctr_7d_cat"].between(0, 1).all() and mart["item_days_of_cover"].dropna().between(0, 365).all()


def test_user_short_term_features_see_only_yesterday(warehouse: dict) -> None:
    settings: Settings = warehouse["settings"]
    mart = read_mart(settings.marts_build_dir, "user_window_features")
    events = pd.read_parquet(settings.raw_dir / "events", columns=["event_type", "user_id", "event_ts"])
    clicks = events[events["event_type"] == "click"].assign(day=lambda f: f["event_ts"].dt.date)
    daily = clicks.groupby(["user_id", "day"]).size()
    yesterday = pd.to_datetime(mart["dt"]).dt.date - timedelta(days=1)
    expected = daily.reindex(pd.MultiIndex.from_arrays([mart["user_id"], yesterday])).fillna(0).to_numpy()
    assert (mart["user_clicks_1d"].to_numpy() == expected).all()
    active = events.assign(day=events["event_ts"].dt.date).groupby("user_id")["day"].unique()
    for row in mart.dropna(subset=["user_days_since_active"]).sample(50, random_state=0).itertuples():
        before = [d for d in active[row.user_id] if d < pd.Timestamp(row.dt).date()]
        assert (pd.Timestamp(row.dt).date() - max(before)).days == row.user_days_since_active


def test_query_item_match_counts_title_words(warehouse: dict) -> None:
    settings: Settings = warehouse["settings"]
    match = read_mart(settings.marts_build_dir, "query_item_match")
    events = pd.read_parquet(settings.raw_dir / "events", columns=["event_type", "surface"])
    assert len(match) == ((events["event_type"] == "impression") & (events["surface"] == "search")).sum()
    words = match["query"].str.lower().str.split().map(set)
    title = match["item_title"].str.lower().str.split().map(set)
    expected = [len(q & t) / len(q) for q, t in zip(words, title, strict=True)]
    np.testing.assert_allclose(match["query_title_match"], expected)
    assert match["query_title_match"].gt(0).mean() > 0.15  # search slates favour titles with the query's words
