"""The `services` Feast profile against real servers on loopback: SQL registry in PostgreSQL, online store in Redis.

The test owns a fresh PostgreSQL database and a fresh Feast project name (Redis keys are scoped by project), and
drops both afterwards. It applies the repo, materializes the DAG run's marts and reads features back; the values
must equal what the `local` profile's SQLite online store serves for the same entities.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from shoprank.mart_files import read_mart
from shoprank.settings import ServicesSettings, Settings, get_settings

pytestmark = pytest.mark.e2e


def _ensure_servers(services: ServicesSettings) -> None:
    """Start PostgreSQL / Redis on loopback if they are installed but down (as `make services-up` would)."""
    import psycopg
    import redis

    def postgres_up() -> bool:
        try:
            psycopg.connect(_admin_dsn(services), connect_timeout=3).close()
            return True
        except psycopg.OperationalError:
            return False

    def redis_up() -> bool:
        try:
            return bool(redis.Redis(host=services.redis_host, port=services.redis_port, socket_timeout=3).ping())
        except redis.RedisError:
            return False

    if not postgres_up() and os.path.isdir("/etc/postgresql"):
        version = sorted(os.listdir("/etc/postgresql"))[-1]
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False, timeout=60
        )
    if not redis_up() and shutil.which("redis-server"):
        subprocess.run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "--port",
                str(services.redis_port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            check=False,
            timeout=30,
        )
    deadline = time.monotonic() + 30
    while not (postgres_up() and redis_up()):
        assert time.monotonic() < deadline, "PostgreSQL and Redis must run on loopback for the services profile"
        time.sleep(0.5)


def _admin_dsn(services: ServicesSettings) -> str:
    return f"host={services.postgres_host} port={services.postgres_port} user={services.postgres_user} dbname=postgres"


@pytest.fixture(scope="module")
def services_store(daily_run: Settings) -> Iterator[tuple[Settings, object]]:
    import psycopg

    from feature_repo.materialize import apply_feature_repo, materialize_for_run
    from shoprank.feature_store import get_feature_store

    name = f"shoprank_test_{secrets.token_hex(4)}"
    services = daily_run.services.model_copy(update={"feast_registry_database": name})
    settings = daily_run.model_copy(update={"profile": "services", "feast_project": name, "services": services})
    _ensure_servers(services)
    with psycopg.connect(_admin_dsn(services), autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    saved_env = dict(os.environ)
    store = None
    try:
        apply_feature_repo(settings)
        materialize_for_run(settings, settings.default_run_date)
        store = get_feature_store(settings)
        yield settings, store
    finally:
        if store is not None:
            store.teardown()  # deletes the project's keys from Redis
        os.environ.clear()
        os.environ.update(saved_env)
        get_settings.cache_clear()
        with psycopg.connect(_admin_dsn(services), autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


def test_services_profile_reads_its_own_yaml(services_store):
    settings, store = services_store
    assert store.config.registry.registry_type == "sql"
    assert store.config.online_store.type == "redis"
    assert store.project == settings.feast_project
    assert {v.name for v in store.list_feature_views()} >= {"user_features", "item_features", "seller_features"}


def test_registry_lives_in_postgres_and_features_in_redis(services_store):
    import psycopg
    import redis

    settings, _ = services_store
    services = settings.services
    with psycopg.connect(_admin_dsn(services).replace("dbname=postgres", f"dbname={settings.feast_project}")) as conn:
        (views,) = conn.execute(
            "select count(*) from feature_views where project_id = %s", [settings.feast_project]
        ).fetchone()
    assert views >= 3
    client = redis.Redis(host=services.redis_host, port=services.redis_port, db=services.redis_db)
    keys = list(itertools.islice(client.scan_iter(count=1000), 10_000))
    assert any(settings.feast_project.encode() in key for key in keys)


def test_redis_serves_the_same_values_as_the_local_online_store(daily_run: Settings, services_store):
    from shoprank.feature_store import get_feature_store

    settings, store = services_store
    users = read_mart(daily_run.marts_export_dir, "user_features", ["user_id", "feature_ts"])
    latest = users[users["feature_ts"] == users["feature_ts"].max()]
    # category_id: the user x category view's join key (ranker_v3)
    rows = [
        {"user_id": u, "item_id": "i000001", "category_id": 1} for u in latest["user_id"].sample(30, random_state=2)
    ]
    service = daily_run.training.feature_service
    remote = store.get_online_features(features=store.get_feature_service(service), entity_rows=rows).to_df()
    local_store = get_feature_store(daily_run)
    local = local_store.get_online_features(features=local_store.get_feature_service(service), entity_rows=rows)
    local_df = local.to_df()
    assert remote["user_impressions_30d"].notna().all()
    for column in local_df.columns:
        if pd.api.types.is_numeric_dtype(local_df[column]):
            np.testing.assert_allclose(remote[column].astype(float), local_df[column].astype(float), equal_nan=True)
        else:
            assert remote[column].tolist() == local_df[column].tolist(), column
