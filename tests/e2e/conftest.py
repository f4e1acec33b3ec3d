"""One real run of shoprank_daily (`airflow dags test`, which calls dag.test()) shared by the end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from shoprank.settings import Settings, get_settings

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
