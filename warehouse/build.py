"""Build the warehouse: ``dbt build`` (models, unit tests and data tests) of dbt_project/, in process (on the
``spark`` target: a subprocess of the Spark venv's dbt, warehouse/spark.py).

The marts are incremental tables in the DuckDB warehouse, rewritten per day partition (delete+insert on ``dt``): a
run for day D rewrites only the partitions D owns, so re-running or backfilling a day is safe and leaves the other
days alone. A run reads only what those partitions need (dbt_project/macros/incremental.sql: run_start): the daily
run reads day D's raw event partition alone into ``stg_events`` and the incremental daily aggregates ``int_*_daily``
(their stored days are final), which the 7- and 30-day windows read; older raw partitions are never opened, and the
data tests check the rewritten partitions only. A raw partition re-landed with other content since the last build
(:func:`relanded_from`) makes the run rewrite from its day on. A first run or ``full_refresh`` reads everything.
After each mart is written, a post-hook exports it to ``settings.marts_build_dir/<model>.parquet`` (the large
impression marts: one file per day, ``<model>/dt=YYYY-MM-DD.parquet``, only the days the run rewrote; see
shoprank/mart_files.py and warehouse/day_exports.py): the build area the gates judge (on the PostgreSQL target,
warehouse.pg_export writes the same files after the build;
on Spark, warehouse.spark.collect_exports joins the parquet parts Spark wrote).
Feast, training and serving read the published marts (``settings.marts_export_dir``),
which only the `publish` step updates, after the last gate (warehouse.publish).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from shoprank.feature_contract import exported_views
from shoprank.mart_files import mart_path
from shoprank.resources import MemoryBudgetError, budget_error, duckdb_connect, out_of_memory
from shoprank.settings import Settings, apply_runtime_env
from warehouse.day_exports import finish_day_exports, prepare_day_exports
from warehouse.dbt_log import DBT_LOGGERS_OFF, DbtEventLog

MARTS = ("user_features", "item_features", "training_examples")
# Every mart dbt exports to parquet on the DuckDB target (macros/incremental.sql: export_mart): the feature
# contract's views (Feast's offline sources), the training examples, the query match and serving's retrieval marts.
EXPORTED_MARTS = tuple(
    dict.fromkeys(
        (
            *MARTS,
            *exported_views(),
            "query_item_match",
            "retrieval_covisitation",
            "retrieval_trending",
            "retrieval_user_recent",
        )
    )
)


# dbt's message when an incremental mart's stored columns differ from its SQL's (on_schema_change: fail), e.g. after
# an upgrade adds a feature column: the operator's way out, which keeps the published marts serving meanwhile.
SCHEMA_CHANGE_HINT = (
    " -- a mart's column set changed: rebuild all history with `shoprank build-warehouse --full-refresh` "
    "(the published marts keep serving until the rebuilt ones pass the gates and `publish` swaps them in)"
)


class WarehouseBuildError(RuntimeError):
    """dbt build failed; ``failures`` lists (node, status, message) of every failed node."""

    def __init__(self, message: str, failures: list[tuple[str, str, str]] | None = None) -> None:
        super().__init__(message)
        self.failures = failures or []


class WarehouseBudgetError(WarehouseBuildError, MemoryBudgetError):
    """dbt build ran out of DuckDB memory even spilling: the message names settings.resources.memory_budget_gib."""


def _budget_failure(settings: Settings, run_date: date | None, texts: list[str]) -> WarehouseBudgetError | None:
    """The budget error when any of ``texts`` (dbt's node messages, its exception) is DuckDB's "Out of Memory"."""
    said = next((line for text in texts for line in text.splitlines() if out_of_memory(line)), None)
    if said is None:
        return None
    message = str(budget_error(settings, f"dbt build for run_date={run_date}", said.strip()))
    return WarehouseBudgetError(message)


def _release_duckdb() -> None:
    """Close the DuckDB database dbt-duckdb keeps open in this process after a run.

    Otherwise the warehouse file stays locked by the dbt handle: a later read_only connection (validation, Feast's
    DuckDB offline store, a test) in the same process fails with "Can't open a connection to same database file
    with a different configuration".
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # another adapter
        return
    with DuckDBConnectionManager._LOCK:
        environment = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
    if environment is not None:
        environment.close()


# The run's day for dbt when no var run_date is given (dbt_project/macros/shoprank.sql: run_date_value).
RUN_DATE_ENV = "SHOPRANK_RUN_DATE"


def dbt_env(run_date: date | None) -> dict[str, str]:
    """The environment giving dbt the run's day (empty: the latest event date), as `shoprank build-warehouse` runs it.

    The day travels in the environment, read only when dbt executes, not as ``--vars``: the command line's vars are
    part of dbt's parse state, so a new day's var made every daily run re-parse the whole project. From a shell:
    ``SHOPRANK_RUN_DATE=2026-01-08 dbt build <dbt_args(settings, "build")>`` (or ``--vars '{"run_date": ...}'``, which
    takes precedence and costs the re-parse).
    """
    return {RUN_DATE_ENV: run_date.isoformat() if run_date is not None else ""}


@contextmanager
def _run_day_in_env(run_date: date | None, relanded: date | None = None) -> Iterator[None]:
    """:func:`dbt_env` and the re-landed day (:func:`relanded_from`) in this process's environment for the dbt run
    (in process, or its Spark subprocess)."""
    values = {**dbt_env(run_date), RELANDED_ENV: relanded.isoformat() if relanded is not None else ""}
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# The earliest raw day re-landed since the last build (dbt_project/macros/incremental.sql: relanded_start).
RELANDED_ENV = "SHOPRANK_RELANDED_FROM"
# Where a build that ran stg_events lists the raw files as it read them:
# {path under raw_dir: [mtime_ns, size, sha256]}.
RAW_FILES_BUILT = "raw_files_built.json"


def _raw_files_built_path(settings: Settings) -> Path:
    return settings.dbt_artifacts_dir.parent / RAW_FILES_BUILT


def _built_raw_files(settings: Settings) -> dict[str, list[Any]] | None:
    path = _raw_files_built_path(settings)
    return json.loads(path.read_text()) if path.exists() else None


def raw_file_states(settings: Settings, known: dict[str, list[Any]] | None = None) -> dict[str, list[Any]]:
    """{raw file path relative to raw_dir: [mtime in ns, size, sha256]} of every raw partition file (all tables).

    A file whose mtime and size equal ``known``'s keeps its recorded digest; any other is read and hashed (the
    simulator rewrites its whole window every day with the same bytes: its content decides, not its mtime)."""
    known = known or {}
    states: dict[str, list[Any]] = {}
    for path in sorted(settings.raw_dir.glob("*/dt=*/*.parquet")):
        name = path.relative_to(settings.raw_dir).as_posix()
        stat = path.stat()
        before = known.get(name)
        if before is not None and before[:2] == [stat.st_mtime_ns, stat.st_size]:
            digest = before[2]
        else:
            with path.open("rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
        states[name] = [stat.st_mtime_ns, stat.st_size, digest]
    return states


def _file_day(name: str) -> date | None:
    folder = name.split("/")[1] if name.count("/") >= 2 else ""
    try:
        return date.fromisoformat(folder.removeprefix("dt="))
    except ValueError:
        return None


def relanded_from(built: dict[str, list[Any]] | None, states: dict[str, list[Any]]) -> date | None:
    """The earliest day whose raw partition (any table) was re-landed since the last build that read the raw data
    (``built``: its :func:`raw_file_states`): a file whose content changed (sha256), added or removed, on a day that
    build had already seen (at most its newest day; a later day is new data, which the daily run reads anyway).
    None without that build's list (a first build, a home built before the list existed). An incremental run then
    also rewrites from that day on, what a backfill of it would and every later day (macros/incremental.sql:
    relanded_start), so a corrected partition is picked up by the next daily run."""
    if not built:
        return None
    seen = [day for day in map(_file_day, built) if day is not None]
    if not seen:
        return None
    newest = max(seen)
    changed = [
        day
        for name in states.keys() | built.keys()
        if (states[name][2] if name in states else None) != (built[name][2] if name in built else None)
        and (day := _file_day(name)) is not None
        and day <= newest
    ]
    return min(changed, default=None)


def dbt_args(settings: Settings, command: str, run_date: date | None = None) -> list[str]:
    """The CLI arguments every dbt invocation of ShopRank uses (also handy for `dbt` in a shell).

    ``run_date`` becomes var run_date (the Airflow tasks' way); `shoprank build-warehouse` leaves it out and gives
    the day in the environment instead (:func:`dbt_env`), so the day's run reuses dbt's cached parse.
    """
    dbt_vars: dict[str, Any] = {"n_categories": settings.simulator.categories}
    if run_date is not None:
        dbt_vars["run_date"] = run_date.isoformat()
    return [
        command,
        "--project-dir",
        str(settings.dbt_project_dir),
        "--profiles-dir",
        str(settings.dbt_project_dir),
        "--target",
        settings.dbt_target_name,
        "--target-path",
        str(settings.dbt_artifacts_dir),
        "--vars",
        json.dumps(dbt_vars),
    ]


# Where a build that ran every unit test records the fingerprint they passed on (:func:`unit_tests_fingerprint`).
UNIT_TESTS_PASSED = "unit_tests_passed.sha256"


def unit_tests_fingerprint(settings: Settings) -> str:
    """sha256 of what dbt's unit tests depend on: the project's models, macros, tests and yml files, the dbt
    version, the target and the vars (not the paths: a home copied elsewhere keeps it). The SQL does not change from
    day to day, so a daily run whose fingerprint equals the last passing run's skips the unit tests
    (:func:`build_warehouse`)."""
    from dbt.version import __version__ as dbt_version

    args = dbt_args(settings, "build")
    dbt_vars = args[args.index("--vars") + 1]
    digest = hashlib.sha256(json.dumps([dbt_version, settings.dbt_target_name, dbt_vars]).encode())
    root = settings.dbt_project_dir
    files = [path for path in root.glob("*.y*ml") if path.is_file()]
    for folder in ("models", "macros", "tests", "seeds", "snapshots"):
        files += [path for path in (root / folder).rglob("*") if path.is_file()]
    for path in sorted(files):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _unit_tests_passed_path(settings: Settings) -> Path:
    return settings.dbt_artifacts_dir.parent / UNIT_TESTS_PASSED


def _skip_unit_tests(settings: Settings, full_refresh: bool, fingerprint: str) -> bool:
    """True on an incremental run of a warehouse whose unit tests already passed on this very project (same
    fingerprint): they test the models' SQL on fixed fixtures, not the day's data. A first build, a full refresh and
    any change to the project's SQL or yml run them."""
    marker = _unit_tests_passed_path(settings)
    if full_refresh or not marker.exists():
        return False
    if settings.dbt_target_name == "duckdb" and not settings.warehouse_path.exists():
        return False  # a first build
    return marker.read_text().strip() == fingerprint


@dataclass(frozen=True)
class NodeResult:
    """One node of a dbt run: model, test, unit test or hook (resource type "operation")."""

    unique_id: str
    resource_type: str
    status: str
    message: str
    compiled_code: str = ""  # a test's SQL, which returns its failing rows


def _failing_rows(settings: Settings, sql: str, limit: int = 5) -> str:
    """A failed data test's first rows on DuckDB, for the error: dbt's own message only counts them, and a test over
    several columns (not_null_columns) names the failing column in its rows."""
    import duckdb

    try:
        with duckdb_connect(settings, settings.warehouse_path, read_only=True) as con:  # the budget, UTC (as dbt's)
            cursor = con.execute(f"select * from ({sql}) as failing limit {limit}")
            names = [column[0] for column in cursor.description or []]
            rows = cursor.fetchall()
    except duckdb.Error as error:  # the error names the test either way
        return f"(not read: {str(error).splitlines()[0]})"
    return "; ".join(", ".join(f"{name}={value}" for name, value in zip(names, row, strict=True)) for row in rows)


def _run_dbt_in_process(settings: Settings, args: list[str]) -> tuple[bool, list[NodeResult], BaseException | None]:
    """dbt in this process (DuckDB, PostgreSQL): (success, the nodes' results, the exception that stopped it).

    dbt writes no JSON artifacts here (``--no-write-json``): its manifest.json is serial work before the first node
    (0.3-0.5 s) that nothing reads after a build (`dbt parse` and `dbt docs generate` write their own). The run's
    ``run_results`` (each node's status and timing, for operators and `make bench-data`) is written from the result.
    dbt's log is written by :class:`DbtEventLog` (warehouse/dbt_log.py), not by dbt's own loggers.
    """
    from dbt.cli.main import dbtRunner  # heavy import (~2.5 s): only when a build runs

    event_log = DbtEventLog(settings.dbt_log_dir, settings.dbt_log_level_file)
    try:
        result = dbtRunner(callbacks=[event_log]).invoke([*args, "--no-write-json", *DBT_LOGGERS_OFF])
    finally:
        event_log.close()
        _release_duckdb()
    from dbt.contracts.results import RunExecutionResult

    if isinstance(result.result, RunExecutionResult):  # a run that reached its nodes (also when some failed)
        result.result.write(str(settings.dbt_artifacts_dir / "run_results.json"))
    nodes = [
        NodeResult(
            r.node.unique_id,
            str(r.node.resource_type),
            str(r.status),
            r.message or "",
            getattr(r.node, "compiled_code", None) or "",
        )
        for r in getattr(result.result, "results", None) or []
    ]
    return result.success, nodes, result.exception


def build_warehouse(
    settings: Settings, run_date: date | None = None, select: str | None = None, full_refresh: bool = False
) -> dict:
    """Run ``dbt build`` for ``run_date`` (None: the latest event date in the raw data).

    The marts are incremental: a run rewrites only the day partitions ``run_date`` owns (the first run builds all
    history); ``full_refresh`` rebuilds every partition from the raw data. On the ``postgres`` target the raw
    partitions up to ``run_date`` are first mirrored into the warehouse database (:func:`load_raw_to_postgres`).

    Returns the run's summary: elapsed seconds, counts per node status and per resource type, and the mart paths.
    Raises :class:`WarehouseBuildError` naming every failed model or test.
    """
    apply_runtime_env(settings)
    settings.ensure_dirs()
    settings.duckdb_temp_dir.mkdir(parents=True, exist_ok=True)  # the profile's temp_directory: DuckDB spills there
    prepare_day_exports(settings)  # the day-partitioned marts' export folders (warehouse/day_exports.py)
    raw_load = None
    if settings.dbt_target_name == "postgres":
        from shoprank.databases import ensure_postgres_database

        ensure_postgres_database(settings, settings.services.warehouse_database)
        raw_load = load_raw_to_postgres(settings, run_date)
    args = dbt_args(settings, "build")  # the day goes in the environment (dbt_env)
    if select:
        args += ["--select", select]
    if full_refresh:
        args.append("--full-refresh")
    fingerprint = unit_tests_fingerprint(settings)
    skip_unit_tests = _skip_unit_tests(settings, full_refresh, fingerprint)
    if skip_unit_tests:
        args += ["--exclude-resource-type", "unit_test"]
    _unit_tests_passed_path(settings).unlink(missing_ok=True)  # rewritten below if this run's unit tests pass
    built = _built_raw_files(settings)
    raw_files = raw_file_states(settings, built)  # as this run finds them: kept below if stg_events reads them
    relanded = None if full_refresh else relanded_from(built, raw_files)
    started = time.perf_counter()
    with _run_day_in_env(run_date, relanded):
        if settings.dbt_target_name == "spark":  # dbt and pyspark from the Spark venv, in a subprocess
            from warehouse.spark import run_dbt

            success, nodes, output = run_dbt(settings, [*args, "--quiet"])
            exception: Any = None if nodes else output
        else:
            success, nodes, exception = _run_dbt_in_process(settings, args)
    elapsed = time.perf_counter() - started

    if exception is not None and not nodes:
        over = _budget_failure(settings, run_date, [str(exception)])
        cause = exception if isinstance(exception, BaseException) else None
        raise over or WarehouseBuildError(f"dbt build could not run: {exception}") from cause

    statuses: dict[str, int] = {}
    resource_types: dict[str, int] = {}
    failures: list[tuple[str, str, str]] = []
    messages: list[str] = []
    for node in nodes:
        resource_types[node.resource_type] = resource_types.get(node.resource_type, 0) + 1
        if node.resource_type != "operation":  # on-run-start hooks are plumbing, not models or tests
            statuses[node.status] = statuses.get(node.status, 0) + 1
        if node.status in ("error", "fail", "runtime error"):
            messages.append(node.message)
            message = node.message.strip().splitlines()
            first = message[0] if message else ""
            if node.status == "fail" and node.compiled_code and settings.dbt_target_name == "duckdb":
                first += f"; first failing rows: {_failing_rows(settings, node.compiled_code)}"
            failures.append((node.unique_id, node.status, first))

    if failures or not success:
        over = _budget_failure(settings, run_date, [*messages, str(exception or "")])
        if over is not None:
            over.failures = failures
            raise over
        detail = "; ".join(f"{node} [{status}] {message}" for node, status, message in failures)
        hint = SCHEMA_CHANGE_HINT if any("out of sync" in m for m in messages) else ""
        raise WarehouseBuildError(
            f"dbt build failed for run_date={run_date}: {len(failures)} node(s) failed: {detail or exception}{hint}",
            failures,
        )
    if skip_unit_tests or (select is None and resource_types.get("unit_test", 0) > 0):
        _unit_tests_passed_path(settings).write_text(fingerprint + "\n")
    if any(node.unique_id == "model.shoprank.stg_events" and node.status == "success" for node in nodes):
        _raw_files_built_path(settings).write_text(json.dumps(raw_files, sort_keys=True) + "\n")
    exports = None
    if settings.dbt_target_name == "postgres":  # the marts to the build area, as DuckDB's post-hooks write them
        from warehouse.pg_export import export_marts_from_postgres

        exports = export_marts_from_postgres(settings)
    elif settings.dbt_target_name == "spark":  # Spark's part files to the same build-area files
        from warehouse.spark import collect_exports

        exports = collect_exports(settings)
    day_exports = finish_day_exports(settings)
    return {
        "run_date": run_date.isoformat() if run_date else None,
        "elapsed_s": round(elapsed, 2),
        "exports": exports,
        "day_exports": day_exports,
        "statuses": statuses,
        "resource_types": resource_types,
        "nodes": sum(statuses.values()),
        "unit_tests_skipped": skip_unit_tests,
        "relanded_from": relanded.isoformat() if relanded is not None else None,
        "target": settings.dbt_target_name,
        "raw_load": raw_load,
        "warehouse_path": str(settings.warehouse_path),
        "marts": {name: str(mart_path(settings.marts_build_dir, name)) for name in MARTS},
    }


# ---- the PostgreSQL target -------------------------------------------------------------------------------------
# On DuckDB the dbt sources read the parquet partitions in place; PostgreSQL reads tables in schema `raw`, loaded
# here: one table per raw table, with the partition's day as column `dt`.
RAW_SCHEMA = "raw"
_PG_TYPES = {
    "string": "text",
    "large_string": "text",
    "int64": "bigint",
    "int32": "integer",
    "double": "double precision",
    "float": "real",
    "bool": "boolean",
    "date32[day]": "date",
}


def _pg_type(arrow_type: Any) -> str:
    import pyarrow as pa

    if pa.types.is_timestamp(arrow_type):
        return "timestamptz" if arrow_type.tz else "timestamp"
    try:
        return _PG_TYPES[str(arrow_type)]
    except KeyError:
        raise ValueError(f"raw column type {arrow_type} has no PostgreSQL mapping") from None


def _partitions(settings: Settings, table: str, run_date: date | None) -> dict[date, list[Path]]:
    """{day: parquet files} of a raw table's partitions up to run_date (all when None)."""
    found: dict[date, list[Path]] = {}
    for folder in sorted((settings.raw_dir / table).glob("dt=*")):
        day = date.fromisoformat(folder.name.removeprefix("dt="))
        files = sorted(folder.glob("*.parquet"))
        if files and (run_date is None or day <= run_date):
            found[day] = files
    return found


def _fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def _copy_partition(conn: Any, table: str, day: date, files: list[Path], fingerprint: str) -> int:
    """Replace day's rows of raw.<table> with the partition's files, in one transaction; returns the row count."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from psycopg import sql

    data = pa.concat_tables([pq.read_table(path) for path in files], promote_options="default")
    data = data.append_column("dt", pa.array([day] * data.num_rows, pa.date32()))
    columns = [(field.name, _pg_type(field.type)) for field in data.schema]
    target = sql.Identifier(RAW_SCHEMA, table)
    column_list = sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns)
    # CSV with every non-null value quoted: an unquoted empty field is NULL, "" an empty string.
    options = pacsv.WriteOptions(include_header=False, quoting_style="all_valid")
    with conn.transaction():
        conn.execute(
            sql.SQL("create table if not exists {} ({})").format(
                target, sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in columns)
            )
        )
        for name, pg_type in columns:  # a column new to the raw contract
            conn.execute(
                sql.SQL("alter table {} add column if not exists {} {}").format(
                    target, sql.Identifier(name), sql.SQL(pg_type)
                )
            )
        conn.execute(sql.SQL("delete from {} where dt = %s").format(target), (day,))
        with conn.cursor().copy(sql.SQL("copy {} ({}) from stdin (format csv)").format(target, column_list)) as pipe:
            for batch in data.to_batches(max_chunksize=200_000):
                buffer = io.BytesIO()
                pacsv.write_csv(batch, buffer, options)
                pipe.write(buffer.getvalue())
        conn.execute(
            sql.SQL(
                "insert into {}._partitions (table_name, dt, fingerprint) values (%s, %s, %s) "
                "on conflict (table_name, dt) do update set fingerprint = excluded.fingerprint, loaded_at = now()"
            ).format(sql.Identifier(RAW_SCHEMA)),
            (table, day, fingerprint),
        )
    return data.num_rows


def load_raw_to_postgres(settings: Settings, run_date: date | None = None) -> dict[str, Any]:
    """Mirror the raw partitions up to ``run_date`` (None: all) into ``raw.<table>`` of the warehouse database.

    Idempotent per partition: a partition whose files changed (sha256) is deleted and copied again in one
    transaction, an unchanged one is skipped, and one no longer on disk (e.g. quarantined) is deleted. Raw columns
    new to a table are added. Returns the partitions loaded, skipped and deleted per table.
    """
    import psycopg
    from psycopg import sql

    from shoprank.raw_contract import TABLES

    url = settings.services.postgres_url(settings.services.warehouse_database, driver="postgresql")
    bookkeeping = sql.Identifier(RAW_SCHEMA, "_partitions")
    summary: dict[str, Any] = {"database": settings.services.warehouse_database, "tables": {}}
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:  # statements commit alone; conn.transaction() groups
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(RAW_SCHEMA)))
        conn.execute(
            sql.SQL(
                "create table if not exists {} (table_name text, dt date, fingerprint text not null, "
                "loaded_at timestamptz not null default now(), primary key (table_name, dt))"
            ).format(bookkeeping)
        )
        for table in TABLES:
            partitions = _partitions(settings, table, run_date)
            query = sql.SQL("select dt, fingerprint from {} where table_name = %s").format(bookkeeping)
            loaded: dict[date, str] = dict(conn.execute(query, (table,)).fetchall())
            counts = {"loaded": 0, "skipped": 0, "deleted": 0, "rows": 0}
            for day in sorted(set(loaded) - set(partitions)):
                if run_date is None or day <= run_date:  # gone from disk
                    with conn.transaction():
                        conn.execute(
                            sql.SQL("delete from {} where dt = %s").format(sql.Identifier(RAW_SCHEMA, table)), (day,)
                        )
                        conn.execute(
                            sql.SQL("delete from {} where table_name = %s and dt = %s").format(bookkeeping),
                            (table, day),
                        )
                    counts["deleted"] += 1
            for day, files in partitions.items():
                fingerprint = _fingerprint(files)
                if loaded.get(day) == fingerprint:
                    counts["skipped"] += 1
                else:
                    counts["rows"] += _copy_partition(conn, table, day, files, fingerprint)
                    counts["loaded"] += 1
            if counts["loaded"] or counts["deleted"]:  # fresh statistics, or the planner guesses (badly) on views
                conn.execute(sql.SQL("analyze {}").format(sql.Identifier(RAW_SCHEMA, table)))
            summary["tables"][table] = counts
    summary["elapsed_s"] = round(time.perf_counter() - started, 2)
    return summary
