"""The daily DAG through Airflow's CeleryExecutor (the cluster profile), started as `make airflow PROFILE=cluster`
starts it (scripts/airflow.sh): API server, scheduler, DAG processor, triggerer and two Celery workers, one on the dbt
queue running one task at a time (the warehouse's single writer), one on the default and training queues. Redis is
the broker (the test's own key prefix), PostgreSQL the metadata DB and result backend (the test's own database).
As on `make airflow PROFILE=cluster`, the script starts a Dask scheduler and two workers on loopback (make dask-up,
the run's own ports) and the train step fits through xgboost.dask on them.

The warehouse target is DuckDB here (the cluster profile's Spark target is tested apart). Without PostgreSQL or Redis
on loopback the test fails and says `make services-up`.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from shoprank.settings import Settings
from tests.support.airflow_run import (
    SMALL_WORLD,
    DagRunTimeline,
    require_loopback_services,
    run_daily_dag,
    settings_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.profiles, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def celery_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import psycopg
    import redis
    from psycopg import sql

    suffix = secrets.token_hex(4)
    overrides = {
        **SMALL_WORLD,
        "SHOPRANK_HOME": str(tmp_path_factory.mktemp("celery-home")),
        "SHOPRANK_PROFILE": "cluster",
        "SHOPRANK_DBT_TARGET": "duckdb",
        "SHOPRANK_SERVICES__AIRFLOW_DATABASE": f"shoprank_test_celery_{suffix}",
        "SHOPRANK_AIRFLOW__CELERY_KEY_PREFIX": f"shoprank:test-celery-{suffix}:",
    }
    settings = settings_for(overrides)
    require_loopback_services(settings, "the CeleryExecutor")
    database = settings.services.airflow_database
    broker = redis.Redis(
        host=settings.services.redis_host, port=settings.services.redis_port, db=settings.airflow.celery_redis_db
    )
    try:
        timeline = run_daily_dag(overrides, settings.default_run_date, timeout_s=2700)
        with psycopg.connect(settings.services.postgres_url(database, driver="postgresql")) as conn:
            instances = conn.execute(
                "select task_id, queue, state, start_date, end_date from task_instance where dag_id = 'shoprank_daily'"
            ).fetchall()
            results = conn.execute("select status from celery_taskmeta").fetchall()
        broker_keys = [key.decode() for key in broker.scan_iter(match="*") if b"test-celery-" + suffix.encode() in key]
        yield {
            "settings": settings,
            "timeline": timeline,
            "instances": instances,
            "results": results,
            "broker_keys": broker_keys,
        }
    finally:
        for key in broker.scan_iter(match=f"{settings.airflow.celery_key_prefix}*"):
            broker.delete(key)
        admin = settings.services.postgres_url("postgres", driver="postgresql")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database)))


def test_daily_dag_succeeds_with_every_task_run_by_a_celery_worker(celery_run: dict[str, Any]) -> None:
    settings: Settings = celery_run["settings"]
    timeline: DagRunTimeline = celery_run["timeline"]
    env = settings.runtime_env()
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://127.0.0.1:")
    failed = {t["task_id"]: t["state"] for t in timeline.tasks if t["state"] != "success"}
    assert timeline.state == "success" and not failed, (failed, timeline.logs)
    instances = celery_run["instances"]
    assert {state for _, _, state, _, _ in instances} == {"success"}
    # Each task instance went through Celery: a result per try (a retried task has two), in PostgreSQL.
    statuses = [status for (status,) in celery_run["results"]]
    assert len(statuses) >= len(instances) and statuses.count("SUCCESS") >= len(instances), statuses
    # The broker's keys carry the run's prefix (nothing of another deployment's Celery was touched).
    assert celery_run["broker_keys"] and all(
        key.startswith(settings.airflow.celery_key_prefix) for key in celery_run["broker_keys"]
    )
    card = json.loads(
        (settings.home_dir / "models" / "candidates" / str(settings.default_run_date) / "candidate.json").read_text()
    )
    assert card["metrics"]
    # The cluster profile's train step fitted through xgboost.dask on the Dask cluster the script started, which
    # stopped with Airflow.
    assert card["engine"] == "xgboost.dask" and card["dask_workers"] == settings.services.dask_workers, card
    assert card["dask_scheduler"].startswith(f"tcp://{settings.services.dask_host}:")
    assert not list((settings.home_dir / "services" / "dask").glob("*.pid"))


def test_tasks_are_routed_to_their_queue_and_the_dbt_worker_runs_one_at_a_time(celery_run: dict[str, Any]) -> None:
    settings: Settings = celery_run["settings"]
    queues = {task_id: queue for task_id, queue, _, _, _ in celery_run["instances"]}
    assert queues["build_warehouse"] == settings.airflow.dbt_queue
    assert queues["train"] == settings.airflow.training_queue
    others = {task for task in queues if task not in ("build_warehouse", "train") and not task.startswith("train_")}
    assert {queues[task] for task in others} == {settings.airflow.default_queue}

    # Each worker received its queues' tasks (worker 1: dbt; worker 2: the rest), every try through one of them.
    logs = settings.airflow_home / "logs" / "processes"
    received = [(logs / f"celery-worker-{n}.log").read_text(errors="replace").count("] received") for n in (1, 2)]
    dbt_tasks = sum(1 for queue in queues.values() if queue == settings.airflow.dbt_queue)
    assert received[0] >= dbt_tasks and received[1] >= len(queues) - dbt_tasks, received
    assert sum(received) == len(celery_run["results"]), received
    # The dbt queue's tasks never overlapped (one worker slot: the warehouse's single writer).
    spans = sorted((start, end) for _, queue, _, start, end in celery_run["instances"] if queue == "dbt")
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False)), spans
