"""The serving log's background writer (serving/request_log.py): a request that fills the buffer only wakes the
writer thread (no Parquet write on the request path), a writer that falls behind is caught up by the requests
(bounded buffer), and ``close`` writes every buffered row."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from serving import request_log
from serving.request_log import RequestLogger

TS = datetime(2026, 1, 8, 12, tzinfo=UTC)


def _log(logger: RequestLogger, request_id: str, n_impressions: int = 2) -> None:
    impressions = [
        {"user_id": "u1", "item_id": f"i{p}", "request_id": request_id, "position": p, "event_ts": TS}
        for p in range(1, n_impressions + 1)
    ]
    logger.log({"request_id": request_id, "user_id": "u1", "request_ts": TS}, impressions)


def _rows(root: Path, table: str) -> pd.DataFrame:
    files = sorted((root / table).rglob("part-*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files]) if files else pd.DataFrame()


@pytest.fixture
def writers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of the thread of every Parquet write."""
    names: list[str] = []
    original = RequestLogger._write

    def recording(self: RequestLogger, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        names.append(threading.current_thread().name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RequestLogger, "_write", recording)
    return names


def test_full_buffer_is_written_by_the_writer_thread_not_the_request(tmp_path: Path, writers: list[str]) -> None:
    logger = RequestLogger(tmp_path, buffer_rows=4, flush_seconds=3600)
    _log(logger, "r1")
    _log(logger, "r2")  # 4 impressions: full
    assert threading.current_thread().name not in writers  # log() returned without writing
    deadline = time.monotonic() + 10
    while len(_rows(tmp_path, "events")) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(_rows(tmp_path, "events")) == 4  # written long before flush_seconds, by the woken writer
    assert set(writers) == {"request-log-flush"}
    logger.close()
    assert sorted(_rows(tmp_path, "requests")["request_id"]) == ["r1", "r2"]


def test_close_writes_every_buffered_row(tmp_path: Path, writers: list[str]) -> None:
    logger = RequestLogger(tmp_path, buffer_rows=10_000, flush_seconds=3600)
    for i in range(50):
        _log(logger, f"r{i}", 3)
    assert not writers  # nothing full, no timer yet: all buffered
    logger.close()
    assert not logger._timer.is_alive()
    events = _rows(tmp_path, "events")
    assert len(events) == 150 and events["event_id"].is_unique
    assert len(_rows(tmp_path, "requests")) == 50
    _log(logger, "late")  # after close nothing waits for a writer that is gone
    assert len(_rows(tmp_path, "requests")) == 51


def test_a_writer_behind_is_caught_up_inline_and_nothing_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = RequestLogger._write
    inline: list[int] = []
    release = threading.Event()

    def slow(self: RequestLogger, table: str, rows, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if threading.current_thread().name == "request-log-flush":
            release.wait(10)  # the writer is stuck on a slow disk
        elif table == "events":
            inline.append(len(rows))
        return original(self, table, rows, *args, **kwargs)

    monkeypatch.setattr(RequestLogger, "_write", slow)
    logger = RequestLogger(tmp_path, buffer_rows=4, flush_seconds=3600)
    _log(logger, "r0")
    _log(logger, "r1")  # full: the writer takes these 4 rows and blocks
    deadline = time.monotonic() + 10
    while logger._events and time.monotonic() < deadline:
        time.sleep(0.01)
    threading.Timer(0.3, release.set).start()
    for i in range(2, 2 + 2 * request_log.MAX_PENDING_BUFFERS):  # 16 more rows: the bound (4 buffers) is reached
        _log(logger, f"r{i}")
    assert inline and max(inline) >= 4 * request_log.MAX_PENDING_BUFFERS  # the request wrote them itself
    logger.close()
    assert len(_rows(tmp_path, "events")) == 4 + 4 * request_log.MAX_PENDING_BUFFERS
    assert len(_rows(tmp_path, "requests")) == 2 + 2 * request_log.MAX_PENDING_BUFFERS


def test_rows_are_written_as_the_dataframe_path_wrote_them(tmp_path: Path) -> None:
    """Straight into Arrow, the same files as through ``pd.DataFrame(rows)`` (the earlier path): a file per UTC day,
    rows in buffer order, naive stamps read as UTC, strings parsed, missing columns null, other time zones moved."""
    from datetime import timedelta, timezone

    from shoprank.raw_contract import SCHEMAS

    paris = timezone(timedelta(hours=1))
    stamps = [
        datetime(2026, 1, 8, 23, 59, 59, 123456, tzinfo=UTC),
        datetime(2026, 1, 9, 0, 30, tzinfo=paris),  # 2026-01-08 23:30 UTC
        datetime(2026, 1, 9, 0, 0, 1),  # naive: UTC
        "2026-01-09T10:00:00Z",
        datetime(2026, 1, 8, 1, tzinfo=UTC),
    ]
    rows = [
        {"event_id": f"e{i}", "event_ts": ts, "event_type": "click", "user_id": "u1", "item_id": f"i{i}",
         "position": i if i % 2 else None, "price": 1.5 * i, "quantity": None, "not_a_column": 1}
        for i, ts in enumerate(stamps)
    ]  # fmt: skip
    logger = RequestLogger(tmp_path, buffer_rows=10_000, flush_seconds=3600)
    logger.log_events([dict(row) for row in rows])
    logger.close()
    schema = SCHEMAS["events"]
    expected = pd.DataFrame(rows, columns=schema.names)
    expected["event_ts"] = pd.to_datetime(expected["event_ts"], utc=True, format="mixed").astype("datetime64[us, UTC]")
    for day in ("2026-01-08", "2026-01-09"):
        (written,) = (tmp_path / "events" / f"dt={day}").glob("part-*.parquet")
        got = pd.read_parquet(written)
        want = expected[expected["event_ts"].dt.date.astype(str) == day].reset_index(drop=True)
        want = pd.DataFrame(pa.Table.from_pandas(want, schema=schema, preserve_index=False).to_pandas())
        assert list(got["event_id"]) == (["e0", "e1", "e4"] if day == "2026-01-08" else ["e2", "e3"])
        pd.testing.assert_frame_equal(got, want)
