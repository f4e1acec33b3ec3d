"""The simulator writes the raw data contract, deterministically, with learnable signal."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from shoprank.settings import Settings, SimulatorSettings
from shoprank.simulator import SCHEMAS, TABLES, oracle_scores, partition_path, simulate

RUN_DATE = date(2026, 1, 7)
TINY = {"users": 300, "items": 120, "sellers": 10, "categories": 5, "requests_per_day": 400, "slate_size": 10}


def _settings(home: Path, **overrides: int) -> Settings:
    return Settings(home=home, simulator=SimulatorSettings(**{**TINY, "days": 3, **overrides}))


def _read(settings: Settings, table: str) -> pd.DataFrame:
    return pd.read_parquet(settings.raw_dir / table)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict]:
    settings = _settings(tmp_path_factory.mktemp("sim"))
    return settings, simulate(settings, RUN_DATE)


def test_layout_and_summary(world: tuple[Settings, dict]) -> None:
    settings, summary = world
    days = [RUN_DATE - timedelta(days=k) for k in (2, 1, 0)]
    assert summary["days"] == [d.isoformat() for d in days]
    for table in TABLES:
        for day in days:
            assert partition_path(settings.raw_dir, table, day).exists(), (table, day)
    assert summary["rows"]["events"] == len(_read(settings, "events"))
    assert 0.03 <= summary["ctr"] <= 0.12


@pytest.mark.parametrize("table", TABLES)
def test_schema_matches_the_contract(world: tuple[Settings, dict], table: str) -> None:
    settings, _ = world
    for path in sorted((settings.raw_dir / table).glob("dt=*/part-0.parquet")):
        schema = pq.read_schema(path).remove_metadata()
        assert schema.equals(SCHEMAS[table]), (path, schema)


def test_ids_and_values(world: tuple[Settings, dict]) -> None:
    settings, _ = world
    events = _read(settings, "events")
    items = _read(settings, "items")
    users = _read(settings, "users")
    assert events["event_id"].is_unique
    assert items["item_id"].is_unique and users["user_id"].is_unique
    assert events["user_id"].str.fullmatch(r"u\d{6}").all()
    assert events["item_id"].str.fullmatch(r"i\d{6}").all()
    assert items["seller_id"].str.fullmatch(r"s\d{4}").all()
    assert set(events["event_type"]) == {"impression", "click", "add_to_cart", "purchase"}
    assert set(events["surface"]) == {"feed", "search"}
    imp = events["event_type"] == "impression"
    assert events.loc[imp, "position"].notna().all() and events.loc[~imp, "position"].isna().all()
    assert events.loc[imp, "position"].min() == 1
    buy = events["event_type"] == "purchase"
    assert (events.loc[buy, "quantity"] >= 1).all() and events.loc[~buy, "quantity"].isna().all()
    assert events.loc[events["surface"] == "search", "query"].notna().all()
    assert events.loc[events["surface"] == "feed", "query"].isna().all()
    assert (items["price"] > 0).all()
    assert items["category_id"].between(0, settings.simulator.categories - 1).all()
    assert set(events["item_id"]) <= set(items["item_id"])
    assert set(events["user_id"]) <= set(users["user_id"])
    # Events stay inside their partition's day; entities exist before they show up.
    day = pd.to_datetime(events["event_ts"]).dt.tz_convert("UTC").dt.date
    assert (day.astype(str) == events["dt"].astype(str)).all()
    first_seen = events.groupby("user_id")["event_ts"].min()
    signup = users.set_index("user_id")["signup_ts"].reindex(first_seen.index)
    assert (signup < first_seen).all()


def test_new_entities_arrive_on_later_days(world: tuple[Settings, dict]) -> None:
    settings, _ = world
    users = _read(settings, "users")
    items = _read(settings, "items")
    first = (RUN_DATE - timedelta(days=2)).isoformat()
    for frame, ts in ((users, "signup_ts"), (items, "created_ts")):
        later = frame[frame["dt"].astype(str) != first]
        assert len(later) > 0
        assert (later[ts].dt.date.astype(str) == later["dt"].astype(str)).all()
        initial = frame[frame["dt"].astype(str) == first]
        assert (initial[ts] < pd.Timestamp(first, tz="UTC")).all()


def test_funnel_follows_impressions(world: tuple[Settings, dict]) -> None:
    settings, _ = world
    events = _read(settings, "events")
    key = ["request_id", "item_id"]
    flags = (
        events.assign(n=1)
        .pivot_table(index=key, columns="event_type", values="n", aggfunc="sum", fill_value=0)
        .reindex(columns=["impression", "click", "add_to_cart", "purchase"], fill_value=0)
    )
    assert (flags["impression"] == 1).all()  # every clicked/carted/bought pair was impressed, once
    assert (flags["purchase"] <= flags["add_to_cart"]).all()
    assert (flags["add_to_cart"] <= flags["click"]).all()
    assert (flags["click"] <= flags["impression"]).all()
    impressions = events[events["event_type"] == "impression"].set_index(key)["event_ts"]
    later = events[events["event_type"] != "impression"]
    assert (later["event_ts"].to_numpy() > impressions.reindex(pd.MultiIndex.from_frame(later[key])).to_numpy()).all()


def test_no_purchase_beyond_stock(world: tuple[Settings, dict]) -> None:
    settings, summary = world
    events = _read(settings, "events")
    inventory = _read(settings, "inventory")
    buys = events[events["event_type"] == "purchase"]
    assert summary["events"]["purchase"] > 0
    sold = buys.groupby([buys["dt"].astype(str), "item_id"])["quantity"].sum().rename("sold").reset_index()
    stock = inventory.assign(dt=inventory["dt"].astype(str))[["dt", "item_id", "stock_units"]]
    merged = sold.merge(stock, on=["dt", "item_id"], how="left")
    assert merged["stock_units"].notna().all()
    assert (merged["sold"] <= merged["stock_units"]).all()
    assert (inventory["stock_units"] >= 0).all() and (inventory["stock_units"] == 0).any()
    # Stock sells down: next day's snapshot <= today's minus sales, unless restocked.
    assert not inventory.duplicated(["item_id", "snapshot_ts"]).any()
    assert (inventory["snapshot_ts"].dt.tz_convert("UTC").dt.date.astype(str) == inventory["dt"].astype(str)).all()


def test_deterministic_for_the_same_seed(world: tuple[Settings, dict], tmp_path: Path) -> None:
    settings, _ = world
    again = _settings(tmp_path / "again")
    simulate(again, RUN_DATE)
    for table in TABLES:
        pd.testing.assert_frame_equal(_read(settings, table), _read(again, table))
    simulate(again, RUN_DATE)  # re-running overwrites the same partitions with the same content
    pd.testing.assert_frame_equal(_read(settings, "events"), _read(again, "events"))
    other = _settings(tmp_path / "other", seed=7)
    simulate(other, RUN_DATE)
    assert not _read(settings, "events").equals(_read(other, "events"))


def test_clicks_follow_hidden_preferences(world: tuple[Settings, dict]) -> None:
    settings, _ = world
    events = _read(settings, "events")
    items = _read(settings, "items").set_index("item_id")
    users = pd.read_parquet(settings.truth_dir / "users.parquet").set_index("user_id")
    imp = events[events["event_type"] == "impression"][["request_id", "item_id", "user_id"]]
    clicked = events[events["event_type"] == "click"][["request_id", "item_id"]].assign(click=1)
    frame = imp.merge(clicked, how="left").fillna({"click": 0})
    cat = items["category_id"].reindex(frame["item_id"]).to_numpy()
    aff = users[[c for c in users.columns if c.startswith("affinity_")]].reindex(frame["user_id"]).to_numpy()
    frame["affinity"] = aff[np.arange(len(frame)), cat]
    high = frame["affinity"] >= frame["affinity"].quantile(0.75)
    low = frame["affinity"] <= frame["affinity"].quantile(0.25)
    assert frame.loc[high, "click"].mean() > 2 * frame.loc[low, "click"].mean()

    # The oracle agrees with what happened: clicked impressions had a higher true p_click.
    frame["p_click"] = oracle_scores(settings.truth_dir, frame)
    assert frame["p_click"].between(0, 1).all()
    assert frame.loc[frame["click"] == 1, "p_click"].mean() > 1.5 * frame.loc[frame["click"] == 0, "p_click"].mean()
    # Without request ids it falls back to the latent model (feed surface): close to the logged truth for feed.
    feed = events[(events["event_type"] == "impression") & (events["surface"] == "feed")].head(200)
    logged = oracle_scores(settings.truth_dir, feed[["request_id", "item_id"]])
    latent = oracle_scores(settings.truth_dir, feed[["user_id", "item_id"]])
    np.testing.assert_allclose(logged, latent)


def test_default_sizes_fill_every_slate_of_every_day(tmp_path: Path) -> None:
    """Default sizes (2000 requests x 20 slate x 7 days); its speed is measured by `make bench`."""
    settings = Settings(home=tmp_path, simulator=SimulatorSettings())  # not the suite-wide test sizes
    summary = simulate(settings, RUN_DATE)
    assert summary["events"]["impression"] == 7 * 2000 * 20
