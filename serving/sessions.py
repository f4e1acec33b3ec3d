"""Session state from accepted events, and its push to the online store: the one computation both paths call.

- :func:`fold_events` folds accepted events into users' :class:`~shoprank.session.SessionState` with
  ``shoprank.session.update`` (a re-sent event id is counted once, by the state itself);
- :func:`push_frame` is the rows pushed: ``user_session_features`` of each changed user, packed in one string
  column, stamped ``feature_ts``;
- :class:`SessionPusher` writes them to the push source's view with Feast's ``write_to_online_store`` (one write per
  batch) on a FeatureStore of its own (its own online-store connection, apart from the request path's).

The services profile's worker (serving/stream_worker.py) keeps the states in Redis; the local profile's
:class:`EmbeddedSessions` keeps them in the service's memory and pushes from a background thread, so `make demo`
shows the real-time path without any server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from shoprank.feature_contract import push_views
from shoprank.session import (
    STORED_COLUMN,
    SessionConfig,
    SessionEvent,
    SessionState,
    dedup_id,
    pack_row,
    update,
    user_session_features,
)
from shoprank.settings import Settings

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger("shoprank.serving.sessions")

# /rank's degraded reason when the embedded path cannot push.
SESSION_PUSH_FAILED = "session-push-failed"
TIMESTAMP_COLUMN = "feature_ts"
(SESSION_VIEW,) = push_views()


@dataclass
class Folded:
    """What a batch did: the users whose state changed, events counted, and events not counted (a repeated
    event id, or too late for its session)."""

    changed: set[str]
    counted: int = 0
    ignored: int = 0


def session_events(rows: Iterable[Mapping[str, Any]], categories: Mapping[str, int]) -> list[SessionEvent]:
    """Raw-contract event rows as session events, each with its item's category (None: unknown item) and the id it
    counts once by (``shoprank.session.dedup_id``: an impression is its request and item)."""
    return [
        SessionEvent(
            event_id=dedup_id(str(row["event_id"]), str(row["event_type"]), row.get("request_id"), str(row["item_id"])),
            event_ts=row["event_ts"].astimezone(UTC),
            event_type=str(row["event_type"]),
            user_id=str(row["user_id"]),
            item_id=str(row["item_id"]),
            category_id=categories.get(str(row["item_id"])),
            query=row.get("query"),
        )
        for row in rows
    ]


def fold_events(states: dict[str, SessionState], events: Iterable[SessionEvent], config: SessionConfig) -> Folded:
    """Fold ``events`` (in order) into ``states`` (a new user gets a new state)."""
    folded = Folded(changed=set())
    for event in events:
        state = states.get(event.user_id)
        if state is None:
            state = states[event.user_id] = SessionState(user_id=event.user_id)
        before = (len(state.event_ids), state.late_dropped, state.last_ts)
        repeated = event.event_id in state.event_ids
        update(state, event, config)
        if repeated or state.late_dropped != before[1]:
            folded.ignored += 1
        else:
            folded.counted += 1
            folded.changed.add(event.user_id)
    return folded


def push_frame(
    states: Mapping[str, SessionState], users: Iterable[str], now: datetime, config: SessionConfig, n_categories: int
) -> pd.DataFrame:
    """The rows pushed for ``users``: user_id, the session summary as of ``now`` packed in one string
    (``shoprank.session.pack_row``), stamped ``feature_ts`` = now: one online-store value per user."""
    ordered = sorted(users)
    packed = [pack_row(user_session_features(states[u], now, config, n_categories=n_categories)) for u in ordered]
    frame = pd.DataFrame({"user_id": pd.Series(ordered, dtype=object), STORED_COLUMN: pd.Series(packed, dtype=object)})
    frame[TIMESTAMP_COLUMN] = pd.Timestamp(now).tz_convert("UTC")
    return frame


def n_categories_of(settings: Settings) -> int:
    return settings.simulator.categories


def load_item_categories(marts: Path) -> dict[str, int]:
    """item_id -> category of the published item_features mart's newest rows (what the stream worker tags events
    with; the service uses its item cache)."""
    path = marts.resolve() / "item_features.parquet"
    if not path.exists():
        return {}
    items = pd.read_parquet(path, columns=["item_id", "feature_ts", "item_category_id"])
    latest = items.sort_values("feature_ts").drop_duplicates("item_id", keep="last").dropna()
    return dict(zip(latest["item_id"].astype(str), latest["item_category_id"].astype(int), strict=True))


class SessionPusher:
    """Feast's push API into the online store, for the session view's push source (named by the registry)."""

    def __init__(self, settings: Settings, store: FeatureStore | None = None) -> None:
        from shoprank.feature_store import get_feature_store

        self.store = store or get_feature_store(settings)
        view = self.store.get_feature_view(SESSION_VIEW)
        if view.stream_source is None:
            raise ValueError(f"feature view {SESSION_VIEW} has no push source: run `shoprank feast-apply`")
        self.source = view.stream_source.name

    def push(self, frame: pd.DataFrame) -> None:
        """One online-store write (one transaction on SQLite, one pipeline on Redis) for every row of ``frame``.

        ``write_to_online_store`` on the push source's one view is what ``store.push(source, ...)`` does for it,
        without listing every feature view of the registry per call (a fixed ~0.4 s per batch on a loaded box)."""
        if len(frame):
            self.store.write_to_online_store(SESSION_VIEW, frame, allow_registry_cache=True)


class EmbeddedSessions:
    """The local profile's session path: states in this process (the ``max_users`` most recent), pushed to the
    online store by a background thread as events arrive."""

    def __init__(
        self,
        settings: Settings,
        categories: Callable[[Sequence[str]], Mapping[str, int]],
        pusher: Callable[[], SessionPusher] | None = None,
        max_users: int = 100_000,
    ) -> None:
        self.config = settings.session
        self.n_categories = n_categories_of(settings)
        self.interval = settings.streaming.embedded_push_interval
        self.max_users = max_users
        self.categories = categories
        self.states: OrderedDict[str, SessionState] = OrderedDict()
        self.error: str | None = None
        self.pushed = 0
        self._make_pusher = pusher or (lambda: SessionPusher(settings))
        self._pending: list[SessionEvent] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="session-push", daemon=True)
        self._thread.start()

    def submit(self, rows: list[dict[str, Any]]) -> bool:
        events = session_events(rows, self.categories(sorted({str(r["item_id"]) for r in rows})))
        with self._lock:
            self._pending.extend(events)
        self._wake.set()
        return True

    def degraded_reasons(self) -> list[str]:
        return [SESSION_PUSH_FAILED] if self.error else []

    def _run(self) -> None:
        pusher: SessionPusher | None = None
        dirty: set[str] = set()
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            with self._lock:
                events, self._pending = self._pending, []
            if not events and not dirty:
                continue
            try:
                folded = fold_events(self.states, events, self.config)
                for user in folded.changed:
                    self.states.move_to_end(user)
                while len(self.states) > self.max_users:
                    dirty.discard(self.states.popitem(last=False)[0])
                dirty |= folded.changed  # pushed until a push succeeds
                pusher = pusher or self._make_pusher()
                now = datetime.now(UTC)
                pusher.push(push_frame(self.states, dirty, now, self.config, self.n_categories))
                self.pushed += len(dirty)
                dirty = set()
                self.error = None
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                log.exception("session push failed")
            time.sleep(self.interval)  # batch what arrives meanwhile into the next push

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
