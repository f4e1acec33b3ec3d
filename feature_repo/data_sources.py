"""Offline sources: the parquet files dbt writes for its feature marts (materialized='external').

Rows are daily snapshots: a row stamped ``feature_ts`` = day D 00:00 UTC holds features computed only from data
before D, so Feast's point-in-time join never leaks the future into a training example.
"""

from feast import FileSource

from shoprank.settings import get_settings

_MARTS = get_settings().marts_export_dir

user_features_source = FileSource(
    name="user_features_source",
    path=str(_MARTS / "user_features.parquet"),
    timestamp_field="feature_ts",
    description="dbt mart user_features: one row per user and day.",
)

item_features_source = FileSource(
    name="item_features_source",
    path=str(_MARTS / "item_features.parquet"),
    timestamp_field="feature_ts",
    description="dbt mart item_features: one row per item and day.",
)

seller_features_source = FileSource(
    name="seller_features_source",
    path=str(_MARTS / "seller_features.parquet"),
    timestamp_field="feature_ts",
    description="dbt mart seller_features: one row per seller and day.",
)

item_window_features_source = FileSource(
    name="item_window_features_source",
    path=str(_MARTS / "item_window_features.parquet"),
    timestamp_field="feature_ts",
    description="dbt mart item_window_features: 1/7/30-day item windows, one row per item and day.",
)

user_window_features_source = FileSource(
    name="user_window_features_source",
    path=str(_MARTS / "user_window_features.parquet"),
    timestamp_field="feature_ts",
    description="dbt mart user_window_features: short-term user activity, one row per user and day.",
)

user_category_features_source = FileSource(
    name="user_category_features_source",
    path=str(_MARTS / "user_category_features.parquet"),
    timestamp_field="feature_ts",
    description="dbt mart user_category_features: one row per user, category and day with impressions in the "
    "30-day window (no row: no impressions).",
)
