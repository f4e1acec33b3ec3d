"""The memory budget: one setting sizes DuckDB's memory_limit (and its spill folder) and streaming chunks."""

from __future__ import annotations

import pytest

from shoprank.resources import duckdb_connect
from shoprank.settings import Settings


def test_the_budget_comes_from_the_environment_and_sizes_duckdb(monkeypatch, tmp_path):
    monkeypatch.setenv("SHOPRANK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHOPRANK_RESOURCES__MEMORY_BUDGET_GIB", "2")
    monkeypatch.delenv("SHOPRANK_WAREHOUSE_MEMORY_LIMIT", raising=False)
    settings = Settings()
    assert settings.resources.memory_budget_gib == 2.0
    assert settings.duckdb_memory_limit == "1228MiB"  # duckdb_share 0.6 of 2 GiB
    env = settings.runtime_env()  # what dbt's profile reads
    assert env["SHOPRANK_DUCKDB_MEMORY_LIMIT"] == "1228MiB"
    assert env["SHOPRANK_DUCKDB_TEMP_DIR"] == str(tmp_path / "home" / "tmp" / "duckdb")
    settings.warehouse_memory_limit = "3GB"  # an explicit limit wins
    assert settings.runtime_env()["SHOPRANK_DUCKDB_MEMORY_LIMIT"] == "3GB"


def test_a_connection_is_capped_and_spills_under_the_home(tmp_path):
    settings = Settings(home=tmp_path / "home", resources={"memory_budget_gib": 0.5})
    con = duckdb_connect(settings)
    limit, temp, zone = con.execute(
        "select current_setting('memory_limit'), current_setting('temp_directory'), current_setting('TimeZone')"
    ).fetchall()[0]
    con.close()
    assert limit == "307.0 MiB" and temp == str(tmp_path / "home" / "tmp" / "duckdb") and zone == "UTC"


def test_chunk_rows_fit_a_share_of_the_budget():
    resources = Settings().resources.model_copy(update={"memory_budget_gib": 1.0})
    assert resources.chunk_rows(1024) == 2**30 // 4 // 1024
    assert resources.chunk_rows(2**40) == 1000  # never below the minimum
    with pytest.raises(ValueError, match="bytes_per_row"):
        resources.chunk_rows(0)


def test_feasts_offline_engine_is_the_budgeted_connection(tmp_path):
    """Feast's DuckDB offline store runs on ibis's default backend: materialize and historical retrieval use the
    step's capped, spilling connection, not an unlimited one of ibis's own."""
    import ibis

    from shoprank.feature_store import use_budgeted_offline_engine

    settings = Settings(home=tmp_path / "home", resources={"memory_budget_gib": 0.5})
    use_budgeted_offline_engine(settings)
    limit, temp = (
        ibis.get_backend()
        .raw_sql("select current_setting('memory_limit'), current_setting('temp_directory')")
        .fetchall()[0]
    )
    assert limit == "307.0 MiB" and temp == str(tmp_path / "home" / "tmp" / "duckdb")
    bigger = Settings(home=tmp_path / "home", resources={"memory_budget_gib": 1.0})
    use_budgeted_offline_engine(bigger)  # another budget in the same process: a new connection
    limit = ibis.get_backend().raw_sql("select current_setting('memory_limit')").fetchall()[0][0]
    assert limit == "614.0 MiB"
