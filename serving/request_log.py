"""Served requests and their impressions, logged in the raw data contract so tomorrow's pipeline can learn from today.

Impressions are rows of the raw ``events`` table (event_type 'impression', request_id, position, surface, query,
price), and so are the events POST /events accepts (:meth:`RequestLogger.log_events`); one row per request goes to a
``requests`` table beside it (model and rules versions, degraded, latency).
Both are buffered in memory and written as new files — ``<serving_logs_dir>/<table>/dt=YYYY-MM-DD/part-<uuid>.parquet``
— by a background writer thread: when the buffer is full (the request that fills it only wakes the writer; the
DataFrame and Parquet work never runs on the request path), every ``flush_seconds`` and at shutdown (``close`` joins
the writer and writes what is left, so nothing buffered is lost). The buffer is bounded: should the writer fall
``MAX_PENDING_BUFFERS`` buffers behind, the request that finds it so writes inline (back-pressure, never a drop).
They never go into raw_dir, whose partitions the simulator rewrites; an ingestion step can append them to raw
events (same schema).
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shoprank.raw_contract import SCHEMAS

log = logging.getLogger("shoprank.serving.log")

REQUEST_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("request_ts", pa.timestamp("us", tz="UTC")),
        ("user_id", pa.string()),
        ("surface", pa.string()),
        ("query", pa.string()),
        ("k", pa.int64()),
        ("apply_rules", pa.bool_()),
        ("model_version", pa.string()),
        ("rules_version", pa.string()),
        ("degraded", pa.bool_()),
        ("degraded_reasons", pa.string()),
        ("n_candidates", pa.int64()),
        ("latency_ms", pa.float64()),
        # online experiments (serving/experiments/): nullable, None outside any experiment
        ("experiment", pa.string()),
        ("arm", pa.string()),
        ("assignments", pa.string()),  # JSON {experiment: arm}
        ("interleaved", pa.string()),  # "tagA|tagB" for an interleaving arm
        ("interleave_teams", pa.string()),  # JSON {item_id: "A"|"B"}, the shown items' contributors
    ]
)


# The writer may lag this many full buffers before a logging request writes inline (bounded memory, nothing dropped).
MAX_PENDING_BUFFERS = 4


class RequestLogger:
    def __init__(self, root: Path, buffer_rows: int = 5000, flush_seconds: float = 10.0) -> None:
        self.root = Path(root)
        self.buffer_rows = buffer_rows
        self.flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # one writer at a time: files land in the order their rows were buffered
        self._events: list[dict[str, Any]] = []
        self._requests: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._timer = threading.Thread(target=self._tick, name="request-log-flush", daemon=True)
        self._timer.start()

    def log(self, request: dict[str, Any], impressions: list[dict[str, Any]]) -> None:
        """One served request and its impressions (contract columns; event_id/event_ts filled here)."""
        now = datetime.now(UTC)
        for row in impressions:
            row.setdefault("event_id", uuid.uuid4().hex)
            row.setdefault("event_ts", now)
            row.setdefault("event_type", "impression")
            row.setdefault("quantity", None)
        request.setdefault("request_ts", now)
        with self._lock:
            self._events.extend(impressions)
            self._requests.append(request)
            pending = len(self._events)
        self._signal(pending)

    def log_events(self, rows: list[dict[str, Any]]) -> None:
        """Events accepted by POST /events, already in the raw events contract's columns, into the same buffer."""
        with self._lock:
            self._events.extend(rows)
            pending = len(self._events)
        self._signal(pending)

    def _signal(self, pending: int) -> None:
        """A full buffer wakes the writer thread; one the writer has let grow past its bound is written here."""
        if pending >= self.buffer_rows * MAX_PENDING_BUFFERS or self._stop.is_set():
            self.flush()
        elif pending >= self.buffer_rows:
            self._wake.set()

    def flush(self) -> list[Path]:
        with self._lock:
            events, requests = self._events, self._requests
            self._events, self._requests = [], []
        written: list[Path] = []
        if not events and not requests:
            return written
        with self._write_lock:
            try:
                written += self._write("events", events, SCHEMAS["events"], "event_ts")
                written += self._write("requests", requests, REQUEST_SCHEMA, "request_ts")
            except Exception:
                log.exception("could not write %d serving log rows", len(events) + len(requests))
        return written

    def _write(self, table: str, rows: list[dict[str, Any]], schema: pa.Schema, ts: str) -> list[Path]:
        """One file per UTC day of ``ts``, the rows in buffer order. Built column by column straight into Arrow (not
        through a DataFrame of the row dicts: a fifth of the CPU, and the writer holds the GIL, which the requests
        being served need, for that long)."""
        if not rows:
            return []
        stamps = [_utc(row[ts]) for row in rows]
        days: dict[date, list[int]] = {}
        for position, stamp in enumerate(stamps):
            days.setdefault(stamp.date(), []).append(position)
        paths = []
        for day in sorted(days):
            part = [rows[p] for p in days[day]]
            columns = {name: [row.get(name) for row in part] for name in schema.names}
            columns[ts] = [stamps[p] for p in days[day]]
            path = self.root / table / f"dt={day.isoformat()}" / f"part-{uuid.uuid4().hex}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            pq.write_table(pa.Table.from_pydict(columns, schema=schema), tmp)
            tmp.replace(path)  # atomic: a reader never sees half a file
            paths.append(path)
        return paths

    def _tick(self) -> None:
        """The writer: every ``flush_seconds``, or as soon as a request fills the buffer, until ``close``."""
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            if not self._stop.is_set():
                self.flush()

    def close(self) -> None:
        """Stop the writer (it finishes the write under way) and write everything still buffered."""
        self._stop.set()
        self._wake.set()
        self._timer.join()
        self.flush()


def _utc(value: Any) -> datetime:
    """A row's timestamp as an aware UTC datetime, as ``pd.to_datetime(utc=True)`` reads it (naive: UTC; a string:
    parsed), to the microsecond (the contract's unit)."""
    if not isinstance(value, datetime):
        value = pd.Timestamp(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if isinstance(value, pd.Timestamp):
        value = value.floor("us").to_pydatetime()
    return value.astimezone(UTC)
