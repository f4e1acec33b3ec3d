"""The day-partitioned marts' export folders in the build area (shoprank/mart_files.py: one file per day).

On DuckDB the post-hook writes the days a run rewrote (dbt_project/macros/incremental.sql: export_mart_days);
here, around the dbt run: :func:`prepare_day_exports` makes the folders it writes into (DuckDB's COPY makes no
directory), and :func:`finish_day_exports` deletes what no longer matches the table: a single-file export left by
an older build and the files of days the table no longer holds (a full refresh over less data). PostgreSQL and Spark
write one sorted file per mart; it is split into the same day files here, so every reader finds one layout.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

from shoprank.mart_files import DAY_FILE_GLOB, DAY_PARTITIONED_MARTS, day_file, file_day
from shoprank.resources import duckdb_connect
from shoprank.settings import Settings

log = logging.getLogger(__name__)


def prepare_day_exports(settings: Settings) -> None:
    for mart in DAY_PARTITIONED_MARTS:
        (settings.marts_build_dir / mart).mkdir(parents=True, exist_ok=True)


def _table_days(settings: Settings, mart: str) -> set[date] | None:
    """The days in the warehouse table ``mart`` (DuckDB target); None when it has no such table."""
    if not settings.warehouse_path.exists():
        return None
    with duckdb_connect(settings, settings.warehouse_path, read_only=True) as con:
        found = con.execute(
            "select table_schema from information_schema.tables where table_name = ? order by 1", [mart]
        ).fetchone()
        if found is None:
            return None
        rows = con.execute(f'select distinct dt from "{found[0]}"."{mart}"').fetchall()
    return {row[0] for row in rows}


def split_into_days(single: Path, folder: Path) -> dict[date, int]:
    """Replace the day files of ``folder`` by ``single``'s rows split by ``dt`` (kept in the file's order), then
    delete ``single``; returns rows per day."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(single, partitioning=None)
    folder.mkdir(parents=True, exist_ok=True)
    rows: dict[date, int] = {}
    for day in sorted(set(table["dt"].to_pylist())):
        part = table.filter(pc.equal(table["dt"], day))
        staged = folder / f".dt={day.isoformat()}.parquet.tmp"
        pq.write_table(part, staged)
        staged.replace(day_file(folder.parent, folder.name, day))
        rows[day] = part.num_rows
    for path in folder.glob(DAY_FILE_GLOB):
        if file_day(path) not in rows:
            path.unlink()
    single.unlink()
    return rows


def finish_day_exports(settings: Settings) -> dict[str, list[str]]:
    """After a successful dbt run: one layout per day-partitioned mart (see the module docstring); returns the
    files deleted (DuckDB) or written (PostgreSQL, Spark) per mart."""
    changed: dict[str, list[str]] = {}
    for mart in DAY_PARTITIONED_MARTS:
        single = settings.marts_build_dir / f"{mart}.parquet"
        folder = settings.marts_build_dir / mart
        if settings.dbt_target_name in ("postgres", "spark"):
            if single.exists():
                changed[mart] = [d.isoformat() for d in split_into_days(single, folder)]
            continue
        days = _table_days(settings, mart)
        if days is None:
            continue
        stale = [p for p in sorted(folder.glob(DAY_FILE_GLOB)) if file_day(p) not in days]
        if single.exists() and any(folder.glob(DAY_FILE_GLOB)):
            stale.append(single)
        for path in stale:
            path.unlink()
            log.info("deleted %s (not in the warehouse table %s)", path, mart)
        changed[mart] = [p.name for p in stale]
    return changed
