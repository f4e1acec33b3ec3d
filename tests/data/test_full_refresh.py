"""A mart whose stored columns differ from its SQL (a home built before an upgrade added a feature column) stops the
daily build with a message naming the way out, and `shoprank build-warehouse --full-refresh` rebuilds it."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from orchestration.cli import app
from shoprank.settings import get_settings
from warehouse.build import WarehouseBuildError, build_warehouse

from .conftest import RUN_DATE, TINY, tiny_settings

MART, COLUMN = "user_category_features", "uc_taste_30d"


def _columns(warehouse_path: Path) -> set[str]:
    with duckdb.connect(str(warehouse_path), read_only=True) as conn:
        rows = conn.execute(
            "select column_name from information_schema.columns where table_name = ?", [MART]
        ).fetchall()
    return {name for (name,) in rows}


def test_a_changed_column_set_fails_naming_full_refresh_which_rebuilds_it(
    warehouse: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    shutil.copytree(warehouse["settings"].home, home)
    settings = tiny_settings(home)
    with duckdb.connect(str(settings.warehouse_path)) as conn:
        found = conn.execute("select table_schema from information_schema.tables where table_name = ?", [MART])
        (schema,) = found.fetchone() or ("",)
        conn.execute(f'alter table "{schema}"."{MART}" drop column {COLUMN}')
    assert COLUMN not in _columns(settings.warehouse_path)

    with pytest.raises(WarehouseBuildError, match="build-warehouse --full-refresh") as failed:
        build_warehouse(settings, RUN_DATE, select=MART)
    assert MART in str(failed.value)
    assert COLUMN not in _columns(settings.warehouse_path)

    # the operator's command (one mart here; without --select, every mart) on the same home: the CLI reads its
    # settings from the environment
    monkeypatch.setenv("SHOPRANK_HOME", str(home))
    for field, value in TINY.model_dump(exclude_unset=True).items():
        monkeypatch.setenv(f"SHOPRANK_SIMULATOR__{field.upper()}", str(value))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            app, ["build-warehouse", "--run-date", RUN_DATE.isoformat(), "--full-refresh", "--select", MART]
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert COLUMN in _columns(settings.warehouse_path)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        filled = conn.execute(f'select count({COLUMN}), count(*) from "{schema}"."{MART}"').fetchone()
    assert filled is not None and filled[0] == filled[1] > 0  # every row, every day, rebuilt with the column
