"""Build the warehouse: ``dbt build`` (models, unit tests and data tests) of dbt_project/, in process.

The marts are materialized ``external``: dbt-duckdb writes each to ``settings.marts_export_dir/<model>.parquet``
(Feast's offline sources) and leaves a view over that file in the DuckDB warehouse.
"""

from __future__ import annotations

import json
import time
from datetime import date
from typing import Any

from shoprank.settings import Settings, apply_runtime_env

MARTS = ("user_features", "item_features", "training_examples")


class WarehouseBuildError(RuntimeError):
    """dbt build failed; ``failures`` lists (node, status, message) of every failed node."""

    def __init__(self, message: str, failures: list[tuple[str, str, str]] | None = None) -> None:
        super().__init__(message)
        self.failures = failures or []


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


def dbt_args(settings: Settings, command: str, run_date: date | None = None) -> list[str]:
    """The CLI arguments every dbt invocation of ShopRank uses (also handy for `dbt` in a shell)."""
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


def build_warehouse(settings: Settings, run_date: date | None = None, select: str | None = None) -> dict:
    """Run ``dbt build`` for ``run_date`` (None: the latest event date in the raw data).

    Returns the run's summary: elapsed seconds, counts per node status and per resource type, and the mart paths.
    Raises :class:`WarehouseBuildError` naming every failed model or test.
    """
    from dbt.cli.main import dbtRunner  # heavy import (~2.5 s): only when a build runs

    apply_runtime_env(settings)
    settings.ensure_dirs()
    args = dbt_args(settings, "build", run_date) + ["--quiet"]
    if select:
        args += ["--select", select]
    started = time.perf_counter()
    try:
        result = dbtRunner().invoke(args)
    finally:
        _release_duckdb()
    elapsed = time.perf_counter() - started

    if result.exception is not None and result.result is None:
        raise WarehouseBuildError(f"dbt build could not run: {result.exception}") from result.exception

    statuses: dict[str, int] = {}
    resource_types: dict[str, int] = {}
    failures: list[tuple[str, str, str]] = []
    for node_result in getattr(result.result, "results", None) or []:
        status = str(node_result.status)
        statuses[status] = statuses.get(status, 0) + 1
        resource_type = str(node_result.node.resource_type)
        resource_types[resource_type] = resource_types.get(resource_type, 0) + 1
        if status in ("error", "fail", "runtime error"):
            message = (node_result.message or "").strip().splitlines()
            failures.append((node_result.node.unique_id, status, message[0] if message else ""))

    if failures or not result.success:
        detail = "; ".join(f"{node} [{status}] {message}" for node, status, message in failures)
        raise WarehouseBuildError(
            f"dbt build failed for run_date={run_date}: {len(failures)} node(s) failed: {detail or result.exception}",
            failures,
        )
    return {
        "run_date": run_date.isoformat() if run_date else None,
        "elapsed_s": round(elapsed, 2),
        "statuses": statuses,
        "resource_types": resource_types,
        "nodes": sum(statuses.values()),
        "warehouse_path": str(settings.warehouse_path),
        "marts": {name: str(settings.marts_export_dir / f"{name}.parquet") for name in MARTS},
    }
