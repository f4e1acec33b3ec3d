"""`shoprank stream-worker`: the services profile's consumer of the event stream.

Per batch (XREADGROUP of up to ``streaming.batch_size`` entries): the users' session states are read from Redis
(one hash per user, ``<prefix>:session:<user_id>``, expiring after ``streaming.session_ttl_seconds`` without
events, its size bounded by the session config's caps), the events folded in (serving/sessions.py, the same code
the embedded path runs; a re-sent event id counts once), the changed users' session features pushed to the online
store with Feast's push API, and then, in ONE Redis transaction, the new states saved, the entries acknowledged
(XACK) and the counters moved. A worker that dies before that transaction leaves its entries pending and the saved
states untouched: whoever claims the entries (XAUTOCLAIM, on start) recomputes the same states; pushing the same row
twice is harmless. So no event is lost and none is counted twice.

On start the worker takes its own pending entries, then claims those another consumer has left idle for
``streaming.claim_idle_ms`` (a crashed worker's), then reads new ones. SIGTERM/SIGINT finish the current batch and
stop. Redis down: it retries every second. A heartbeat key tells the service the worker is alive.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from serving.event_stream import EVENT_FIELD, StreamKeys, decode_event, redis_client
from serving.sessions import (
    SessionPusher,
    fold_events,
    load_item_categories,
    n_categories_of,
    push_frame,
    session_events,
)
from shoprank.session import SessionState
from shoprank.settings import Settings

if TYPE_CHECKING:
    import redis

log = logging.getLogger("shoprank.serving.stream_worker")

STATE_FIELD = "state"
Entry = tuple[Any, dict[Any, Any]]


@dataclass
class WorkerStats:
    entries: int = 0
    counted: int = 0
    ignored: int = 0
    malformed: int = 0
    pushed_users: int = 0
    batches: int = 0
    claimed: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "errors"} | {"errors": self.errors[-5:]}


class StreamWorker:
    def __init__(self, settings: Settings, client: redis.Redis | None = None, consumer: str | None = None) -> None:
        cfg = settings.streaming
        self.settings = settings
        self.cfg = cfg
        self.config = settings.session
        self.n_categories = n_categories_of(settings)
        self.keys = StreamKeys(cfg.key_prefix)
        # A blocking read must not time out on the socket first.
        self.client = client or redis_client(settings)
        self.client.connection_pool.connection_kwargs["socket_timeout"] = cfg.block_ms / 1000 + 5
        self.consumer = consumer or cfg.consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.pusher = SessionPusher(settings)
        self.categories: dict[str, int] = {}
        self._categories_from: Any = None
        self.stats = WorkerStats()
        self.stop = threading.Event()

    # ---- set-up --------------------------------------------------------------------------------------------
    def ensure_group(self) -> None:
        import redis

        try:
            self.client.xgroup_create(self.keys.stream, self.cfg.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def refresh_categories(self) -> None:
        """Item categories from the published marts, re-read when the pointer moves to another snapshot."""
        marts = self.settings.marts_export_dir
        target = marts.resolve() if marts.exists() else None
        if target != self._categories_from:
            self.categories = load_item_categories(marts)
            self._categories_from = target

    # ---- one batch -------------------------------------------------------------------------------------------
    def process(self, entries: Sequence[Entry]) -> None:
        """Fold, push, then save + XACK in one transaction (see the module docstring)."""
        if not entries:
            return
        rows, ids = [], []
        for entry_id, fields in entries:
            ids.append(entry_id)
            fields = fields or {}  # a pending entry trimmed from the stream comes back without fields
            payload = fields.get(EVENT_FIELD.encode()) or fields.get(EVENT_FIELD)
            try:
                rows.append(decode_event(payload))  # type: ignore[arg-type]  # None: caught below
            except Exception:
                self.stats.malformed += 1
                log.warning("stream entry %s is not an event; acknowledged and skipped", entry_id)
        users = sorted({str(row["user_id"]) for row in rows})
        states = self._load_states(users)
        folded = fold_events(states, session_events(rows, self.categories), self.config)
        now = datetime.now(UTC)
        self.pusher.push(push_frame(states, folded.changed, now, self.config, self.n_categories))
        pipe = self.client.pipeline(transaction=True)
        for user in folded.changed:
            key = self.keys.session(user)
            pipe.hset(key, STATE_FIELD, json.dumps(states[user].to_dict()))
            pipe.expire(key, self.cfg.session_ttl_seconds)
        pipe.xack(self.keys.stream, self.cfg.group, *ids)
        pipe.hincrby(self.keys.stats, "counted", folded.counted)
        pipe.hincrby(self.keys.stats, "ignored", folded.ignored)
        pipe.hincrby(self.keys.stats, "entries", len(ids))
        pipe.execute()
        self.stats.entries += len(ids)
        self.stats.counted += folded.counted
        self.stats.ignored += folded.ignored
        self.stats.pushed_users += len(folded.changed)
        self.stats.batches += 1

    def _load_states(self, users: Sequence[str]) -> dict[str, SessionState]:
        pipe = self.client.pipeline(transaction=False)
        for user in users:
            pipe.hget(self.keys.session(user), STATE_FIELD)
        states = {}
        for user, blob in zip(users, pipe.execute(), strict=True):
            if blob is not None:
                states[user] = SessionState.from_dict(json.loads(blob))
        return states

    # ---- the loop ----------------------------------------------------------------------------------------------
    def heartbeat(self) -> None:
        ttl = max(int(self.cfg.heartbeat_stale_seconds * 4), 5)
        self.client.set(self.keys.heartbeat, f"{time.time():.3f}", ex=ttl)

    def recover(self) -> None:
        """This consumer's own pending entries, then those another consumer left idle (a crashed worker's)."""
        while not self.stop.is_set():
            reply: Any = self.client.xreadgroup(
                self.cfg.group, self.consumer, {self.keys.stream: "0"}, count=self.cfg.batch_size
            )
            entries = reply[0][1] if reply else []
            if not entries:
                break
            self.process(entries)
        start = "0-0"
        while not self.stop.is_set():
            claimed: Any = self.client.xautoclaim(
                self.keys.stream,
                self.cfg.group,
                self.consumer,
                min_idle_time=self.cfg.claim_idle_ms,
                start_id=start,
                count=self.cfg.batch_size,
            )
            start, entries = claimed[0], [e for e in claimed[1] if e[1] is not None]
            self.stats.claimed += len(entries)
            self.process(entries)
            if start in (b"0-0", "0-0"):
                break

    def run(self, max_idle_batches: int | None = None) -> WorkerStats:
        """Consume until :attr:`stop` is set (or, for tests and benchmarks, ``max_idle_batches`` empty reads)."""
        import redis

        recovered, idle = False, 0
        last_beat = 0.0
        while not self.stop.is_set():
            try:
                if time.monotonic() - last_beat > 1.0:
                    self.heartbeat()
                    self.refresh_categories()
                    last_beat = time.monotonic()
                if not recovered:
                    self.ensure_group()
                    self.recover()
                    recovered = True
                reply: Any = self.client.xreadgroup(
                    self.cfg.group,
                    self.consumer,
                    {self.keys.stream: ">"},
                    count=self.cfg.batch_size,
                    block=self.cfg.block_ms,
                )
                entries = reply[0][1] if reply else []
                self.process(entries)
                idle = 0 if entries else idle + 1
                if max_idle_batches is not None and idle >= max_idle_batches:
                    break
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self._failed(exc, "Redis unavailable; retrying in 1 s")
                recovered = False  # claim again once it is back: entries may have been left pending
                self.stop.wait(1.0)
            except Exception as exc:  # e.g. the online store refused the push: entries stay pending
                self._failed(exc, "batch failed; its entries stay pending and are retried")
                recovered = False
                self.stop.wait(1.0)
        return self.stats

    def _failed(self, exc: BaseException, what: str) -> None:
        message = f"{type(exc).__name__}: {exc}"
        self.stats.errors.append(message)
        log.warning("stream worker: %s (%s)", what, message)


def run_stream_worker(settings: Settings, handle_signals: bool = True) -> dict[str, Any]:
    """`shoprank stream-worker`: consume until SIGTERM or SIGINT, then return the counts."""
    worker = StreamWorker(settings)
    if handle_signals:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: worker.stop.set())
    log.info(
        "stream worker %s on %s (group %s, batches of %d)",
        worker.consumer,
        worker.keys.stream,
        worker.cfg.group,
        worker.cfg.batch_size,
    )
    stats = worker.run()
    log.info("stream worker stopped: %s", stats.as_dict())
    return stats.as_dict()
