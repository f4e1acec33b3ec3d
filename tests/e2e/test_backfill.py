"""Airflow 3's backfill of shoprank_daily over three days, on a real scheduler (LocalExecutor) and API server, equals a
straight run of the same days through orchestration.pipeline in another home.

The scheduler runs with `[scheduler] use_job_schedule = False`: it starts queued runs (the backfill's) but creates
no scheduled or asset-triggered ones, so unpausing the DAG (backfill runs do not start while it is paused) does not
also start today's run (catchup=False) in the same home. The test checks that no such run appeared.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest

from shoprank.mart_files import build_files
from shoprank.settings import Settings
from tests.support.processes import background_server, free_port

# Three DAG runs one after the other on the LocalExecutor (the test's setup), then the comparisons.
pytestmark = [pytest.mark.e2e, pytest.mark.backfill, pytest.mark.timeout(2400)]

BIN = Path(sys.executable).parent
DAG_ID = "shoprank_daily"
RUN_TIMEOUT_S = 2100  # three DAG runs one after the other, 14 tasks each (dbt one `dbt build` task)


# The smallest marketplace whose runs still pass the gates, train and promote (the test's time is mostly per-task
# overhead: 14 tasks a day, each its own process). Both homes use it.
SIZES = {
    "SHOPRANK_SIMULATOR__USERS": "200",
    "SHOPRANK_SIMULATOR__ITEMS": "150",
    "SHOPRANK_SIMULATOR__SELLERS": "20",
    "SHOPRANK_SIMULATOR__REQUESTS_PER_DAY": "250",
    "SHOPRANK_TRAINING__N_ESTIMATORS": "30",
}


def _days(settings: Settings) -> list[date]:
    """The three days the test processes: the last three of the default window (the first needs a full window)."""
    last = settings.default_run_date
    return [last - timedelta(days=2), last - timedelta(days=1), last]


def _run(command: list[str], env: dict[str, str], timeout: int, log_path: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(done.stdout + done.stderr)
    assert done.returncode == 0, f"{' '.join(command)} failed (log: {log_path}):\n{(done.stdout + done.stderr)[-4000:]}"
    return done


def _token(base: str, settings: Settings) -> dict[str, str]:
    from orchestration.airflow_ops import ensure_airflow_login

    credentials = {"username": settings.airflow.admin_user, "password": ensure_airflow_login(settings)}
    response = httpx.post(f"{base}/auth/token", json=credentials, timeout=30)
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _dag_runs(base: str, headers: dict[str, str]) -> list[dict]:
    response = httpx.get(f"{base}/api/v2/dags/{DAG_ID}/dagRuns", headers=headers, params={"limit": 100}, timeout=30)
    response.raise_for_status()
    return response.json()["dag_runs"]


def _start_straight_run(settings: Settings) -> subprocess.Popen[bytes]:
    """The three days one after the other without Airflow: orchestration.pipeline.run_all per day, in one process."""
    days = [day.isoformat() for day in _days(settings)]
    code = (
        "import sys, datetime; from orchestration.pipeline import run_all\n"
        "for day in sys.argv[1:]: run_all(datetime.date.fromisoformat(day))"
    )
    log_path = settings.home_dir / "logs" / "straight-run.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [str(BIN / "python"), "-c", code, *days],
            env={**os.environ, **SIZES, **settings.runtime_env()},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _backfill(settings: Settings) -> list[dict]:
    """`airflow backfill create` (what `make backfill` runs) on a real scheduler and API server; the final runs."""
    from orchestration.airflow_ops import backfill_command, init_airflow

    init_airflow(settings)  # login, metadata DB, dbt pool, dbt manifest
    logs = settings.home_dir / "logs"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        **SIZES,
        **settings.runtime_env(),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    }
    airflow = str(BIN / "airflow")
    # The scheduler needs the DAG serialized; no DAG processor runs here (each task parses its own file).
    _run([airflow, "dags", "reserialize"], env, 300, logs / "reserialize.log")
    _run([airflow, "dags", "unpause", DAG_ID], env, 120, logs / "unpause.log")
    # Created before the servers start: on SQLite, a third writer next to them can meet "database is locked".
    days = _days(settings)
    _run(backfill_command(days[0], days[-1]), env, 300, logs / "backfill-create.log")

    health_port = free_port()
    scheduler_env = {
        **env,
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(health_port),
    }
    api = [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    scheduler = [airflow, "scheduler", "--skip-serve-logs"]
    with (
        background_server(api, f"{base}/api/v2/version", logs / "api-server.log", env=env, ready_timeout=120),
        background_server(
            scheduler, f"http://127.0.0.1:{health_port}/health", logs / "scheduler.log", env=scheduler_env
        ),
    ):
        headers = _token(base, settings)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while True:
            runs = _dag_runs(base, headers)
            finished = [r for r in runs if r["state"] in ("success", "failed")]
            if len(finished) >= len(days) or any(r["state"] == "failed" for r in runs):
                return runs
            if time.monotonic() > deadline:
                return runs
            time.sleep(5)


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, list[dict], Settings]:
    """(backfill home, its DAG runs, straight-run home). The straight run goes on while Airflow backfills."""
    backfilled = Settings(home=tmp_path_factory.mktemp("backfill-home"))
    straight = Settings(home=tmp_path_factory.mktemp("straight-home"))
    process = _start_straight_run(straight)
    try:
        runs = _backfill(backfilled)
        returncode = process.wait(timeout=RUN_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = (straight.home_dir / "logs" / "straight-run.log").read_text(errors="replace")
    assert returncode == 0, f"straight run failed:\n{log[-4000:]}"
    return backfilled, runs, straight


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.parquet"))
    }


def _sorted_frame(path: Path) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


CARD_FIELDS = ("metrics", "train_rows", "holdout_rows", "train_window", "validation_window", "holdout_window")


def _models(settings: Settings) -> tuple[dict[str, dict], list[tuple[str, str | None]]]:
    """Per trained day: holdout metrics, training rows and windows; and the registry's events as (action, day)."""
    candidates = settings.home_dir / "models" / "candidates"
    cards, day_of_tag = {}, {}
    for day_dir in sorted(candidates.iterdir()):
        card = json.loads((day_dir / "candidate.json").read_text())
        cards[day_dir.name] = {field: card[field] for field in CARD_FIELDS}
        day_of_tag[json.loads((day_dir / "registered.json").read_text())["tag"]] = day_dir.name
    registry = json.loads((settings.home_dir / "models" / "registry.json").read_text())
    events = [(event["action"], day_of_tag.get(event["tag"])) for event in registry["events"]]
    return cards, events + [("champion", day_of_tag.get(registry["champion"]))]


def test_backfill_runs_exactly_the_three_days_and_no_scheduled_run(homes):
    settings, runs, _ = homes
    states = {r["logical_date"][:10]: (r["run_type"], r["state"]) for r in runs}
    expected = {(day + timedelta(days=1)).isoformat(): ("backfill", "success") for day in _days(settings)}
    # Nothing else: in particular no scheduled run for today (the DAG is unpaused, catchup=False).
    assert states == expected, json.dumps(runs, indent=1, default=str)[-4000:]


def test_backfill_equals_a_straight_run(homes):
    settings, _, straight = homes
    days = _days(settings)
    # Raw partitions: the same files, byte for byte, and no day outside the backfilled window.
    raw = _digests(settings.raw_dir)
    assert raw == _digests(straight.raw_dir)
    newest = max(part.split("dt=")[1][:10] for part in raw)
    assert newest == days[-1].isoformat()

    # Marts: the same rows.
    def mart_names(snapshot: Path) -> list[str]:  # single files and the day files of day-partitioned marts
        root = snapshot.resolve()
        return [p.relative_to(root).as_posix() for p in build_files(root)]

    marts = mart_names(settings.marts_export_dir)
    assert marts and marts == mart_names(straight.marts_export_dir)
    for name in marts:
        pd.testing.assert_frame_equal(
            _sorted_frame(settings.marts_export_dir / name), _sorted_frame(straight.marts_export_dir / name)
        )

    # Models: one candidate per day, with the same holdout metrics, training rows and windows; the same promotions.
    cards, events = _models(settings)
    assert sorted(cards) == [day.isoformat() for day in days]
    assert (cards, events) == _models(straight)
    assert events[-1][1] is not None  # a champion was promoted
