"""The whole daily DAG on the `services` profile, against real servers on loopback: the warehouse built by dbt on
PostgreSQL (marts exported to the same parquet files, warehouse/pg_export.py), Airflow's metadata DB on PostgreSQL,
Feast's registry on PostgreSQL and its online store on Redis; its model equals a DuckDB run's on the same data.

The test owns its databases (fresh names) and its Feast project (Redis keys are scoped by project), and removes
them afterwards, so runs never collide with each other or with anything else on the servers. Without the servers it
fails and says `make services-up`.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from shoprank.mart_files import read_mart
from shoprank.settings import Settings
from tests.support.airflow_run import SMALL_WORLD, require_loopback_services

# Two whole runs (the DAG on PostgreSQL, `shoprank run` on DuckDB): `make test-profiles`.
pytestmark = [pytest.mark.e2e, pytest.mark.profiles, pytest.mark.timeout(5400)]

BIN = Path(sys.executable).parent


def _start_duckdb_run(home: Path, day: str) -> subprocess.Popen[bytes]:
    """`shoprank run` of the same day on the local profile (DuckDB warehouse), in its own home, in the background."""
    settings = Settings(profile="local", home=home)
    env = {**os.environ, **SMALL_WORLD, **settings.runtime_env()}
    log = (home / "run.log").open("wb")
    return subprocess.Popen(
        [str(BIN / "shoprank"), "run", "--run-date", day], env=env, stdout=log, stderr=subprocess.STDOUT
    )


def _holdout_metrics(home: Path, day: str) -> dict[str, float]:
    import json

    card = json.loads((home / "models" / "candidates" / day / "candidate.json").read_text())
    # The model's own metrics (overall and per slice); the baselines' are not the model.
    return {name: value for name, value in card["metrics"].items() if name.startswith("model_") or "_model_" in name}


@pytest.fixture(scope="module")
def services_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, dict[str, str]]]:
    import psycopg
    from psycopg import sql

    suffix = secrets.token_hex(4)
    overrides = {
        **SMALL_WORLD,
        "SHOPRANK_PROFILE": "services",
        "SHOPRANK_HOME": str(tmp_path_factory.mktemp("services-home")),
        "SHOPRANK_SERVICES__AIRFLOW_DATABASE": f"shoprank_test_airflow_{suffix}",
        "SHOPRANK_SERVICES__FEAST_REGISTRY_DATABASE": f"shoprank_test_feast_{suffix}",
        "SHOPRANK_SERVICES__WAREHOUSE_DATABASE": f"shoprank_test_warehouse_{suffix}",
        "SHOPRANK_FEAST_PROJECT": f"shoprank_test_{suffix}",
    }
    settings = Settings(
        profile="services",
        home=overrides["SHOPRANK_HOME"],
        feast_project=overrides["SHOPRANK_FEAST_PROJECT"],
        services={
            "airflow_database": overrides["SHOPRANK_SERVICES__AIRFLOW_DATABASE"],
            "feast_registry_database": overrides["SHOPRANK_SERVICES__FEAST_REGISTRY_DATABASE"],
            "warehouse_database": overrides["SHOPRANK_SERVICES__WAREHOUSE_DATABASE"],
        },
    )
    require_loopback_services(settings, "the services profile")
    env = {**os.environ, **overrides}
    env.update(settings.runtime_env())
    admin = settings.services.postgres_url("postgres", driver="postgresql")
    databases = (
        settings.services.airflow_database,
        settings.services.feast_registry_database,
        settings.services.warehouse_database,
    )
    try:
        from shoprank.databases import ensure_postgres_database

        ensure_postgres_database(settings, settings.services.feast_registry_database)
        init = subprocess.run([str(BIN / "shoprank"), "airflow-init"], env=env, capture_output=True, text=True)
        assert init.returncode == 0, init.stdout + init.stderr
        yield settings, env
    finally:
        subprocess.run(
            [
                str(BIN / "python"),
                "-c",
                "from shoprank.feature_store import get_feature_store as g; "
                "from shoprank.settings import get_settings as s; g(s()).teardown()",
            ],
            env=env,
            capture_output=True,
            timeout=300,
            check=False,
        )
        with psycopg.connect(admin, autocommit=True) as conn:
            for database in databases:
                conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database)))


def test_daily_dag_runs_end_to_end_on_postgresql_and_redis(services_run, tmp_path):
    settings, env = services_run
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://")
    assert settings.dbt_target_name == "postgres"
    day = settings.default_run_date.isoformat()
    logical = (settings.default_run_date + timedelta(days=1)).isoformat()
    duckdb_home = tmp_path / "duckdb-home"
    duckdb_home.mkdir()
    duckdb_run = _start_duckdb_run(duckdb_home, day)
    try:
        run = subprocess.run(
            [str(BIN / "airflow"), "dags", "test", "shoprank_daily", logical],
            env=env,
            capture_output=True,
            text=True,
            timeout=3000,
        )
        duckdb_returncode = duckdb_run.wait(timeout=600)
    finally:
        if duckdb_run.poll() is None:
            duckdb_run.kill()
            duckdb_run.wait()
    assert run.returncode == 0, (run.stdout + run.stderr)[-5000:]
    assert duckdb_returncode == 0, (duckdb_home / "run.log").read_text(errors="replace")[-5000:]
    state = subprocess.run(
        [str(BIN / "airflow"), "dags", "state", "shoprank_daily", logical], env=env, capture_output=True, text=True
    )
    assert state.stdout.strip().splitlines()[-1] == "success", state.stdout + state.stderr

    # The run is recorded in PostgreSQL, not in a SQLite file.
    import psycopg

    with psycopg.connect(settings.services.postgres_url(settings.services.airflow_database, driver="postgresql")) as c:
        states = c.execute("select state from dag_run where dag_id = 'shoprank_daily'").fetchall()
    assert states == [("success",)]
    assert not (settings.airflow_home / "airflow.db").exists()

    # Online features come from Redis: the busiest user of the run has history.
    read = subprocess.run(
        [
            str(BIN / "python"),
            "-c",
            "import sys, pandas as pd; from shoprank.feature_store import get_feature_store as g; "
            "from shoprank.settings import get_settings as s; st = s(); "
            "from shoprank.mart_files import read_mart; e = read_mart(st.marts_export_dir, 'training_examples'); "
            "u = e['user_id'].value_counts().index[0]; store = g(st); "
            "print(store.config.online_store.type, store.get_online_features("
            "features=['user_features:user_impressions_30d'], entity_rows=[{'user_id': u}]).to_dict()"
            "['user_impressions_30d'][0])",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert read.returncode == 0, read.stderr[-3000:]
    store_type, impressions = read.stdout.split()[-2:]
    assert store_type == "redis" and int(impressions) > 0
    examples = read_mart(settings.marts_export_dir, "training_examples")
    assert len(examples) > 0

    # The marts came from PostgreSQL (no DuckDB warehouse was written) and the model equals the DuckDB run's:
    # same raw data -> same marts -> same training set -> same holdout metrics.
    assert not settings.warehouse_path.exists() and (duckdb_home / "warehouse" / "shoprank.duckdb").exists()
    metrics, expected = _holdout_metrics(settings.home_dir, day), _holdout_metrics(duckdb_home, day)
    assert metrics.keys() == expected.keys() and "model_ndcg@10" in metrics
    for name, value in expected.items():  # None: a slice with no requests at this size, on both runs
        assert metrics[name] == (value if value is None else pytest.approx(value, rel=1e-9, abs=1e-12)), name
