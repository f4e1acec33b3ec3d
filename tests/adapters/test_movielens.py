"""MovieLens-100K end to end on the real file: fetch (pip download of the recbole wheel), map, dbt build."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from producers.adapters.movielens import GENRES, convert, fetch
from shoprank.raw_contract import SCHEMAS, TABLES
from shoprank.settings import Settings, SimulatorSettings, get_settings
from warehouse.build import build_warehouse

WAREHOUSE_DAYS = 30  # the warehouse tests build on the last 30 days of the log (the whole log: ~7x the time)


@pytest.fixture(scope="module")
def downloaded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fetch(tmp_path_factory.mktemp("downloads"))  # one download per test session


def _home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(home=tmp_path_factory.mktemp("ml-home"), simulator=SimulatorSettings(categories=len(GENRES)))


@pytest.fixture(scope="module")
def full_log(downloaded: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict]:
    settings = _home(tmp_path_factory)
    return settings, convert(downloaded, settings)


@pytest.fixture(scope="module")
def movielens(downloaded: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, dict]]:
    saved = dict(os.environ)  # build_warehouse exports the home's paths
    settings = _home(tmp_path_factory)
    yield settings, convert(downloaded, settings, days=WAREHOUSE_DAYS)
    os.environ.clear()
    os.environ.update(saved)
    get_settings.cache_clear()


def test_mapping_follows_the_documented_rules(full_log: tuple[Settings, dict]) -> None:
    settings, summary = full_log
    assert summary["ratings"]["ratings"] == 100_000
    for table in TABLES:
        for path in sorted((settings.raw_dir / table).glob("dt=*/part-0.parquet")):
            assert pq.read_schema(path).remove_metadata().equals(SCHEMAS[table]), path
    events = pd.read_parquet(settings.raw_dir / "events")
    counts = events["event_type"].value_counts()
    assert counts["impression"] == 100_000  # every rating is shown once
    assert counts["click"] == summary["ratings"]["clicks"]  # rating >= 4
    assert counts["purchase"] == counts["add_to_cart"] == summary["ratings"]["purchases"]  # rating 5
    assert (events["event_ts"].dt.date.astype(str) == events["dt"].astype(str)).all()
    assert events.loc[events["event_type"] == "impression", "position"].between(1, 20).all()
    items = pd.read_parquet(settings.raw_dir / "items")
    assert items["category_id"].between(0, len(GENRES) - 1).all() and items["item_id"].is_unique


def test_the_same_warehouse_builds_on_it(movielens: tuple[Settings, dict]) -> None:
    settings, summary = movielens
    build = build_warehouse(settings, date.fromisoformat(summary["last_day"]))
    assert build["statuses"].get("success", 0) + build["statuses"].get("pass", 0) == build["nodes"]
    examples = pd.read_parquet(Path(build["marts"]["training_examples"]))
    assert len(examples) > 0 and examples["label_click"].isin([0, 1]).all()
    users = pd.read_parquet(Path(build["marts"]["user_features"]))
    assert users["user_id"].nunique() == pd.read_parquet(settings.raw_dir / "users")["user_id"].nunique()
    assert examples["dt"].nunique() == WAREHOUSE_DAYS


def test_the_raw_suites_pass_on_it(movielens: tuple[Settings, dict]) -> None:
    from quality.raw import validate_raw

    settings, summary = movielens
    # Real traffic is bursty: the simulator's 0.5x-2x volume band is widened for this data set (documented).
    bursty = settings.model_copy(
        update={"quality": settings.quality.model_copy(update={"volume_band_low": 0.05, "volume_band_high": 20.0})}
    )
    result = validate_raw(bursty, date.fromisoformat(summary["last_day"]))
    assert result["success"], result
