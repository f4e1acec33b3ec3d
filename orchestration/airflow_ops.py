"""Operator plumbing: Airflow's login, metadata DB, pool and dbt manifest; the `services` profile's databases; the
glue that renders dbt_project/ as one Airflow task per model (astronomer-cosmos) in the daily DAG.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoprank.databases import ensure_postgres_database
from shoprank.settings import Settings

if TYPE_CHECKING:
    from airflow.sdk import TaskGroup

# DuckDB takes one writer at a time: every dbt task of the daily DAG (any run, backfills included) waits for the one
# slot of this pool, which `make airflow-init` creates.
DBT_POOL = "shoprank_dbt"
DBT_POOL_SLOTS = 1

log = logging.getLogger(__name__)


def step_queue(settings: Settings, step: str) -> str:
    """The Celery queue a daily-DAG step runs on (the LocalExecutor ignores queues): dbt on the queue whose one
    worker runs one task at a time (the warehouse's single writer), the model fits on the training queue."""
    if step == "build-warehouse":
        return settings.airflow.dbt_queue
    if step == "train" or step.startswith("train-"):
        return settings.airflow.training_queue
    return settings.airflow.default_queue


def ensure_airflow_login(settings: Settings) -> str:
    """Write Airflow's simple-auth password file; return the admin password.

    The password is settings.airflow.admin_password when set (from the environment, never the repo); otherwise the
    one already in the file, otherwise a new random one. The file is readable by its owner only.
    """
    path = settings.airflow_passwords_file
    user = settings.airflow.admin_user
    if settings.airflow.admin_password is not None:
        password = settings.airflow.admin_password.get_secret_value()
    elif path.exists():
        password = json.loads(path.read_text()).get(user) or secrets.token_urlsafe(12)
    else:
        password = secrets.token_urlsafe(12)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({user: password}))
    path.chmod(0o600)
    return password


def _run_logged(command: list[str], env: dict[str, str], log_path: Path, what: str) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as out:
        done = subprocess.run(command, env=env, stdout=out, stderr=out)
    if done.returncode != 0:
        tail = log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{what} failed (exit {done.returncode}); see {log_path}:\n{tail}")


def init_airflow(settings: Settings) -> dict[str, str]:
    """Everything Airflow needs before it starts: home, login, metadata DB (created on PostgreSQL), migrations, the
    dbt pool, and (with one task per dbt model) the dbt manifest the daily DAG renders those tasks from."""
    settings.ensure_dirs()
    ensure_airflow_login(settings)
    if settings.profile in ("services", "cluster"):  # the metadata DB (and Celery's results) on PostgreSQL
        ensure_postgres_database(settings, settings.services.airflow_database)
    env = {**os.environ, **settings.runtime_env()}
    airflow = str(Path(sys.executable).with_name("airflow"))
    _run_logged([airflow, "db", "migrate"], env, settings.airflow_home / "db-migrate.log", "airflow db migrate")
    _run_logged(
        [airflow, "pools", "set", DBT_POOL, str(DBT_POOL_SLOTS), "dbt tasks of shoprank_daily: DuckDB has one writer"],
        env,
        settings.airflow_home / "pools.log",
        f"airflow pools set {DBT_POOL}",
    )
    # `dbt parse` takes ~10 s: only for the per-model dbt tasks, when the manifest is missing or older than dbt_project.
    manifest: Path | str = "not needed (settings.airflow.dbt_tasks = build)"
    if settings.airflow.dbt_tasks == "model":
        manifest = parse_dbt_project(settings) if dbt_manifest_problem(settings) else dbt_manifest_path(settings)
    return {
        "airflow_home": str(settings.airflow_home),
        "metadata_db": env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:{settings.airflow_home}/airflow.db"),
        "login_user": settings.airflow.admin_user,
        "password_file": str(settings.airflow_passwords_file),
        "dbt_pool": f"{DBT_POOL} ({DBT_POOL_SLOTS} slot)",
        "dbt_manifest": str(manifest),
    }


def celery_worker_commands(settings: Settings) -> list[list[str]]:
    """The CeleryExecutor's two workers (`make airflow PROFILE=cluster` starts them): one on the dbt queue running a
    single task at a time, one on the default and training queues. Both on loopback: no log server (the API server
    reads task logs from the shared Airflow home)."""
    airflow = [sys.executable, "-m", "orchestration.celery_compat"]  # `airflow`, runnable with celery 5.7
    worker = [*airflow, "celery", "worker", "--skip-serve-logs", "--without-gossip", "--without-mingle"]
    other_queues = dict.fromkeys([settings.airflow.default_queue, settings.airflow.training_queue])
    return [
        [*worker, "--queues", settings.airflow.dbt_queue, "--concurrency", "1", "--celery-hostname", "dbt@%h"],
        [
            *worker,
            "--queues",
            ",".join(other_queues),
            "--concurrency",
            str(settings.airflow.worker_concurrency),
            "--celery-hostname",
            "main@%h",
        ],
    ]


# ---- dbt through astronomer-cosmos -------------------------------------------------------------------------------


def dbt_manifest_path(settings: Settings) -> Path:
    """The manifest the daily DAG is rendered from: `dbt parse`'s output, copied where no dbt run overwrites it
    (a DAG processor reading a half-written manifest.json would record an import error)."""
    return settings.home_dir / "dbt" / "airflow" / "manifest.json"


def parse_dbt_project(settings: Settings) -> Path:
    """`dbt parse` of dbt_project/ (same target, vars and paths as every ShopRank dbt run) and publish its manifest
    atomically at :func:`dbt_manifest_path`. Run again after changing dbt_project/ (`make airflow-init` does)."""
    from warehouse.build import dbt_args

    settings.ensure_dirs()
    env = {**os.environ, **settings.runtime_env()}
    log_path = settings.home_dir / "dbt" / "logs" / "parse.log"
    dbt = str(Path(sys.executable).with_name("dbt"))
    _run_logged([dbt, *dbt_args(settings, "parse")], env, log_path, "dbt parse")
    target = dbt_manifest_path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_suffix(".json.tmp")
    staged.write_bytes((settings.dbt_artifacts_dir / "manifest.json").read_bytes())
    os.replace(staged, target)
    return target


def dbt_manifest_problem(settings: Settings) -> str | None:
    """Why the daily DAG's dbt tasks may not match dbt_project/ (missing or older manifest); None when current."""
    manifest = dbt_manifest_path(settings)
    if not manifest.exists():
        return f"no dbt manifest at {manifest}: the DAG runs the whole `dbt build` as one task; run `make airflow-init`"
    built = manifest.stat().st_mtime
    changed = [
        path.relative_to(settings.dbt_project_dir)
        for pattern in ("models/**/*", "macros/**/*", "tests/**/*", "dbt_project.yml")
        for path in settings.dbt_project_dir.glob(pattern)
        if path.is_file() and path.stat().st_mtime > built
    ]
    if changed:
        shown = ", ".join(str(path) for path in sorted(changed)[:5])
        return f"dbt_project/ changed after the manifest was parsed ({shown}): run `make airflow-init`"
    return None


def dbt_vars(logical_date: datetime | date | str | None) -> str:
    """The ``--vars`` JSON of a DAG run's dbt tasks: var run_date, the day `shoprank build-warehouse` builds for that
    run (the CLI gives dbt the day in the environment instead, warehouse.build.dbt_env, to keep dbt's cached parse).

    Registered as a user-defined macro of the daily DAG, so each cosmos task renders it from its run's logical date.
    """
    from orchestration.pipeline import run_date_for
    from shoprank.settings import get_settings
    from warehouse.build import dbt_args

    settings = get_settings()
    args = dbt_args(settings, "build", run_date_for(logical_date, settings))
    return args[args.index("--vars") + 1]


def release_warehouse(*_: Any, **__: Any) -> None:
    """Cosmos callback after each dbt task: close the DuckDB handle dbt-duckdb keeps in the process.

    `airflow dags test` runs every task in one process; without this, the next task that opens the warehouse
    (validate_marts, Feast's offline store) fails to open the file dbt still holds.
    """
    from warehouse.build import _release_duckdb

    _release_duckdb()


MODEL_TASK_DOC = """`dbt build --select <model>` for the run's day (var `run_date`): the model's unit tests, the model,
then its data tests that read only this model. A failure names the node in the log; fix it and clear this task (the
models downstream wait for it). Outside Airflow: `shoprank build-warehouse --run-date D` builds everything."""


def dbt_task_group(settings: Settings, group_id: str, operator_args: dict[str, Any]) -> TaskGroup | None:
    """dbt_project/ as a cosmos ``DbtTaskGroup`` in the DAG being defined: one `dbt build --select <model>` task per
    model (the model, its unit tests and its single-model data tests), wired along dbt's lineage.

    Rendered from :func:`dbt_manifest_path` (LoadMode.DBT_MANIFEST: no dbt command at parse time) and run with
    dbtRunner in the task's process. None when the manifest is missing (run `make airflow-init`).
    Tests over two models (``relationships``) are not in the model tasks (their other model may not be built yet);
    :func:`run_cross_model_tests` runs them after the last model.
    """
    manifest = dbt_manifest_path(settings)
    if not manifest.exists():
        log.warning("no dbt manifest at %s: run `make airflow-init` (dbt parse) for one task per model", manifest)
        return None

    from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior, TestIndirectSelection

    env = settings.runtime_env()
    # Each task runs dbt in a temporary copy of the project; its artifacts stay there (cosmos keeps the partial-parse
    # cache under AIRFLOW__COSMOS__CACHE_DIR) instead of overwriting the CLI's target directory.
    env["DBT_TARGET_PATH"] = "target"
    # Nothing reads a task's manifest.json / run_results.json; not writing them saves ~0.3 s per task.
    env["DBT_WRITE_JSON"] = "false"
    return DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(
            dbt_project_path=settings.dbt_project_dir,
            manifest_path=manifest,
            install_dbt_deps=False,
            partial_parse=True,
            env_vars=env,
        ),
        profile_config=ProfileConfig(
            profile_name="shoprank",
            target_name=settings.dbt_target_name,
            profiles_yml_filepath=settings.dbt_project_dir / "profiles.yml",
        ),
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.LOCAL,
            invocation_mode=InvocationMode.DBT_RUNNER,
            # Only tests whose every parent is the task's model; two-model tests run after all models.
            test_indirect_selection=TestIndirectSelection.CAUTIOUS,
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST, test_behavior=TestBehavior.BUILD, emit_datasets=False
        ),
        operator_args={
            "vars": "{{ shoprank_dbt_vars(logical_date) }}",
            "callback": release_warehouse,
            "pool": DBT_POOL,
            "doc_md": MODEL_TASK_DOC,
            **operator_args,
        },
    )


def load_raw_for_dbt(run_date: date) -> dict[str, Any]:
    """On the `postgres` dbt target: mirror the raw partitions up to the run's day into the warehouse database, as
    `shoprank build-warehouse` does before its `dbt build` (the DuckDB target reads the parquet files in place)."""
    from shoprank.settings import get_settings
    from warehouse.build import load_raw_to_postgres

    settings = get_settings()
    ensure_postgres_database(settings, settings.services.warehouse_database)
    return load_raw_to_postgres(settings, run_date)


def cross_model_tests(settings: Settings) -> list[str]:
    """Names of the dbt data tests that read more than one model (e.g. ``relationships``), from the DAG's manifest."""
    manifest = json.loads(dbt_manifest_path(settings).read_text())
    return sorted(
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "test"
        and sum(1 for parent in node["depends_on"]["nodes"] if parent.startswith("model.")) > 1
    )


def run_cross_model_tests(run_date: date) -> dict[str, Any]:
    """The daily DAG's last dbt task: the tests spanning two models, once every model of the run is built (on the
    PostgreSQL target, build_warehouse then exports the marts to the build area, as DuckDB's post-hooks did)."""
    from shoprank.settings import get_settings
    from warehouse.build import build_warehouse
    from warehouse.pg_export import export_marts_from_postgres

    settings = get_settings()
    tests = cross_model_tests(settings)
    if tests:
        return build_warehouse(settings, run_date, select=" ".join(tests))
    exports = export_marts_from_postgres(settings) if settings.dbt_target_name == "postgres" else None
    return {"run_date": run_date.isoformat(), "tests": 0, "exports": exports}


# ---- backfill ----------------------------------------------------------------------------------------------------


def backfill_command(first_day: date, last_day: date) -> list[str]:
    """`airflow backfill create` for the daily DAG over the days to process, first to last (inclusive).

    A run stamped D processes day D-1, so the logical dates are one day later. One run at a time: each day's
    simulate/train/promote builds on the day before, as a straight run does. Runs start only while the DAG is
    unpaused; `make backfill` and tests/e2e/test_backfill.py use this command.
    """
    if last_day < first_day:
        raise ValueError(f"backfill: END ({last_day}) is before START ({first_day})")
    one_day = timedelta(days=1)
    return [
        str(Path(sys.executable).with_name("airflow")),
        "backfill",
        "create",
        "--dag-id",
        "shoprank_daily",
        "--from-date",
        (first_day + one_day).isoformat(),
        "--to-date",
        (last_day + one_day).isoformat(),
        "--max-active-runs",
        "1",
        "--reprocess-behavior",
        "completed",
    ]
