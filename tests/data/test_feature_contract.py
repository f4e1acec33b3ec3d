"""The dbt marts carry exactly what the feature contract declares: every view's join keys, ``feature_ts`` and
features, with the declared types (dbt stays SQL; this is where SQL and the declaration meet)."""

from __future__ import annotations

import duckdb

from shoprank.feature_contract import RANKERS, feature_columns_for, views
from shoprank.settings import Settings

DUCKDB_TYPES = {"int64": {"BIGINT", "INTEGER"}, "float64": {"DOUBLE", "FLOAT"}, "string": {"VARCHAR"}}


def _columns(settings: Settings, table: str) -> dict[str, str]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        rows = conn.execute(
            "select column_name, data_type from information_schema.columns where table_name = ?", [table]
        ).fetchall()
    return dict(rows)


def test_every_declared_view_matches_its_mart(warehouse: dict) -> None:
    settings: Settings = warehouse["settings"]
    for view in views(settings.simulator.categories).values():
        if view.source == "push":  # written by the stream worker, not built by dbt
            continue
        columns = _columns(settings, view.mart)
        assert columns, f"no mart {view.mart} in the warehouse for declared view {view.name}"
        for key in (*view.join_keys, "feature_ts"):
            assert key in columns, f"{view.mart} lacks {key}"
        for feature in view.features:
            assert feature.name in columns, f"{view.mart} lacks declared feature {feature.name}"
            assert columns[feature.name] in DUCKDB_TYPES[feature.dtype], (
                f"{view.mart}.{feature.name} is {columns[feature.name]}, declared {feature.dtype}"
            )


def test_every_ranker_column_is_declared_once(warehouse: dict) -> None:
    n_categories = warehouse["settings"].simulator.categories
    for name in RANKERS:
        columns = feature_columns_for(name, n_categories)
        assert len(columns) == len(set(columns)), f"{name} repeats a column"
