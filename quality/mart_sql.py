"""The marts and raw partitions as DuckDB relations, and the days a run's mart gate has to judge.

The gates read the parquet where it lies (a mart is one file, or a folder of parquet files, in the build area) and
restrict it to the partitions the run rewrote; only what a check needs of the past (raw impressions before a
snapshot, a purchased pair's earlier clicks) is aggregated over more history.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

from shoprank.gate_records import marts_results_path
from shoprank.mart_files import require_mart_files
from shoprank.settings import Settings


def sql_string(value: str | Path) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def files_list(paths: list[Path]) -> str:
    """A DuckDB list literal of file paths (read_parquet takes a list)."""
    return "[" + ", ".join(sql_string(p) for p in paths) + "]"


def mart_source(marts_dir: Path, name: str) -> str:
    """``read_parquet(...)`` of mart ``name`` in ``marts_dir``: ``<name>.parquet``, or the day files of the folder
    ``<name>/`` (shoprank/mart_files.py; each file holds its dt column). Raises FileNotFoundError naming the path when
    neither exists."""
    files = require_mart_files(marts_dir, name, hint="build the warehouse first")
    return f"read_parquet({files_list(files)}, hive_partitioning = false)"


def raw_partition_files(settings: Settings, table: str, first: date | None, last: date) -> list[Path]:
    """Parquet files of ``table``'s raw partitions ``dt=first..last`` (every one up to ``last`` when ``first`` is
    None). The raw gate has already read the run day's and quarantined what it could not read."""
    files = []
    for folder in sorted((settings.raw_dir / table).glob("dt=*")):
        try:
            day = date.fromisoformat(folder.name.removeprefix("dt="))
        except ValueError:
            continue
        if day <= last and (first is None or day >= first):
            files += sorted(folder.glob("*.parquet"))
    return files


def first_unjudged_day(settings: Settings, run_date: date) -> date | None:
    """The first feature day this run's mart gate must judge; None: judge all history.

    A run for D rewrites feature days from D (impression days from D - 1) on, or from the table's newest partition
    when runs were skipped (dbt_project/macros/incremental.sql). The newest day a mart gate passed before D, P,
    judged feature days up to P + 1: everything from min(D, P + 1) on is new to the gate (a superset of what the
    run rewrote when a failed day's build came in between). No earlier pass (a first run, a fresh home): all.
    """
    passed = []
    for path in settings.quality_dir.glob("marts-*.json"):
        try:
            day = date.fromisoformat(path.stem.removeprefix("marts-"))
            ok = day < run_date and json.loads(path.read_text()).get("success") is True
        except (ValueError, OSError):
            continue
        if ok and path == marts_results_path(settings, day):
            passed.append(day)
    return min(run_date, max(passed) + timedelta(days=1)) if passed else None
