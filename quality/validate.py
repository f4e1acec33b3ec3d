"""Run the mart suites in DuckDB and keep their results.

The marts are read where dbt exported them, the build area (``settings.marts_build_dir``: the candidate, which only
``publish`` hands to Feast, training and serving, and only once every gate passed), restricted to the partitions the
run rewrote (quality.mart_sql.first_unjudged_day): feature days from the first unjudged day to the run's day + 1,
impression days from the day before it to the run's day. The GX suites (quality.suites) are evaluated as DuckDB
aggregates (quality.sql_expectations), so no mart is loaded into memory; only what a check needs of the past is
read beyond the window (raw impressions before each snapshot, the clicks of a pair purchased in the window).
Results and Data Docs go to ``settings.quality_dir`` with the fingerprint of the build judged (publish checks it).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quality.runner import DataQualityError
from quality.suites import MART_SUITES
from shoprank.gate_records import marts_results_path
from shoprank.settings import Settings, apply_runtime_env

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

__all__ = ["DataQualityError", "validate_marts"]


def results_path(settings: Settings, run_date: date) -> Path:
    return marts_results_path(settings, run_date)


def _between(first: date | None, last: date | None) -> str:
    """A predicate on ``dt`` (a date) keeping ``first..last``; ``true`` when unbounded."""
    terms = [f"dt >= date '{first}'" if first else "", f"dt <= date '{last}'" if last else ""]
    return " and ".join(t for t in terms if t) or "true"


def _label(first: date | None, last: date) -> str:
    return f"dt={first}..{last}" if first else "all"


def define_relations(
    con: duckdb.DuckDBPyConnection, settings: Settings, run_date: date, first: date | None
) -> dict[str, str]:
    """Views over the build's marts, restricted to the run's partitions (``first`` None: all of them), plus
    ``training_examples__all`` (every partition: the history a funnel check needs). Returns the partition label of
    each view."""
    from quality.mart_sql import mart_source

    impressions_from = first - timedelta(days=1) if first else None
    windows = {
        "user_features": (first, run_date + timedelta(days=1)),
        "item_features": (first, run_date + timedelta(days=1)),
        "training_examples": (impressions_from, run_date),
    }
    labels = {}
    for name in MART_SUITES:
        low, high = windows[name]
        bounded = _between(low, high) if first else "true"
        source = mart_source(settings.marts_build_dir, name)
        con.execute(f"create or replace view {name} as select * from {source} where {bounded}")
        labels[name] = _label(low, high)
    source = mart_source(settings.marts_build_dir, "training_examples")
    con.execute(f"create or replace view training_examples__all as select * from {source}")
    return labels


def raw_impression_count(con: duckdb.DuckDBPyConnection, settings: Settings, first: date | None, last: date) -> int:
    """Impressions in the raw event partitions ``first..last`` (all up to ``last`` when ``first`` is None)."""
    from quality.mart_sql import files_list, raw_partition_files

    files = raw_partition_files(settings, "events", first, last)
    if not files:
        return 0
    query = (
        f"select count(*) from read_parquet({files_list(files)}, union_by_name = true) where event_type = 'impression'"
    )
    ((count,),) = con.execute(query).fetchall()
    return int(count)


def point_in_time_table(con: duckdb.DuckDBPyConnection, settings: Settings, run_date: date) -> str:
    """Table ``point_in_time``: one row per (mart, snapshot) of the window, the impressions the snapshot counts and
    the raw impressions strictly before it (every raw partition up to the run's day: the history it needs)."""
    from quality.mart_sql import files_list, raw_partition_files

    files = raw_partition_files(settings, "events", None, run_date)
    impressions = (
        f"select event_ts from read_parquet({files_list(files)}, union_by_name = true) where event_type = 'impression'"
        if files
        else "select cast(null as timestamptz) as event_ts where false"
    )
    con.execute(
        f"""
        create or replace temp table point_in_time as
        with snapshots as (
            select 'user_features' as mart, feature_ts, sum(user_impressions_30d)::bigint as feature_impressions
            from user_features group by feature_ts
            union all
            select 'item_features', feature_ts, sum(item_impressions_7d)::bigint from item_features group by feature_ts
        ),
        per_ts as (select event_ts, count(*) as n from ({impressions}) group by event_ts),
        before as (select event_ts, sum(n) over (order by event_ts) as upto from per_ts)
        select s.mart, s.feature_ts, s.feature_impressions, coalesce(b.upto, 0)::bigint as raw_impressions_before
        from snapshots s asof left join before b on s.feature_ts > b.event_ts
        order by s.mart, s.feature_ts
        """
    )
    return "point_in_time"


def validate_marts(settings: Settings, run_date: date) -> dict[str, Any]:
    """Validate the marts of ``run_date``'s build; write results to ``quality_dir/marts-<run_date>.json``.

    Every mart Feast reads gets its suite (keys, ranges, freshness, row count against raw) and the snapshots get
    the point-in-time suite (no label leakage). Raises :class:`DataQualityError` naming the suite, table, failed
    expectations and sample values when any expectation fails (the results file and Data Docs are written first
    either way); :class:`shoprank.resources.MemoryBudgetError` when DuckDB cannot stay within the step's memory
    budget even spilling. Returns a summary.
    """
    from quality.mart_sql import first_unjudged_day
    from quality.runner import SqlBatch, failure_lines, run_sql_batches
    from quality.suites import DERIVED_MART_SUITES, MartContext, point_in_time_suite
    from shoprank.gate_records import build_fingerprint
    from shoprank.resources import duckdb_connect, within_budget

    started = time.perf_counter()
    apply_runtime_env(settings)
    judged = build_fingerprint(settings)  # before reading: a build changed after this point is not publishable
    first = first_unjudged_day(settings, run_date)
    con = duckdb_connect(settings)
    try:
        with within_budget(settings, f"validate-marts ({run_date})"):
            labels = define_relations(con, settings, run_date, first)
            impressions_from = first - timedelta(days=1) if first else None
            ctx = MartContext(
                run_date=run_date, raw_impressions=raw_impression_count(con, settings, impressions_from, run_date)
            )
            batches = [SqlBatch(name, name, partial(MART_SUITES[name], ctx), labels[name]) for name in MART_SUITES]
            pit = point_in_time_table(con, settings, run_date)
            batches.append(SqlBatch("point_in_time", pit, point_in_time_suite, labels["user_features"]))
            relations = {"training_examples": "training_examples", "training_examples__all": "training_examples__all"}
            batches += [
                SqlBatch(name, derive(relations), suite, labels["training_examples"])
                for name, (derive, suite) in DERIVED_MART_SUITES.items()
            ]
            results, failures = run_sql_batches(settings, "marts", run_date.isoformat(), con, batches)
    finally:
        con.close()
    elapsed = round(time.perf_counter() - started, 2)
    settings.quality_dir.mkdir(parents=True, exist_ok=True)
    out = results_path(settings, run_date)
    by_table = {result["table"]: result for result in results.values()}
    window = {"first_feature_day": first.isoformat() if first else None, "partitions": labels}
    payload = {
        "run_date": run_date.isoformat(),
        "success": not failures,
        "elapsed_s": elapsed,
        "build_fingerprint": judged,
        "raw_impressions": ctx.raw_impressions,
        "window": window,
        "failures": failures,
        "results": by_table,
    }
    out.write_text(json.dumps(payload, indent=2, default=str))
    summary = {
        "run_date": run_date.isoformat(),
        "success": not failures,
        "elapsed_s": elapsed,
        "results_path": str(out),
        "window": window,
        "tables": {
            table: {
                "rows": result["rows"],
                "expectations": len(result["results"]),
                "failed": sum(1 for f in failures if f["table"] == table),
            }
            for table, result in by_table.items()
        },
    }
    if failures:
        raise DataQualityError(
            f"mart gate: {len(failures)} expectation(s) failed on the marts of {run_date} (results: {out}):\n"
            + "\n".join(failure_lines(failures)),
            failures,
        )
    log.info("mart suites passed for %s in %.1f s: %s", run_date, elapsed, summary["tables"])
    return summary
