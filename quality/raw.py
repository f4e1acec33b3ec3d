"""The raw gate: validate the run's day of every raw table before dbt reads it; quarantine what fails.

Validates ``<raw_dir>/<table>/dt=<run_date>/`` of each table (schema suite + row suite, see raw_suites), using the
entity partitions up to the run's day for referential integrity and the previous days' event counts for the volume
band. Suites over DuckDB aggregates (quality.lineage) add what one partition cannot show: entities
redefined against earlier partitions, purchases without an earlier impression and click, events before their
item's creation. A partition that cannot be read (missing, no files, a file that is not readable parquet, files of
different schemas) fails the gate too, naming the file. Results go to ``quality_dir/raw-<run_date>.json`` and Data
Docs; failing partitions move to quarantine and :class:`DataQualityError` names suite, table, partition, failed
expectations and sample rows.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from quality.lineage import ENTITY_KEYS, catalogue_changes, item_first_events, purchase_funnel
from quality.quarantine import quarantine_partition, quarantine_path, raw_partition_dir
from quality.runner import Batch, DataQualityError, failure_lines, run_batches
from shoprank.raw_contract import TABLES
from shoprank.resources import within_budget
from shoprank.settings import Settings, apply_runtime_env

log = logging.getLogger(__name__)

# What reading a bad parquet file raises: ArrowInvalid (truncated, empty, not parquet) or OSError.
READ_ERRORS = (pa.ArrowException, OSError, ValueError)


def _partition_day(path_name: str) -> date | None:
    try:
        return date.fromisoformat(path_name.removeprefix("dt="))
    except ValueError:
        return None


def _failure(table: str, partition: str, expectation: str, message: str, suite: str | None = None) -> dict[str, Any]:
    """A failure found outside GX (a file that cannot be read, a missing partition), shaped like GX's."""
    return {
        "suite": suite or f"raw.{table}",
        "table": table,
        "partition": partition,
        "expectation": expectation,
        "kwargs": {},
        "unexpected_count": None,
        "sample": None,
        "exception": message,
    }


def _history(
    settings: Settings, table: str, first: date, last: date, failures: list[dict[str, Any]]
) -> list[tuple[date, Path]]:
    """Readable files of ``table``'s partitions from ``first`` to ``last``; an unreadable one is a failure of its own
    partition (suite ``raw.<table>.history``), so the gate stops instead of crashing or reading half a history."""
    found: list[tuple[date, Path]] = []
    for folder in (settings.raw_dir / table).glob("dt=*"):
        partition_day = _partition_day(folder.name)
        if partition_day is None or not first <= partition_day <= last:
            continue
        for path in sorted(folder.glob("*.parquet")):
            try:
                pq.read_metadata(path)
            except READ_ERRORS as err:
                message = f"{path}: not a readable parquet file ({type(err).__name__}: {err})"
                failures.append(_failure(table, folder.name, "file_readable", message, f"raw.{table}.history"))
                continue
            found.append((partition_day, path))
    return sorted(found, key=lambda pair: pair[0])


def known_ids(files: list[tuple[date, Path]], key: str, today: pd.DataFrame | None) -> list[str]:
    """Ids in the given entity files and the run day's frame (a file lacking the key column adds none)."""
    ids: set[str] = set()
    for _, path in files:
        if key in pq.read_schema(path).names:
            ids.update(pq.read_table(path, columns=[key]).column(key).to_pylist())
    if today is not None and key in today.columns:
        ids.update(today[key].tolist())
    ids.discard(None)  # type: ignore[arg-type]
    return sorted(ids)


def volume_band(settings: Settings, files: list[tuple[date, Path]]) -> tuple[tuple[int, int] | None, list[int]]:
    """(low, high) event-count band from the median of the previous days' ``files``; None without history."""
    history = [pq.read_metadata(path).num_rows for _, path in files]
    if not history:
        return None, history
    median = statistics.median(history)
    q = settings.quality
    return (int(median * q.volume_band_low), int(median * q.volume_band_high) + 1), history


@dataclass
class Loaded:
    """The run day's partition of one table, read whole; ``frame`` is None when it could not be read."""

    files: list[Path]
    frame: pd.DataFrame | None = None
    signature: list[str] | None = None


def load_partition(settings: Settings, table: str, day: date, failures: list[dict[str, Any]]) -> Loaded:
    """Read every file of the partition, turning what cannot be read into failures that name the file."""
    from quality.raw_suites import schema_signature  # raw_suites imports GX (slow): only when validating

    folder = raw_partition_dir(settings, table, day)
    partition = folder.name
    if not folder.is_dir():
        where = quarantine_path(settings, table, day)
        reason = (
            f"partition is in quarantine at {where}: fix it, then `shoprank quarantine release --table {table}"
            f" --dt {day}`"
            if where.exists()
            else f"partition {folder} is missing"
        )
        failures.append(_failure(table, partition, "partition_exists", reason))
        return Loaded(files=[])
    files = sorted(folder.glob("*.parquet"))
    if not files:
        found = sorted(p.name for p in folder.iterdir())
        failures.append(_failure(table, partition, "partition_has_files", f"{folder} holds no parquet file: {found}"))
        return Loaded(files=[])
    frames, signatures = [], []
    for path in files:
        try:
            signatures.append(schema_signature(pq.read_schema(path)))
            frames.append(pd.read_parquet(path))
        except READ_ERRORS as err:
            message = f"{path}: not a readable parquet file ({type(err).__name__}: {err})"
            failures.append(_failure(table, partition, "file_readable", message))
    if len(frames) < len(files):
        return Loaded(files=files)
    differing = [str(p) for p, s in zip(files, signatures, strict=True) if s != signatures[0]]
    if differing:
        message = f"files {differing} differ in schema from {files[0]}: {signatures[0]}"
        failures.append(_failure(table, partition, "files_share_schema", message))
        return Loaded(files=files)
    return Loaded(files=files, frame=pd.concat(frames, ignore_index=True), signature=signatures[0])


# Keys shown for the offending rows of each derived suite (the row suites show whole rows).
DERIVED_KEYS = {
    "raw.items.changes": ["item_id"],
    "raw.users.changes": ["user_id"],
    "raw.sellers.changes": ["seller_id"],
    "raw.events.funnel": ["user_id", "item_id"],
    "raw.events.item_created": ["item_id"],
}


def _offending_mask(frame: pd.DataFrame, failure: dict[str, Any]) -> pd.Series | None:
    kwargs, expectation = failure["kwargs"], failure["expectation"]
    if failure["exception"]:
        return None
    if expectation.startswith("expect_column_pair_values"):
        a, b = kwargs.get("column_A"), kwargs.get("column_B")
        if a not in frame.columns or b not in frame.columns:
            return None
        both_missing = frame[a].isna() & frame[b].isna()
        if expectation == "expect_column_pair_values_to_be_equal":
            return ~(frame[a] == frame[b]) & ~both_missing
        holds = frame[a] >= frame[b] if kwargs.get("or_equal") else frame[a] > frame[b]
        return ~holds & ~both_missing
    column = kwargs.get("column")
    if not column or column not in frame.columns:
        return None
    if expectation == "expect_column_values_to_not_be_null":
        return frame[column].isna()
    if expectation == "expect_column_values_to_be_unique":
        return frame[column].duplicated(keep=False)
    if isinstance(failure["sample"], list):
        return frame[column].astype(str).isin({str(v) for v in failure["sample"]})
    return None


def _add_evidence(frame: pd.DataFrame, failure: dict[str, Any], limit: int) -> None:
    """A few whole rows behind a failed expectation (the records, not only the values); for the derived suites
    also the offending keys (item ids, user-item pairs), up to 50."""
    mask = _offending_mask(frame, failure)
    if mask is None:
        failure["rows"] = []
        return
    offending = frame[mask]
    failure["rows"] = json.loads(offending.head(limit).to_json(orient="records", date_format="iso"))
    keys = DERIVED_KEYS.get(failure["suite"])
    if keys:
        ids = offending[keys].astype(str).agg("/".join, axis=1).drop_duplicates()
        failure["ids"] = {"keys": "/".join(keys), "count": len(ids), "values": ids.head(50).tolist()}


def _derived_batches(
    settings: Settings, run_date: date, loaded: dict[str, Loaded], failures: list[dict[str, Any]]
) -> tuple[list[Batch], dict[str, pd.DataFrame]]:
    """Suites over DuckDB aggregates (catalogue changes, the funnel, creation times) for every table whose run-day
    partition was read and matches the contract's columns (otherwise its schema failure says enough)."""
    from quality.raw_suites import changes_suite, contract_columns, funnel_suite, item_created_suite

    q, partition = settings.quality, f"dt={run_date.isoformat()}"
    start, yesterday = date.min, run_date - timedelta(days=1)
    ok = {
        t: part
        for t, part in loaded.items()
        if part.frame is not None and sorted(part.signature or []) == sorted(contract_columns(t))
    }
    batches: list[Batch] = []
    frames: dict[str, pd.DataFrame] = {}

    # The files were read and their schemas checked above: a DuckDB error here is a fault of the gate or its
    # settings, not of the data, so it propagates (validate_raw records it as an error, quarantining nothing).
    def add(table: str, suite: str, build: Any, make_suite: Any) -> None:
        with within_budget(settings, f"validate-raw ({suite}, {partition})"):
            frames[suite] = frame = build()
        batches.append(Batch(table, frame, make_suite, partition))

    for table in ENTITY_KEYS:
        if table in ok:
            earlier = [p for _, p in _history(settings, table, start, yesterday, failures)]
            add(
                table,
                f"raw.{table}.changes",
                partial(catalogue_changes, table, ok[table].frame, earlier, settings),
                partial(changes_suite, table, q.max_price_change_ratio),
            )
    if "events" in ok:
        today = ok["events"].files
        first = run_date - timedelta(days=q.funnel_lookback_days)
        lookback = [p for _, p in _history(settings, "events", first, yesterday, failures)]
        add("events", "raw.events.funnel", partial(purchase_funnel, today, lookback, settings), funnel_suite)
        items = [p for _, p in _history(settings, "items", start, yesterday, failures)]
        items += ok["items"].files if "items" in ok else []
        if items:
            add(
                "events",
                "raw.events.item_created",
                partial(item_first_events, today, items, settings),
                item_created_suite,
            )
    return batches, frames


def _write_result(out: Path, payload: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=str))


def validate_raw(settings: Settings, run_date: date) -> dict[str, Any]:
    """Validate the raw partitions of ``run_date``; quarantine failing ones and raise, or return a summary.

    The results file is written before anything is read: a run that dies half-way leaves "failed" in it, never the
    previous run's success.
    """
    apply_runtime_env(settings)
    out = settings.quality_dir / f"raw-{run_date.isoformat()}.json"
    base = {"run_date": run_date.isoformat(), "success": False}
    _write_result(out, {**base, "status": "running", "started_at": datetime.now(UTC).isoformat()})
    try:
        return _validate_raw(settings, run_date, out)
    except DataQualityError:
        raise
    except Exception as err:
        _write_result(out, {**base, "status": "error", "error": f"{type(err).__name__}: {err}"})
        raise


def _validate_raw(settings: Settings, run_date: date, out: Path) -> dict[str, Any]:
    from quality.raw_suites import RAW_SUITES, RawDayContext, schema_suite

    started = time.perf_counter()
    partition = f"dt={run_date.isoformat()}"
    failures: list[dict[str, Any]] = []
    loaded = {table: load_partition(settings, table, run_date, failures) for table in TABLES}

    yesterday = run_date - timedelta(days=1)
    first_volume_day = run_date - timedelta(days=settings.quality.volume_history_days)
    band, history = volume_band(settings, _history(settings, "events", first_volume_day, yesterday, failures))
    known = {
        table: known_ids(_history(settings, table, date.min, yesterday, failures), key, loaded[table].frame)
        for table, key in ENTITY_KEYS.items()
    }
    day_start = datetime(run_date.year, run_date.month, run_date.day, tzinfo=UTC)
    ctx = RawDayContext(
        day_start=day_start,
        day_end=day_start + timedelta(days=1),
        now=datetime.now(UTC),
        known_item_ids=known["items"],
        known_user_ids=known["users"],
        known_seller_ids=known["sellers"],
        volume_band=band,
    )

    batches: list[Batch] = []
    suite_frames: dict[str, pd.DataFrame] = {}
    for table, part in loaded.items():
        if part.frame is None or part.signature is None:
            continue
        suite_frames[f"raw.{table}"] = part.frame
        signature = pd.DataFrame({"column": part.signature})
        batches.append(Batch(table, signature, partial(schema_suite, table), partition))
        batches.append(Batch(table, part.frame, partial(RAW_SUITES[table], ctx), partition))
    derived, derived_frames = _derived_batches(settings, run_date, loaded, failures)
    batches += derived
    suite_frames.update(derived_frames)

    results, gx_failures = run_batches(settings, "raw", run_date.isoformat(), batches)
    for failure in gx_failures:
        if failure["suite"] in suite_frames:
            _add_evidence(suite_frames[failure["suite"]], failure, settings.quality.sample_size)
    failures.extend(gx_failures)

    notes = [] if band else ["no previous days of events: volume band not checked (first day)"]
    failed_tables = sorted({f["table"] for f in failures})
    # An unreadable earlier partition makes the day unjudgeable (its ids, volume and definitions are missing): the
    # gate stops, but quarantines nothing, or good data would be moved for history's fault.
    broken_history = sorted({f"{f['table']}/{f['partition']}" for f in failures if f["suite"].endswith(".history")})
    if broken_history:
        notes.append(f"earlier partitions cannot be read, nothing quarantined: fix {broken_history}, then re-run")
    quarantined: dict[str, str] = {}
    for table in [] if broken_history else failed_tables:
        own = [f for f in failures if f["table"] == table]
        # Only the run day's partition moves (a missing one has nothing to move).
        if raw_partition_dir(settings, table, run_date).is_dir() and any(f["partition"] == partition for f in own):
            suites = {k: v for k, v in results.items() if v["table"] == table}
            quarantined[table] = str(
                quarantine_partition(settings, table, run_date, {"failures": own, "results": suites})
            )

    elapsed = round(time.perf_counter() - started, 2)
    payload = {
        "run_date": run_date.isoformat(),
        "success": not failures,
        "status": "failed" if failures else "passed",
        "elapsed_s": elapsed,
        "volume": {"band": band, "history": history},
        "notes": notes,
        "quarantined": quarantined,
        "failures": failures,
        "results": results,
    }
    _write_result(out, payload)
    if failures:
        lines = failure_lines(failures)
        for failure in failures:
            if "ids" in failure:
                ids = failure["ids"]
                lines.append(f"    offending {ids['keys']} ({ids['count']}): {', '.join(ids['values'][:20])}")
            for row in failure.get("rows", [])[:3]:
                lines.append(f"    row of {failure['table']}: {row}")
        moved = "".join(f"\n  quarantined {t} -> {p}" for t, p in quarantined.items())
        raise DataQualityError(
            f"raw gate: {len(failures)} expectation(s) failed on tables {failed_tables} for dt={run_date}"
            f" (results: {out}):\n" + "\n".join(lines) + moved + "".join(f"\n  note: {n}" for n in notes),
            failures,
        )
    summary = {
        "run_date": run_date.isoformat(),
        "success": True,
        "elapsed_s": elapsed,
        "results_path": str(out),
        "volume": payload["volume"],
        "notes": notes,
        "tables": {t: {"rows": len(p.frame)} for t, p in loaded.items() if p.frame is not None},
    }
    log.info("raw suites passed for %s in %.1f s: %s %s", run_date, elapsed, summary["tables"], notes)
    return summary
