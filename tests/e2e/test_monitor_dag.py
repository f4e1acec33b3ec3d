"""shoprank_monitor, run for real after the daily DAG: three reports about the run's day."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from shoprank.settings import Settings
from tests.e2e.conftest import _airflow

pytestmark = pytest.mark.e2e


def test_monitor_dag_reports_feature_and_score_drift_for_the_day(daily_run: Settings):
    logical = f"{daily_run.default_run_date + timedelta(days=1)}T06:00:00+00:00"
    run = _airflow(daily_run, "dags", "test", "shoprank_monitor", logical, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    state = _airflow(daily_run, "dags", "state", "shoprank_monitor", logical, timeout=120)
    assert state.stdout.strip().splitlines()[-1] == "success", state.stdout + state.stderr

    reports = daily_run.home_dir / "monitoring" / daily_run.default_run_date.isoformat()
    features = json.loads((reports / "feature_drift.json").read_text())
    assert features["current_rows"] > 0 and features["features"]
    scores = json.loads((reports / "score_drift.json").read_text())
    assert scores["psi"] >= 0 and scores["current"]["rows"] == features["current_rows"]
    assert (reports / "online_metrics.json").exists()
