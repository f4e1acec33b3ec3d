"""The daily `materialize` loads only the run's new feature rows (from the snapshot the online store already holds,
less the overlap), and leaves the online store exactly as a load of the whole window would."""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from shoprank.settings import Settings, get_settings
from warehouse.publish import publish_snapshot

from .conftest import RUN_DATE, TINY


@pytest.fixture
def published_home(warehouse: dict, tmp_path: Path) -> Iterator[Settings]:
    """A home whose published marts are the session warehouse's build; Feast's modules see this home."""
    saved_cwd, saved_env = os.getcwd(), dict(os.environ)
    feast_modules = {name: module for name, module in sys.modules.items() if name.startswith("feature_repo")}
    try:
        os.environ["SHOPRANK_HOME"] = str(tmp_path / "home")
        for name, value in {"days": TINY.days, "categories": TINY.categories}.items():
            os.environ[f"SHOPRANK_SIMULATOR__{name.upper()}"] = str(value)
        get_settings.cache_clear()
        settings = get_settings()
        settings.ensure_dirs()
        shutil.copytree(warehouse["settings"].marts_build_dir, settings.marts_build_dir, dirs_exist_ok=True)
        publish_snapshot(settings, RUN_DATE, gates={"test": "no gates"})
        for name in feast_modules:  # the feature repo reads the published marts' path when imported
            del sys.modules[name]
        from feature_repo.materialize import apply_feature_repo

        apply_feature_repo(settings)
        yield settings
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        get_settings.cache_clear()
        for name in [name for name in sys.modules if name.startswith("feature_repo")]:
            del sys.modules[name]
        sys.modules.update(feast_modules)


def _online_rows(settings: Settings) -> dict[str, list[tuple]]:
    """Every online table's rows (entity, feature, value, event time), without Feast's write time."""
    with sqlite3.connect(settings.feast_online_path) as conn:
        tables = [row[0] for row in conn.execute("select name from sqlite_master where type = 'table'")]
        return {
            table: conn.execute(
                f'select entity_key, feature_name, value, event_ts from "{table}" order by entity_key, feature_name'
            ).fetchall()
            for table in tables
        }


def test_the_daily_materialize_loads_only_the_new_snapshots(published_home: Settings, tmp_path: Path) -> None:
    from feature_repo.materialize import day_start, materialize_for_run

    settings = published_home

    def whole_window_start(run_date: date) -> str:  # the simulated window's first day, less the overlap
        return day_start(run_date - timedelta(days=TINY.days)).isoformat()

    first = materialize_for_run(settings, RUN_DATE - timedelta(days=1))
    assert first["start"] == whole_window_start(RUN_DATE - timedelta(days=1))
    daily = materialize_for_run(settings, RUN_DATE)
    # From the snapshot loaded last (RUN_DATE 00:00) less the one-day overlap, for every view.
    assert daily["start"] == day_start(RUN_DATE - timedelta(days=1)).isoformat()
    assert list(daily["feature_views_by_start"]) == [daily["start"]]
    daily_rows = _online_rows(settings)
    assert sum(len(rows) for rows in daily_rows.values()) > 0

    # The same online rows as one load of the whole window into an empty store.
    shutil.rmtree(settings.feast_registry_path.parent)
    from feature_repo.materialize import apply_feature_repo

    apply_feature_repo(settings)
    assert materialize_for_run(settings, RUN_DATE)["start"] == whole_window_start(RUN_DATE)
    assert _online_rows(settings) == daily_rows


def test_feast_reads_a_day_partitioned_mart_from_its_folder(published_home: Settings) -> None:
    """A day-partitioned feature mart's Feast source is its folder of day files in the published snapshot
    (shoprank/mart_files.py: mart_path): `feast apply` took it, materialize loads every pair of every day
    file into the online store, and the point-in-time join reads a row of the newest day file."""
    import pandas as pd

    from feature_repo.materialize import materialize_for_run
    from shoprank.feature_store import get_feature_store
    from shoprank.mart_files import DAY_PARTITIONED_FEATURE_MARTS, mart_files, read_mart

    settings = published_home
    store = get_feature_store(settings)
    assert "user_category_features" in DAY_PARTITIONED_FEATURE_MARTS
    for name in DAY_PARTITIONED_FEATURE_MARTS:
        path = Path(store.get_data_source(f"{name}_source").path)
        assert path == settings.marts_export_dir / name and path.is_dir(), path
        assert len(mart_files(settings.marts_export_dir, name)) > 1
        assert not (settings.marts_export_dir / f"{name}.parquet").exists()
    materialize_for_run(settings, RUN_DATE)
    pairs = read_mart(settings.marts_export_dir, "user_category_features")
    online = _online_rows(settings)
    (table,) = [name for name in online if name.endswith("user_category_features")]
    assert len({row[0] for row in online[table]}) == len(pairs[["user_id", "category_id"]].drop_duplicates())
    newest = pairs[pairs["feature_ts"] == pairs["feature_ts"].max()].iloc[0]
    entities = pd.DataFrame(
        {
            "user_id": [newest.user_id],
            "category_id": [int(newest.category_id)],
            "event_timestamp": [newest.feature_ts + pd.Timedelta(hours=1)],
        }
    )
    offline = store.get_historical_features(entity_df=entities, features=["user_category_features:uc_clicks_30d"])
    assert offline.to_df()["uc_clicks_30d"].tolist() == [newest.uc_clicks_30d]
