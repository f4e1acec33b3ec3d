"""The real DAG halts at validate_raw on an injected raw fault, keeps the champion, and recovers after a release.

Runs in a copy of the home the daily run left behind (its raw data, marts, feature store and registered model),
with its own Airflow metadata DB, so the daily run's own checks are not disturbed. `simulate` is marked success
(`--mark-success-pattern`): it would rewrite the raw partitions and erase the injected fault.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from shoprank.raw_contract import partition_path
from shoprank.settings import Settings
from tests.e2e.conftest import _airflow

pytestmark = pytest.mark.e2e

SKIP_SIMULATE = "^simulate$"


def _model_store_digest(settings: Settings) -> dict[str, str]:
    store = settings.model_store_dir / "models"
    return {
        str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _task_states(settings: Settings, logical_date: str) -> dict[str, str]:
    listed = _airflow(
        settings, "tasks", "states-for-dag-run", "shoprank_daily", logical_date, "--output", "json", timeout=120
    )
    assert listed.returncode == 0, listed.stdout[-2000:] + listed.stderr[-2000:]
    rows = json.loads(listed.stdout[listed.stdout.index("[") :])
    return {row["task_id"]: row["state"] for row in rows}


def _run_dag(settings: Settings, logical_date: str, log_name: str) -> subprocess.CompletedProcess[str]:
    run = _airflow(
        settings,
        "dags",
        "test",
        "shoprank_daily",
        logical_date,
        "--mark-success-pattern",
        SKIP_SIMULATE,
        timeout=900,
    )
    (settings.home_dir / "logs").mkdir(parents=True, exist_ok=True)
    (settings.home_dir / "logs" / log_name).write_text(run.stdout + run.stderr)
    return run


@pytest.fixture(scope="module")
def faulty_home(daily_run: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("faulty-home")
    for part in ("raw", "warehouse", "feast", "bentoml", "dbt"):  # dbt: the manifest the DAG renders its dbt tasks from
        if (daily_run.home_dir / part).exists():
            shutil.copytree(daily_run.home_dir / part, home / part, symlinks=True)
    settings = Settings(home=home)
    settings.ensure_dirs()
    migrated = _airflow(settings, "db", "migrate", timeout=300)
    assert migrated.returncode == 0, migrated.stdout[-3000:] + migrated.stderr[-3000:]
    return settings


def test_raw_fault_halts_the_dag_at_validate_raw_then_release_recovers(faulty_home: Settings) -> None:
    settings = faulty_home
    run_date = settings.default_run_date
    logical_date = (run_date + timedelta(days=1)).isoformat()
    champion_before = _model_store_digest(settings)
    assert champion_before, "the daily run registered no model to protect"

    # Inject: duplicated event_ids in the run's day.
    events_path = partition_path(settings.raw_dir, "events", run_date)
    events = pd.read_parquet(events_path)
    pd.concat([events, events.head(7)], ignore_index=True).to_parquet(events_path, index=False)

    failed = _run_dag(settings, logical_date, "dag-test-raw-fault.log")
    log = failed.stdout + failed.stderr
    states = _task_states(settings, logical_date)
    assert states["validate_raw"] == "failed", states
    downstream = [t for t in states if t not in ("simulate", "validate_raw")]
    assert downstream and all(states[t] == "upstream_failed" for t in downstream), states
    # The task log names the suite, table, partition and failed expectation.
    assert "raw.events" in log and f"dt={run_date}" in log and "expect_column_values_to_be_unique" in log, log[-4000:]
    assert _model_store_digest(settings) == champion_before  # the champion is untouched

    # Operator: inspect, fix, release, re-run.
    shoprank = str(Path(sys.executable).with_name("shoprank"))
    env = {**os.environ, **settings.runtime_env()}
    listed = subprocess.run([shoprank, "quarantine", "list"], env=env, capture_output=True, text=True, check=True)
    (entry,) = json.loads(listed.stdout)
    assert (entry["table"], entry["dt"]) == ("events", run_date.isoformat())
    held = Path(entry["path"]) / "part-0.parquet"
    pd.read_parquet(held).drop_duplicates("event_id").to_parquet(held, index=False)
    released = subprocess.run(
        [shoprank, "quarantine", "release", "--table", "events", "--dt", run_date.isoformat()],
        env=env,
        capture_output=True,
        text=True,
    )
    assert released.returncode == 0, released.stderr

    succeeded = _run_dag(settings, logical_date, "dag-test-after-release.log")
    states = _task_states(settings, logical_date)
    assert set(states.values()) == {"success"}, (states, (succeeded.stdout + succeeded.stderr)[-4000:])
    raw_result = json.loads((settings.quality_dir / f"raw-{run_date}.json").read_text())
    assert raw_result["success"] is True
    # The earlier model's weights are still there, byte for byte, next to whatever the re-run registered (its
    # model.yaml may change: promotion relabels the previous champion).
    after = _model_store_digest(settings)
    weights = {
        path: digest
        for path, digest in champion_before.items()
        if len(Path(path).parts) == 3 and Path(path).name != "model.yaml"  # <model>/<version>/<file>, not `latest`
    }
    assert weights and all(after.get(path) == digest for path, digest in weights.items())
