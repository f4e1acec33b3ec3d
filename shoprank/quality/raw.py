"""The raw gate: validate the run's day of every raw table before dbt reads it; quarantine what fails.

Validates ``<raw_dir>/<table>/dt=<run_date>/`` of each table (schema suite + row suite, see raw_suites), using the
entity partitions up to the run's day for referential integrity and the previous days' event counts for the volume
band. Results go to ``quality_dir/raw-<run_date>.json`` and Data Docs; failing partitions move to quarantine and
:class:`DataQualityError` names suite, table, partition, failed expectations and sample rows.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from shoprank.quality.quarantine import quarantine_partition, quarantine_path, raw_partition_dir
from shoprank.quality.runner import Batch, DataQualityError, failure_lines, run_batches
from shoprank.raw_contract import TABLES
from shoprank.settings import Settings, apply_runtime_env

log = logging.getLogger(__name__)

ENTITY_KEYS = {"items": "item_id", "users": "user_id", "sellers": "seller_id"}


def _partition_day(path_name: str) -> date | None:
    try:
        return date.fromisoformat(path_name.removeprefix("dt="))
    except ValueError:
        return None


def _partitions_up_to(settings: Settings, table: str, day: date) -> list[tuple[date, Path]]:
    found: list[tuple[date, Path]] = []
    for folder in (settings.raw_dir / table).glob("dt=*"):
        partition_day = _partition_day(folder.name)
        if partition_day is not None and partition_day <= day:
            found.extend((partition_day, f) for f in sorted(folder.glob("*.parquet")))
    return sorted(found, key=lambda pair: pair[0])


def known_ids(settings: Settings, table: str, day: date) -> list[str]:
    """Ids of ``table`` in every partition up to ``day`` (a partition lacking the key column adds none)."""
    key = ENTITY_KEYS[table]
    ids: set[str] = set()
    for _, path in _partitions_up_to(settings, table, day):
        if key in pq.read_schema(path).names:
            ids.update(pq.read_table(path, columns=[key]).column(key).to_pylist())
    ids.discard(None)  # type: ignore[arg-type]
    return sorted(ids)


def volume_band(settings: Settings, day: date) -> tuple[tuple[int, int] | None, list[int]]:
    """(low, high) event-count band from the median of up to N previous days; None without history."""
    history = [
        pq.read_metadata(path).num_rows
        for partition_day, path in _partitions_up_to(settings, "events", day - timedelta(days=1))
        if partition_day >= day - timedelta(days=settings.quality.volume_history_days)
    ]
    if not history:
        return None, history
    median = statistics.median(history)
    q = settings.quality
    return (int(median * q.volume_band_low), int(median * q.volume_band_high) + 1), history


def _offending_rows(frame: pd.DataFrame, failure: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """A few whole rows behind a failed column expectation, so the log shows the records, not only the values."""
    column = failure["kwargs"].get("column")
    if not column or column not in frame.columns or failure["exception"]:
        return []
    if failure["expectation"] == "expect_column_values_to_not_be_null":
        rows = frame[frame[column].isna()]
    elif failure["expectation"] == "expect_column_values_to_be_unique":
        rows = frame[frame[column].duplicated(keep=False)]
    elif isinstance(failure["sample"], list):
        rows = frame[frame[column].astype(str).isin({str(v) for v in failure["sample"]})]
    else:
        return []
    return json.loads(rows.head(limit).to_json(orient="records", date_format="iso"))


def validate_raw(settings: Settings, run_date: date) -> dict[str, Any]:
    """Validate the raw partitions of ``run_date``; quarantine failing ones and raise, or return a summary."""
    started = time.perf_counter()
    apply_runtime_env(settings)
    day_start = datetime(run_date.year, run_date.month, run_date.day, tzinfo=UTC)
    band, history = volume_band(settings, run_date)
    from shoprank.quality.raw_suites import RAW_SUITES, RawDayContext, schema_signature, schema_suite

    ctx = RawDayContext(
        day_start=day_start,
        day_end=day_start + timedelta(days=1),
        now=datetime.now(UTC),
        known_item_ids=known_ids(settings, "items", run_date),
        known_user_ids=known_ids(settings, "users", run_date),
        known_seller_ids=known_ids(settings, "sellers", run_date),
        volume_band=band,
    )

    failures: list[dict[str, Any]] = []
    batches: list[Batch] = []
    frames: dict[str, pd.DataFrame] = {}
    for table in TABLES:
        folder = raw_partition_dir(settings, table, run_date)
        partition = f"dt={run_date.isoformat()}"
        files = sorted(folder.glob("*.parquet"))
        if not files:
            where = quarantine_path(settings, table, run_date)
            reason = (
                f"partition is in quarantine at {where}: fix it, then `shoprank quarantine release --table {table}"
                f" --dt {run_date}`"
                if where.exists()
                else f"partition {folder} is missing"
            )
            failures.append(
                {
                    "suite": f"raw.{table}",
                    "table": table,
                    "partition": partition,
                    "expectation": "partition_exists",
                    "kwargs": {},
                    "unexpected_count": None,
                    "sample": None,
                    "exception": reason,
                }
            )
            continue
        frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        frames[table] = frame
        signature = pd.DataFrame({"column": schema_signature(pq.read_schema(files[0]))})
        batches.append(Batch(table, signature, partial(schema_suite, table), partition))
        batches.append(Batch(table, frame, partial(RAW_SUITES[table], ctx), partition))

    results, gx_failures = run_batches(settings, "raw", run_date.isoformat(), batches)
    for failure in gx_failures:
        if not failure["suite"].endswith(".schema"):
            failure["rows"] = _offending_rows(frames[failure["table"]], failure, settings.quality.sample_size)
    failures.extend(gx_failures)

    notes = [] if band else ["no previous days of events: volume band not checked (first day)"]
    failed_tables = sorted({f["table"] for f in failures})
    quarantined: dict[str, str] = {}
    for table in failed_tables:
        if table in frames:  # a missing partition has nothing to move
            own = [f for f in failures if f["table"] == table]
            suites = {k: v for k, v in results.items() if v["table"] == table}
            quarantined[table] = str(
                quarantine_partition(settings, table, run_date, {"failures": own, "results": suites})
            )

    elapsed = round(time.perf_counter() - started, 2)
    settings.quality_dir.mkdir(parents=True, exist_ok=True)
    out = settings.quality_dir / f"raw-{run_date.isoformat()}.json"
    payload = {
        "run_date": run_date.isoformat(),
        "success": not failures,
        "elapsed_s": elapsed,
        "volume": {"band": band, "history": history},
        "notes": notes,
        "quarantined": quarantined,
        "failures": failures,
        "results": results,
    }
    out.write_text(json.dumps(payload, indent=2, default=str))
    if failures:
        lines = failure_lines(failures)
        for failure in failures:
            for row in failure.get("rows", [])[:3]:
                lines.append(f"    row of {failure['table']}: {row}")
        moved = "".join(f"\n  quarantined {t} -> {p}" for t, p in quarantined.items())
        raise DataQualityError(
            f"raw gate: {len(failures)} expectation(s) failed on tables {failed_tables} for dt={run_date}"
            f" (results: {out}):\n" + "\n".join(lines) + moved,
            failures,
        )
    summary = {
        "run_date": run_date.isoformat(),
        "success": True,
        "elapsed_s": elapsed,
        "results_path": str(out),
        "volume": payload["volume"],
        "notes": notes,
        "tables": {t: {"rows": len(f)} for t, f in frames.items()},
    }
    log.info("raw suites passed for %s in %.1f s: %s %s", run_date, elapsed, summary["tables"], notes)
    return summary
