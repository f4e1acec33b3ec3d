"""The Redis side of the real-time path (the services profile): key names, the client, and the service's publisher.

POST /events XADDs each accepted event to one stream, ``<prefix>:events`` (MAXLEN ~ ``streaming.stream_maxlen``),
one entry per event with one field ``e``: the event as compact JSON. `shoprank stream-worker`
(serving/stream_worker.py) consumes it in a consumer group. When Redis refuses (down), the publisher keeps the
events in a bounded in-memory backlog, in order, and a background thread re-sends them once Redis answers again; the
events are in the raw events log either way. The same thread watches the worker's heartbeat, so /rank knows,
without a round trip of its own, whether session features are being kept fresh.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shoprank.settings import Settings

if TYPE_CHECKING:
    import redis

log = logging.getLogger("shoprank.serving.stream")

# /rank's degraded reasons for the session path (stable strings, like serving/service.py's).
STREAM_UNAVAILABLE = "session-stream-unavailable"
WORKER_STALLED = "session-worker-stalled"
EVENT_FIELD = "e"


@dataclass(frozen=True)
class StreamKeys:
    """Every Redis key of the path, under one prefix (tests use a prefix of their own)."""

    prefix: str

    @property
    def stream(self) -> str:
        return f"{self.prefix}:events"

    def session(self, user_id: str) -> str:
        return f"{self.prefix}:session:{user_id}"

    @property
    def heartbeat(self) -> str:
        return f"{self.prefix}:worker:heartbeat"

    @property
    def stats(self) -> str:
        return f"{self.prefix}:worker:stats"


def redis_client(settings: Settings) -> redis.Redis:
    """A client of the services profile's Redis, with short timeouts: a caller on the request path must not hang."""
    import redis

    services, timeout = settings.services, settings.streaming.redis_timeout_seconds
    return redis.Redis(
        host=services.redis_host,
        port=services.redis_port,
        db=services.redis_db,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )


def encode_event(row: dict[str, Any]) -> str:
    """An event as compact JSON (None values left out; timestamps in ISO 8601)."""
    return json.dumps(
        {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items() if v is not None},
        separators=(",", ":"),
    )


def decode_event(payload: bytes | str) -> dict[str, Any]:
    """The event :func:`encode_event` wrote (event_ts back to a datetime)."""
    row = json.loads(payload)
    row["event_ts"] = datetime.fromisoformat(row["event_ts"])
    return dict(row)


def xadd_all(client: redis.Redis, keys: StreamKeys, payloads: Iterable[str], maxlen: int) -> int:
    """XADD each payload, in order, in one round trip; the stream trimmed to about ``maxlen`` entries."""
    pipe = client.pipeline(transaction=False)
    count = 0
    for payload in payloads:
        pipe.xadd(keys.stream, {EVENT_FIELD: payload}, maxlen=maxlen, approximate=True)
        count += 1
    pipe.execute()
    return count


class StreamPublisher:
    """XADD accepted events; keep them (bounded, in order) while Redis is down; report the path's health."""

    def __init__(self, settings: Settings, client: redis.Redis | None = None, check_seconds: float = 0.5) -> None:
        cfg = settings.streaming
        self.client = client or redis_client(settings)
        self.keys = StreamKeys(cfg.key_prefix)
        self.maxlen = cfg.stream_maxlen
        self.stale_seconds = cfg.heartbeat_stale_seconds
        self.backlog: deque[str] = deque(maxlen=cfg.backlog_events or None)
        self.backlog_limit = cfg.backlog_events
        self.dropped = 0
        self._lock = threading.Lock()
        self._reachable = True
        self._worker_fresh = False
        self._stop = threading.Event()
        self._check_seconds = check_seconds
        self._thread = threading.Thread(target=self._watch, name="event-stream", daemon=True)
        self._thread.start()

    def submit(self, rows: list[dict[str, Any]]) -> bool:
        """Send the events (True), or queue them behind earlier ones while Redis is down (False)."""
        payloads = [encode_event(row) for row in rows]
        with self._lock:
            if self._reachable and not self.backlog:
                try:
                    xadd_all(self.client, self.keys, payloads, self.maxlen)
                    return True
                except Exception as exc:
                    self._reachable = False
                    log.warning("event stream unavailable, queueing events: %s: %s", type(exc).__name__, exc)
            self._queue(payloads)
            return False

    def _queue(self, payloads: list[str]) -> None:
        overflow = len(self.backlog) + len(payloads) - self.backlog_limit
        if overflow > 0:  # the oldest go (they are in the raw events log)
            self.dropped += overflow
            log.warning("event backlog full: %d oldest events not streamed (kept in the raw log)", overflow)
        if self.backlog_limit:
            self.backlog.extend(payloads)

    def degraded_reasons(self) -> list[str]:
        """Why session features are not fresh right now (empty: Redis answers and the worker is alive)."""
        if not self._reachable:
            return [STREAM_UNAVAILABLE]
        return [] if self._worker_fresh else [WORKER_STALLED]

    def _watch(self) -> None:
        while not self._stop.wait(self._check_seconds):
            self.check()

    def check(self) -> None:
        """Re-send the backlog when Redis answers; read the worker's heartbeat (a Unix time it refreshes)."""
        try:
            beat: Any = self.client.get(self.keys.heartbeat)
            self._worker_fresh = beat is not None and time.time() - float(beat) < self.stale_seconds
            with self._lock:
                while self.backlog:
                    chunk = [self.backlog[i] for i in range(min(len(self.backlog), 5000))]
                    xadd_all(self.client, self.keys, chunk, self.maxlen)
                    for _ in chunk:
                        self.backlog.popleft()
                if not self._reachable:
                    log.info("event stream back: backlog sent")
                self._reachable = True
        except Exception as exc:
            if self._reachable:
                log.warning("event stream unavailable: %s: %s", type(exc).__name__, exc)
            self._reachable = False

    def close(self) -> None:
        self._stop.set()
        self.check()  # a last attempt at the backlog
