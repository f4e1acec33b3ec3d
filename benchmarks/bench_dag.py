"""`make bench-dag`: one day's wall time on `shoprank run`, on the LocalExecutor and on the CeleryExecutor (real
scheduler, `make airflow`'s processes), and the share of the DAG's wall time that is Airflow's overhead.

Each mode processes the same day in a fresh home under var/bench-dag/ (or $SHOPRANK_HOME/bench-dag), so each does
the same work (the day's first build). `--modes parse` first times what each task process pays to parse the DAG
file with one `dbt build` task and with a task per dbt model. The DAG's wall time is the run's start to end as
Airflow records it; the overhead is that minus `shoprank run`'s wall time, split into time with no task running
(scheduling and hand-over between tasks) and time inside tasks beyond the step's own work (process start, DAG parse,
imports, reporting).
The CeleryExecutor mode uses the cluster profile with the DuckDB warehouse target, PostgreSQL (its own metadata
database, dropped after) and Redis (its own key prefix): `make services-up` first. As on `make airflow
PROFILE=cluster`, its train task fits through xgboost.dask on a loopback Dask (two one-thread workers): each mode's
line "train engine" says which fit its day's model had. A DAG run may take `--timeout-s` (default: 30 minutes, plus
an hour per 10M events). A tiny world (`--events 30000`, to try the bench) trips the drift gate on small samples:
run it with SHOPRANK_QUALITY__DRIFT_BLOCK_PSI=1.0, as the tests do. Printed, never asserted; the machine may be
shared, so the load average is printed with each figure.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import line

ROOT = Path(__file__).resolve().parents[1]
STAGE_DONE = re.compile(r"stage \[\d+/\d+\] (\S+) done in ([0-9.]+) s")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes and their reaped descendants so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def straight_run(home: Path, overrides: dict[str, str], day: str) -> tuple[float, dict[str, float]]:
    """`shoprank run --run-date day` in its own process: (wall seconds, seconds per step from its progress log)."""
    from tests.support.airflow_run import settings_for

    env = {**os.environ, **overrides, **settings_for(overrides).runtime_env()}
    log = home / "shoprank-run.log"
    started = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(
            [str(Path(sys.executable).with_name("shoprank")), "run", "--run-date", day],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"shoprank run failed (log {log})")
    steps = {name: float(seconds) for name, seconds in STAGE_DONE.findall(log.read_text(errors="replace"))}
    return wall, steps


def _engine(overrides: dict[str, str]) -> str:
    """How the day's train step fitted its models (the candidate card's engine and Dask workers)."""
    import json

    from tests.support.airflow_run import settings_for

    settings = settings_for(overrides)
    card = settings.home_dir / "models" / "candidates" / str(settings.default_run_date) / "candidate.json"
    if not card.exists():
        return "no candidate card"
    fields = json.loads(card.read_text())
    workers = f" on {fields['dask_workers']} Dask workers" if fields.get("dask_workers") else ""
    return f"{fields.get('engine', 'xgboost')}{workers}"


def _report(name: str, timeline, run_wall: float | None, steps: dict[str, float], cpu: float) -> None:
    """The DAG run's figures; against `shoprank run` (ratio, overhead) only when that ran in this invocation."""
    tasks = len(timeline.tasks)
    in_tasks = timeline.task_seconds()
    idle = timeline.idle_seconds()
    ratio = f"; {timeline.wall_s / run_wall:.2f}x" if run_wall else ""
    line(f"{name}: wall", f"{timeline.wall_s:.1f} s ({timeline.state}, {tasks} tasks{ratio})")
    if run_wall:
        overhead = timeline.wall_s - run_wall
        share = f"{overhead / timeline.wall_s:.0%} of the DAG's wall"
        line(f"{name}: overhead vs shoprank run", f"{overhead:.1f} s ({share})")
    line(f"{name}: no task running", f"{idle:.1f} s ({idle / max(tasks, 1):.1f} s per task)")
    line(f"{name}: sum of task run times", f"{in_tasks:.1f} s")
    if steps:
        work = sum(steps.values())
        line(
            f"{name}: in tasks beyond the steps' work",
            f"{in_tasks - work:.1f} s ({(in_tasks - work) / max(tasks, 1):.1f} s/task)",
        )
    durations = sorted(timeline.durations().items(), key=lambda item: -item[1])
    line(f"{name}: longest tasks", ", ".join(f"{task} {seconds:.1f} s" for task, seconds in durations[:4]))
    line(f"{name}: every task", ", ".join(f"{task} {seconds:.1f}" for task, seconds in durations))
    line(f"{name}: CPU of its processes", f"{cpu:.0f} s (Airflow's start and stop included)")
    line(f"{name}: load average", _load())


PARSE = """
import time
from airflow.dag_processing.dagbag import DagBag
from shoprank.settings import get_settings
started = time.perf_counter()
bag = DagBag(dag_folder=str(get_settings().dags_dir / "shoprank_daily.py"))
assert not bag.import_errors, bag.import_errors
print(len(bag.dags["shoprank_daily"].tasks), time.perf_counter() - started)
"""


def parse_cost(home: Path, overrides: dict[str, str]) -> None:
    """What a task process pays first: parsing the DAG file in a fresh interpreter, the imports it triggers included
    (cosmos and dbt for the per-model tasks; the LocalExecutor's forkserver preloads them, a Celery worker does not),
    per dbt_tasks mode."""
    from orchestration.airflow_ops import parse_dbt_project
    from tests.support.airflow_run import settings_for

    overrides = {**overrides, "SHOPRANK_HOME": str(home)}
    parse_dbt_project(settings_for({**overrides, "SHOPRANK_AIRFLOW__DBT_TASKS": "model"}))  # the manifest it renders
    for mode in ("build", "model"):
        env = {**os.environ, **overrides, "SHOPRANK_AIRFLOW__DBT_TASKS": mode}
        env.update(settings_for(env).runtime_env())
        done = subprocess.run([sys.executable, "-c", PARSE], env=env, capture_output=True, text=True, check=True)
        tasks, seconds = done.stdout.split()[-2:]
        line(
            f"DAG parse + its imports, dbt_tasks={mode}",
            f"{float(seconds):.2f} s x {tasks} tasks = {float(seconds) * int(tasks):.0f} s a day (load {_load()})",
        )


def _drop_database(overrides: dict[str, str], database: str) -> None:
    import psycopg
    from psycopg import sql

    from tests.support.airflow_run import settings_for

    url = settings_for(overrides).services.postgres_url("postgres", driver="postgresql")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=0, help="simulated events over the window (0: default size)")
    parser.add_argument("--modes", default="parse,run,local,celery", help="comma list of parse, run, local, celery")
    parser.add_argument("--timeout-s", type=float, default=None, help="per DAG run (default: 1800 + 3600 per 10M)")
    args = parser.parse_args()
    timeout_s = args.timeout_s or 1800 + 3600 * args.events / 10_000_000
    from tests.support.airflow_run import run_daily_dag, settings_for

    base = Path(os.environ.get("SHOPRANK_HOME", ROOT / "var")) / "bench-dag"
    shutil.rmtree(base, ignore_errors=True)
    sizes = {"SHOPRANK_SIMULATOR__EVENTS": str(args.events)} if args.events else {}
    day = settings_for({}).default_run_date
    modes = args.modes.split(",")
    print(f"== bench-dag: day {day}, {args.events or 'default'} events, load {_load()}", flush=True)

    if "parse" in modes:
        parse_cost(base / "parse", sizes)
    if not {"run", "local", "celery"} & set(modes):
        return
    run_wall: float | None = None
    steps: dict[str, float] = {}
    if "run" in modes:  # without it (e.g. one executor per invocation), no ratio to shoprank run is printed
        home = base / "run"
        home.mkdir(parents=True)
        cpu = _children_cpu()
        run_wall, steps = straight_run(home, {**sizes, "SHOPRANK_HOME": str(home)}, day.isoformat())
        line("shoprank run: wall", f"{run_wall:.1f} s (steps {sum(steps.values()):.1f} s; load {_load()})")
        line("shoprank run: CPU", f"{_children_cpu() - cpu:.0f} s")

    if "local" in modes:
        overrides = {**sizes, "SHOPRANK_HOME": str(base / "local"), "SHOPRANK_PROFILE": "local"}
        cpu = _children_cpu()
        timeline = run_daily_dag(overrides, day, timeout_s=timeout_s)
        _report("LocalExecutor", timeline, run_wall, steps, _children_cpu() - cpu)
        line("LocalExecutor: train engine", _engine(overrides))
    if "celery" in modes:
        suffix = secrets.token_hex(4)
        overrides = {
            **sizes,
            "SHOPRANK_HOME": str(base / "celery"),
            "SHOPRANK_PROFILE": "cluster",
            "SHOPRANK_DBT_TARGET": "duckdb",  # the Spark target is the cluster profile's at scale (issue 18 part B)
            "SHOPRANK_SERVICES__AIRFLOW_DATABASE": f"shoprank_bench_airflow_{suffix}",
            "SHOPRANK_AIRFLOW__CELERY_KEY_PREFIX": f"shoprank:bench-{suffix}:",
        }
        try:
            cpu = _children_cpu()
            timeline = run_daily_dag(overrides, day, timeout_s=timeout_s)
            _report("CeleryExecutor", timeline, run_wall, steps, _children_cpu() - cpu)
            line("CeleryExecutor: train engine", _engine(overrides))
        finally:
            _drop_database(overrides, overrides["SHOPRANK_SERVICES__AIRFLOW_DATABASE"])


if __name__ == "__main__":
    main()
