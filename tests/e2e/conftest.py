"""One real run of shoprank_daily (`airflow dags test`, which calls dag.test()) shared by the end-to-end tests, and a
copy of its home with a second, refused day (the dashboard's browser test)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from shoprank.settings import Settings, get_settings
from tests.support.browser import chromium

BIN = Path(sys.executable).parent


def _airflow(settings: Settings, *args: str, timeout: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings.runtime_env()}
    return subprocess.run(
        [str(BIN / "airflow"), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def daily_run() -> Settings:
    """Prepare Airflow (login, metadata DB) and run the daily DAG for the default run date; return the settings."""
    from orchestration.airflow_ops import init_airflow

    settings = get_settings()
    init_airflow(settings)  # login file + `airflow db migrate`, as `make airflow-init` does

    logical_date = settings.default_run_date + timedelta(days=1)
    run = _airflow(settings, "dags", "test", "shoprank_daily", logical_date.isoformat(), timeout=900)
    log_path = settings.home_dir / "logs" / "dag-test.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(run.stdout + run.stderr)
    assert run.returncode == 0, f"dags test failed (log: {log_path}):\n{(run.stdout + run.stderr)[-6000:]}"
    return settings


@pytest.fixture()
def browser() -> Iterator[Any]:
    """A headless Chromium (tests/support/browser.py), quit after the test."""
    with chromium() as driver:
        yield driver


@contextlib.contextmanager
def _process_env_restored() -> Iterator[None]:
    """The pipeline's functions export their home's paths into os.environ (apply_runtime_env): put the session's
    environment back afterwards, so later tests see the daily run's home, not a copy's."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


def _serve_some_requests(settings: Settings, n_requests: int = 40) -> date:
    """`bentoml serve` over ``settings``' home answers feed requests of the simulated users (its request and
    impression logs land under serving_logs_dir); returns the day they were logged under."""
    import httpx

    from tests.support.processes import background_server, free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, **settings.runtime_env(), "SHOPRANK_SERVING__LOG_FLUSH_SECONDS": "0.5"}
    users = pd.read_parquet(settings.raw_dir / "users", columns=["user_id"])["user_id"].drop_duplicates()
    command = [str(BIN / "bentoml"), "serve", "serving.service:RankingService", "--host", "127.0.0.1"]
    with (
        background_server(
            [*command, "--port", str(port)],
            f"{url}/readyz",
            settings.home_dir / "logs" / "bentoml-serve.log",
            env=env,
            cwd=settings.project_root,
            ready_timeout=120,
        ),
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        for user_id in users.head(n_requests):
            http.post("/rank", json={"user_id": str(user_id), "k": 10}).raise_for_status()
    # Stopping the server flushed its logs.
    partitions = sorted((settings.serving_logs_dir / "requests").glob("dt=*"))
    assert partitions, f"the service logged no request under {settings.serving_logs_dir}"
    return date.fromisoformat(partitions[-1].name.removeprefix("dt="))


@pytest.fixture(scope="session")
def two_day_home(daily_run: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A copy of the daily run's home (its day: every gate passed, the challenger promoted, some feeds served and
    monitored) plus the next day, whose raw events arrive with duplicated event ids: the raw gate quarantines
    them and that day stops there. Built from the pipeline's own functions, not a second DAG run."""
    from producers.simulator import simulate
    from quality.monitoring import online_metrics
    from quality.raw import validate_raw
    from quality.runner import DataQualityError
    from shoprank.raw_contract import partition_path

    home = tmp_path_factory.mktemp("two-day-home")
    shutil.copytree(daily_run.home_dir, home, symlinks=True, dirs_exist_ok=True)
    config = daily_run.airflow_home / "airflow.cfg"  # Airflow wrote the home's absolute paths into it
    (home / "airflow" / "airflow.cfg").write_text(config.read_text().replace(str(daily_run.home_dir), str(home)))
    settings = Settings(home=home)
    refused_day = settings.default_run_date + timedelta(days=1)
    with _process_env_restored():
        online_metrics(settings, _serve_some_requests(settings))
        simulate(settings, refused_day)
        events_path = partition_path(settings.raw_dir, "events", refused_day)
        events = pd.read_parquet(events_path)
        pd.concat([events, events.head(7)], ignore_index=True).to_parquet(events_path, index=False)
        with pytest.raises(DataQualityError):
            validate_raw(settings, refused_day)
    return settings
