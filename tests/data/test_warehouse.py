"""dbt builds the marts from raw partitions: contract columns, point-in-time features, labels, idempotency."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shoprank.mart_files import mart_files, read_mart
from shoprank.ranking_features import ITEM_FEATURES, stored_user_features
from shoprank.raw_contract import partition_path
from shoprank.settings import Settings
from warehouse.build import EXPORTED_MARTS, MARTS, WarehouseBuildError, build_warehouse

from .conftest import RUN_DATE


def _mart(settings: Settings, name: str) -> pd.DataFrame:
    return read_mart(settings.marts_build_dir, name)


def _rows(settings: Settings, name: str) -> int:
    return sum(pq.read_metadata(path).num_rows for path in mart_files(settings.marts_build_dir, name))


def _raw(settings: Settings, table: str) -> pd.DataFrame:
    return pd.read_parquet(settings.raw_dir / table)


def test_build_ran_models_and_tests(warehouse: dict) -> None:
    build = warehouse["build"]
    assert build["resource_types"]["model"] >= 13
    assert build["resource_types"]["test"] > 50
    assert build["resource_types"]["unit_test"] >= 1
    assert set(build["statuses"]) <= {"success", "pass"}


def test_dbt_log_keeps_each_nodes_result_without_its_sql(warehouse: dict) -> None:
    """settings.dbt_log_level_file "info" (the default): dbt.log says what ran and how it ended, not every statement
    (debug lines cost a quarter of the default world's next-day build's CPU samples)."""
    settings: Settings = warehouse["settings"]
    assert settings.runtime_env()["DBT_LOG_LEVEL_FILE"] == "info"
    log = (settings.home_dir / "dbt" / "logs" / "dbt.log").read_text()
    assert "OK created sql incremental model main.stg_events" in log
    assert " PASS " in log and "Completed successfully" in log
    assert "[debug]" not in log


def test_the_build_writes_its_run_results_not_the_manifest(warehouse: dict) -> None:
    """run_results.json holds every node of the build; manifest.json (serial work before the first node, read by
    nothing after a build) is left to `dbt parse` / `dbt docs generate`."""
    settings: Settings = warehouse["settings"]
    results = json.loads((settings.dbt_artifacts_dir / "run_results.json").read_text())["results"]
    assert len(results) == sum(warehouse["build"]["resource_types"].values())  # the hooks too
    assert {r["unique_id"] for r in results} >= {"model.shoprank.stg_events", "model.shoprank.training_examples"}
    assert all(r["status"] in ("success", "pass") and r["execution_time"] >= 0 for r in results)
    assert not (settings.dbt_artifacts_dir / "manifest.json").exists()


def test_marts_have_the_contract_columns(warehouse: dict) -> None:
    settings: Settings = warehouse["settings"]
    n_cat = settings.simulator.categories
    expected = {
        "user_features": ["user_id", "feature_ts", *stored_user_features(n_cat), "dt"],
        "item_features": ["item_id", "feature_ts", *ITEM_FEATURES[:2], "item_seller_id", *ITEM_FEATURES[2:], "dt"],
        "training_examples": [
            "impression_id", "request_id", "user_id", "item_id", "event_ts", "position", "surface",
            "label_click", "label_cart", "label_purchase", "relevance", "dt",
        ],
    }  # fmt: skip
    for name in MARTS:
        schema = pq.read_schema(mart_files(settings.marts_build_dir, name)[0])
        assert schema.names == expected[name], name
        assert _rows(settings, name) > 0
        if "feature_ts" in schema.names:
            assert schema.field("feature_ts").type == pa.timestamp("us", tz="UTC")
    users = pq.read_schema(mart_files(settings.marts_build_dir, "user_features")[0])
    for column in ("user_impressions_30d", "user_clicks_30d", "user_purchases_30d", "user_is_cold_start"):
        assert users.field(column).type == pa.int64(), column
    for column in ("user_ctr_30d", "user_avg_click_price_30d", "user_cat_share_00"):
        assert users.field(column).type == pa.float64(), column
    items = pq.read_schema(settings.marts_build_dir / "item_features.parquet")
    for column in ("item_type_code", "item_category_id", "item_impressions_7d", "item_is_new"):
        assert items.field(column).type == pa.int64(), column
    for column in ("item_price", "item_stock_units", "item_age_days", "item_ctr_7d", "item_cvr_7d"):
        assert items.field(column).type == pa.float64(), column


def test_feature_days_span_the_window_and_the_serving_snapshot(warehouse: dict) -> None:
    settings: Settings = warehouse["settings"]
    first_day = RUN_DATE - timedelta(days=settings.simulator.days - 1)
    expected = [first_day + timedelta(days=k) for k in range(settings.simulator.days + 1)]
    for name in ("user_features", "item_features"):
        frame = _mart(settings, name)
        assert sorted(frame["dt"].unique()) == expected, name
        assert (frame["feature_ts"] == pd.to_datetime(frame["dt"]).dt.tz_localize("UTC")).all()
    # Every user signed up before the serving snapshot has a row in it.
    users = _raw(settings, "users")
    snapshot = pd.Timestamp(RUN_DATE + timedelta(days=1), tz="UTC")
    served = _mart(settings, "user_features").query("feature_ts == @snapshot")
    assert set(served["user_id"]) == set(users.loc[users["signup_ts"] < snapshot, "user_id"])


def test_user_features_are_point_in_time(warehouse: dict) -> None:
    settings: Settings = warehouse["settings"]
    events = _raw(settings, "events")
    items = _raw(settings, "items").set_index("item_id")
    mart = _mart(settings, "user_features")
    day = RUN_DATE  # features for D: events in [D-30, D) only
    feature_ts = pd.Timestamp(day, tz="UTC")
    past = events[(events["event_ts"] < feature_ts) & (events["event_ts"] >= feature_ts - pd.Timedelta(days=30))]
    expected = pd.DataFrame(
        {
            "impressions": past[past["event_type"] == "impression"].groupby("user_id").size(),
            "clicks": past[past["event_type"] == "click"].groupby("user_id").size(),
        }
    ).fillna(0)
    clicks = past[past["event_type"] == "click"]
    share = (
        clicks.assign(cat=items["category_id"].reindex(clicks["item_id"]).to_numpy())
        .groupby("user_id")["cat"]
        .apply(lambda c: (c == 0).mean())
    )
    rows = mart[mart["feature_ts"] == feature_ts].set_index("user_id")
    got = rows.reindex(expected.index)
    assert (got["user_impressions_30d"] == expected["impressions"]).all()
    assert (got["user_clicks_30d"] == expected["clicks"]).all()
    pd.testing.assert_series_equal(
        got.loc[share.index, "user_cat_share_00"], share, check_names=False, check_index_type=False
    )
    ctr = (rows["user_clicks_30d"] + 1) / (rows["user_impressions_30d"] + 20)
    pd.testing.assert_series_equal(rows["user_ctr_30d"], ctr, check_names=False)
    # Users without any past event count zero and are cold-start; the day's own events are not counted.
    quiet = rows.index.difference(expected.index)
    assert (rows.loc[quiet, "user_impressions_30d"] == 0).all()
    assert (rows.loc[quiet, "user_is_cold_start"] == 1).all()
    assert (rows.loc[expected.index, "user_is_cold_start"] == 0).all()
    today = events[(events["event_ts"] >= feature_ts) & (events["event_type"] == "impression")]
    active_today = today.groupby("user_id").size()
    assert len(active_today) > 0
    with_today = expected["impressions"].reindex(active_today.index, fill_value=0) + active_today
    assert (rows.loc[active_today.index, "user_impressions_30d"] < with_today).all()


def test_item_features_are_point_in_time(warehouse: dict) -> None:
    settings: Settings = warehouse["settings"]
    events = _raw(settings, "events")
    inventory = _raw(settings, "inventory")
    mart = _mart(settings, "item_features")
    feature_ts = pd.Timestamp(RUN_DATE, tz="UTC")
    past = events[(events["event_ts"] < feature_ts) & (events["event_ts"] >= feature_ts - pd.Timedelta(days=7))]
    rows = mart[mart["feature_ts"] == feature_ts].set_index("item_id")
    impressions = past[past["event_type"] == "impression"].groupby("item_id").size()
    clicks = past[past["event_type"] == "click"].groupby("item_id").size()
    counted = rows["item_impressions_7d"]
    assert (counted.reindex(impressions.index) == impressions).all()
    assert counted.drop(impressions.index, errors="ignore").eq(0).all()
    prior = clicks.sum() / impressions.sum()
    expected_ctr = (clicks.reindex(rows.index, fill_value=0) + 50 * prior) / (counted + 50)
    pd.testing.assert_series_equal(rows["item_ctr_7d"], expected_ctr, check_names=False)
    stock = inventory[inventory["snapshot_ts"] == feature_ts].set_index("item_id")["stock_units"]
    assert (rows["item_stock_units"].reindex(stock.index) == stock).all()


def test_training_examples_label_impressions(warehouse: dict) -> None:
    settings: Settings = warehouse["settings"]
    events = _raw(settings, "events")
    mart = _mart(settings, "training_examples")
    impressions = events[events["event_type"] == "impression"]
    assert len(mart) == len(impressions)
    assert set(mart["impression_id"]) == set(impressions["event_id"])
    for event_type, label in (("click", "label_click"), ("add_to_cart", "label_cart"), ("purchase", "label_purchase")):
        assert mart[label].sum() == (events["event_type"] == event_type).sum(), label
    assert (mart["label_purchase"] <= mart["label_cart"]).all()
    assert (mart["label_cart"] <= mart["label_click"]).all()
    relevance = mart[["label_click", "label_cart", "label_purchase"]].to_numpy() @ [1, 1, 1]
    assert (mart["relevance"] == relevance).all()


def test_rebuild_gives_identical_marts(warehouse: dict) -> None:
    settings: Settings = warehouse["settings"]

    def digest(name: str) -> str:
        digest = hashlib.sha256()
        for path in mart_files(settings.marts_build_dir, name):
            digest.update(path.name.encode() + path.read_bytes())
        return digest.hexdigest()

    before = {name: (digest(name), _mart(settings, name)) for name in EXPORTED_MARTS}
    build_warehouse(settings, RUN_DATE)  # an incremental run: rewrites the run's partitions in place
    for name in EXPORTED_MARTS:
        pd.testing.assert_frame_equal(_mart(settings, name), before[name][1])
        assert digest(name) == before[name][0], name


def test_warehouse_is_queryable(warehouse: dict) -> None:
    settings: Settings = warehouse["settings"]
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        n = con.execute("select count(*) from training_examples").fetchone()[0]
    assert n == _rows(settings, "training_examples")


def test_failing_dbt_test_raises(copied_home: Settings) -> None:
    bad_item = pd.DataFrame(
        {
            "item_id": ["i999999"],
            "item_type": ["product"],
            "seller_id": ["s0000"],
            "category_id": [0],
            "price": [-5.0],
            "title": ["broken"],
            "created_ts": [pd.Timestamp("2025-12-01", tz="UTC")],
        }
    )
    path = partition_path(copied_home.raw_dir, "items", RUN_DATE).with_name("part-1.parquet")
    bad_item.to_parquet(path)
    with pytest.raises(WarehouseBuildError) as error:
        build_warehouse(copied_home, RUN_DATE)
    failed = {node: message for node, _, message in error.value.failures}
    # stg_items' value checks are one test (tests/generic/expressions_are_true.sql); its failing row names the check
    [message] = [
        message for node, message in failed.items() if node.startswith("test.shoprank.expressions_are_true_stg_items_")
    ]
    assert message.endswith("first failing rows: expression=price >= 0.01, failing_rows=1"), failed
    assert "expression=price >= 0.01, failing_rows=1" in str(error.value)
