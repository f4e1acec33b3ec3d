"""The same dbt models build on PostgreSQL (the `postgres` target): raw partitions loaded into schema `raw`, one
incremental run per day, every dbt test passing, and marts equal to the DuckDB build of the same data.

The test owns its database on the loopback server (a fresh name, dropped at the end). It never skips: without
PostgreSQL it fails and says how to start it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from shoprank.mart_files import read_mart
from shoprank.settings import Settings
from warehouse.build import EXPORTED_MARTS, build_warehouse

from .conftest import RUN_DATE, TINY

# Sort keys (unique per mart) for the row-by-row comparison.
KEYS = {
    "user_features": ["user_id", "feature_ts"],
    "item_features": ["item_id", "feature_ts"],
    "training_examples": ["impression_id"],
    "user_window_features": ["user_id", "feature_ts"],
    "user_category_features": ["user_id", "category_id", "feature_ts"],
    "item_window_features": ["item_id", "feature_ts"],
    "seller_features": ["seller_id", "feature_ts"],
    "query_item_match": ["impression_id"],
    "retrieval_covisitation": ["item_id", "neighbour_rank"],
    "retrieval_trending": ["category_id", "trend_rank"],
    "retrieval_user_recent": ["user_id", "recency_rank"],
}


def _admin_connection(settings: Settings) -> Any:
    import psycopg

    services = settings.services
    try:
        return psycopg.connect(
            services.postgres_url("postgres", driver="postgresql"), autocommit=True, connect_timeout=5
        )
    except psycopg.OperationalError as error:
        pytest.fail(
            f"PostgreSQL at {services.postgres_host}:{services.postgres_port} is not reachable ({error}): "
            "run `make services-up`"
        )


@pytest.fixture(scope="module")
def postgres_warehouse(warehouse: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, dict]]:
    """Runs for D-1 (models only) then D on a fresh database; each loads the raw partitions up to its day."""
    from psycopg import sql

    from shoprank.databases import ensure_postgres_database

    home = tmp_path_factory.mktemp("postgres-home")
    (home / "raw").symlink_to(warehouse["settings"].raw_dir)
    database = f"shoprank_test_warehouse_{secrets.token_hex(4)}"
    settings = Settings(home=home, simulator=TINY, dbt_target="postgres", services={"warehouse_database": database})
    _admin_connection(settings).close()  # fails with the hint when the server is down
    assert ensure_postgres_database(settings, database)
    try:
        with pytest.MonkeyPatch.context() as env:  # the first day's run: models only, the tests run on the last
            env.setenv("DBT_INDIRECT_SELECTION", "empty")
            first = build_warehouse(settings, RUN_DATE - timedelta(days=1), select="resource_type:model")
        build = build_warehouse(settings, RUN_DATE)
        yield settings, {"loads": [first["raw_load"], build["raw_load"]], "build": build}
    finally:
        with _admin_connection(settings) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database)))


def _pg_table(settings: Settings, name: str) -> pd.DataFrame:
    import psycopg

    url = settings.services.postgres_url(settings.services.warehouse_database, driver="postgresql")
    with psycopg.connect(url) as conn:
        cursor = conn.execute(f"select * from {settings.services.warehouse_schema}.{name}")
        return pd.DataFrame(cursor.fetchall(), columns=[column.name for column in cursor.description])


def test_raw_partitions_load_once_per_change(postgres_warehouse: tuple[Settings, dict]) -> None:
    settings, result = postgres_warehouse
    first, second = result["loads"]
    events = list((settings.raw_dir / "events").glob("dt=*"))  # the last one is the run's day
    assert first["tables"]["events"]["loaded"] == len(events) - 1 and first["tables"]["events"]["rows"] > 0
    # The second day's load copies only the new partition; the loaded ones are unchanged (same sha256).
    assert second["tables"]["events"] | {"rows": 0} == {
        "loaded": 1,
        "skipped": len(events) - 1,
        "deleted": 0,
        "rows": 0,
    }


def test_every_model_and_test_passes_on_postgresql(postgres_warehouse: tuple[Settings, dict]) -> None:
    _, result = postgres_warehouse
    build = result["build"]
    assert build["resource_types"]["model"] >= 26 and build["resource_types"]["unit_test"] >= 4
    assert build["resource_types"]["test"] > 60  # 68 data tests: not-null columns and value checks one test per model
    assert set(build["statuses"]) <= {"success", "pass"}


def test_marts_equal_the_duckdb_build(warehouse: dict, postgres_warehouse: tuple[Settings, dict]) -> None:
    duckdb_marts: Path = warehouse["settings"].marts_build_dir
    settings, _ = postgres_warehouse
    for name in EXPORTED_MARTS:
        expected = read_mart(duckdb_marts, name)
        got = _pg_table(settings, name)
        if "snapshot_date" in got:  # one snapshot per run: the D-1 run's and D's; the export holds the newest
            assert got["snapshot_date"].nunique() == 2, name
            got = got[got["snapshot_date"] == got["snapshot_date"].max()]
        assert list(got.columns) == list(expected.columns), name
        key = KEYS[name]
        got = got.sort_values(key).reset_index(drop=True)
        expected = expected.sort_values(key).reset_index(drop=True)
        assert len(got) == len(expected) > 0, name
        for column in expected.columns:
            want, have = expected[column], got[column]
            if want.dtype.kind == "f":
                pd.testing.assert_series_equal(have.astype(float), want, rtol=1e-9, obj=f"{name}.{column}")
            elif want.dtype.kind in "iu" or str(want.dtype) == "Int64":
                pd.testing.assert_series_equal(have.astype("Int64"), want.astype("Int64"), obj=f"{name}.{column}")
            elif isinstance(want.dtype, pd.DatetimeTZDtype):
                pd.testing.assert_series_equal(pd.to_datetime(have, utc=True).astype(want.dtype), want, obj=name)
            else:  # text and dates
                assert have.tolist() == want.tolist(), f"{name}.{column}"


def test_exported_marts_equal_the_duckdb_exports(warehouse: dict, postgres_warehouse: tuple[Settings, dict]) -> None:
    """The PostgreSQL build writes the same build-area files as DuckDB's post-hooks: same rows, order and types, so
    Feast, training and serving need no DuckDB file on this target (warehouse/pg_export.py)."""
    duckdb_marts: Path = warehouse["settings"].marts_build_dir
    settings, result = postgres_warehouse
    assert set(result["build"]["exports"]["marts"]) == set(EXPORTED_MARTS)
    for name in EXPORTED_MARTS:
        expected = read_mart(duckdb_marts, name)
        got = read_mart(settings.marts_build_dir, name)
        assert len(got) == result["build"]["exports"]["marts"][name] > 0, name
        pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-12, obj=name)
    assert not settings.warehouse_path.exists()  # no DuckDB file was written
