"""One run of shoprank_daily on a real Airflow, started as `make airflow` starts it (scripts/airflow.sh: API server,
scheduler, DAG processor, triggerer, and the Celery workers on the CeleryExecutor), and its timeline from the API.

Used by the Celery test (tests/e2e/test_celery_executor.py) and `make bench-dag`. The scheduler runs with
`use_job_schedule = False`: it starts the run triggered here (through the API, once it answers) and creates no
scheduled one for today.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from shoprank.settings import Settings
from tests.support.processes import background_server, free_port

BIN = Path(sys.executable).parent
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "shoprank_daily"

# A small marketplace whose whole-DAG runs still pass the gates and train (the profile tests are about where tasks
# run and on which engine). A world this small drifts from day to day; the drift gate has its own tests.
SMALL_WORLD = {
    "SHOPRANK_SIMULATOR__USERS": "300",
    "SHOPRANK_SIMULATOR__ITEMS": "200",
    "SHOPRANK_SIMULATOR__SELLERS": "20",
    "SHOPRANK_SIMULATOR__REQUESTS_PER_DAY": "400",
    "SHOPRANK_TRAINING__N_ESTIMATORS": "40",
    "SHOPRANK_QUALITY__DRIFT_BLOCK_PSI": "10",
}


def require_loopback_services(settings: Settings, who: str) -> None:
    """Fail (never skip) with the command that starts them when PostgreSQL or Redis does not answer."""
    import psycopg
    import pytest
    import redis

    services = settings.services
    try:
        psycopg.connect(services.postgres_url("postgres", driver="postgresql"), connect_timeout=5).close()
        redis.Redis(host=services.redis_host, port=services.redis_port, socket_timeout=5).ping()
    except (psycopg.OperationalError, redis.exceptions.ConnectionError) as error:
        pytest.fail(f"{who} needs PostgreSQL and Redis on loopback ({error}): run `make services-up`")


@dataclass
class DagRunTimeline:
    """A finished (or timed-out) DAG run: its state, wall time and task instances as the API reports them."""

    state: str
    wall_s: float
    tasks: list[dict[str, Any]] = field(default_factory=list)
    logs: Path | None = None

    def durations(self) -> dict[str, float]:
        """Seconds from start to end of each finished task instance, by task id."""
        return {t["task_id"]: _seconds(t["start_date"], t["end_date"]) for t in self.tasks if t.get("end_date")}

    def task_seconds(self) -> float:
        """Sum of the task instances' run times (start to end)."""
        return sum(self.durations().values())

    def idle_seconds(self, run_start: str | None = None) -> float:
        """Wall time during which no task of the run was running: scheduling and hand-over between tasks."""
        spans = sorted((_parse(t["start_date"]), _parse(t["end_date"])) for t in self.tasks if t.get("end_date"))
        if not spans:
            return self.wall_s
        busy, current_start, current_end = 0.0, spans[0][0], spans[0][1]
        for start, end in spans[1:]:
            if start > current_end:
                busy += (current_end - current_start).total_seconds()
                current_start, current_end = start, end
            else:
                current_end = max(current_end, end)
        busy += (current_end - current_start).total_seconds()
        return max(0.0, self.wall_s - busy)


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _seconds(start: str, end: str) -> float:
    return (_parse(end) - _parse(start)).total_seconds()


@contextlib.contextmanager
def _environ(overrides: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(overrides)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def settings_for(overrides: dict[str, str]) -> Settings:
    """The Settings the processes started with ``overrides`` (SHOPRANK_* variables) will see."""
    with _environ(overrides):
        return Settings()


def _airflow(args: list[str], env: dict[str, str], log: Path, timeout: float = 300) -> str:
    done = subprocess.run(
        [str(BIN / "airflow"), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"airflow {' '.join(args)} failed (log {log}):\n{(done.stdout + done.stderr)[-3000:]}")
    return done.stdout


def run_daily_dag(overrides: dict[str, str], run_date: date, timeout_s: float = 1800) -> DagRunTimeline:
    """Run shoprank_daily for ``run_date`` through `make airflow`'s processes with the settings ``overrides``; return
    the run's state, wall time (the run's start to end, as Airflow recorded it) and task instances."""
    from orchestration.airflow_ops import ensure_airflow_login, init_airflow

    port = free_port()
    # The cluster profile's Dask (scripts/airflow.sh starts it) on this run's own ports, never another run's.
    dask_ports = {
        "SHOPRANK_SERVICES__DASK_PORT": str(free_port()),
        "SHOPRANK_SERVICES__DASK_DASHBOARD_PORT": str(free_port()),
    }
    overrides = {**dask_ports, **overrides, "SHOPRANK_AIRFLOW__PORT": str(port)}
    settings = settings_for(overrides)
    with _environ(overrides):
        init_airflow(settings)  # login, metadata DB, the dbt pool and manifest (what `make airflow-init` does)
    env = {
        **os.environ,
        **overrides,
        **settings.runtime_env(),
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    }
    logs = settings.home_dir / "logs" / "airflow-run"
    logical = (run_date + timedelta(days=1)).isoformat()
    _airflow(["dags", "reserialize"], env, logs / "reserialize.log")

    base = f"http://127.0.0.1:{port}"
    script = ["bash", str(PROJECT_ROOT / "scripts" / "airflow.sh")]
    with background_server(script, f"{base}/api/v2/version", logs / "airflow.log", env=env, ready_timeout=900):
        credentials = {"username": settings.airflow.admin_user, "password": ensure_airflow_login(settings)}
        token = httpx.post(f"{base}/auth/token", json=credentials, timeout=30).raise_for_status().json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        # Unpaused and triggered only now: a task started before the API server answers fails to reach it.
        httpx.patch(
            f"{base}/api/v2/dags/{DAG_ID}", json={"is_paused": False}, headers=headers, timeout=60
        ).raise_for_status()
        httpx.post(
            f"{base}/api/v2/dags/{DAG_ID}/dagRuns",
            json={"logical_date": f"{logical}T00:00:00Z"},
            headers=headers,
            timeout=60,
        ).raise_for_status()
        deadline = time.monotonic() + timeout_s
        run: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:  # a busy API server may take longer than a poll's timeout: poll again, until the deadline
                runs = httpx.get(f"{base}/api/v2/dags/{DAG_ID}/dagRuns", headers=headers, timeout=120)
                run = runs.raise_for_status().json()["dag_runs"][0]
            except httpx.TimeoutException:
                continue
            if run["state"] in ("success", "failed"):
                break
            time.sleep(2)
        tasks = httpx.get(
            f"{base}/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances",
            headers=headers,
            params={"limit": 200},
            timeout=300,
        ).raise_for_status()
    wall = _seconds(run["start_date"], run["end_date"]) if run.get("end_date") else float("nan")
    return DagRunTimeline(state=run["state"], wall_s=wall, tasks=tasks.json()["task_instances"], logs=logs)
