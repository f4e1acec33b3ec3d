"""POST /events intake, pure: which events of a valid batch are accepted, and which ids are flagged.

The request gate already refused malformed batches (400 naming the field). Here, per event:
- ``event_ts`` further behind the service's clock than ``serving.max_event_age_seconds``, or ahead of it by more
  than ``max_event_ahead_seconds``: rejected (the rest of the batch is accepted);
- an ``event_id`` seen earlier in the same batch: rejected (a re-sent event from an earlier batch is accepted here
  and counted once by the session state, which remembers each user's recent event ids);
- a user or item the published marts do not know: accepted, and flagged in the answer.
Accepted events become rows of the raw events contract (the raw log and the session path take them as they are).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from serving.schemas import EventIn, EventRejection
from shoprank.mart_files import mart_files
from shoprank.raw_contract import SCHEMAS

EVENT_COLUMNS = tuple(SCHEMAS["events"].names)


@dataclass
class Screened:
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[EventRejection] = field(default_factory=list)
    unknown_users: list[str] = field(default_factory=list)
    unknown_items: list[str] = field(default_factory=list)


def screen_events(
    events: Sequence[EventIn],
    now: datetime,
    max_age_seconds: float,
    max_ahead_seconds: float,
    known_users: Collection[str],
    known_items: Collection[str],
) -> Screened:
    """Split a valid batch into accepted raw-contract rows and rejections; flag unknown ids (first-seen order)."""
    oldest, newest = now - timedelta(seconds=max_age_seconds), now + timedelta(seconds=max_ahead_seconds)
    out = Screened()
    seen: set[str] = set()
    unknown_users: dict[str, None] = {}
    unknown_items: dict[str, None] = {}
    for index, event in enumerate(events):
        reason = None
        if event.event_id in seen:
            reason = ("event_id", "duplicate event_id in this batch")
        elif event.event_ts < oldest:
            reason = ("event_ts", f"older than {max_age_seconds:.0f} s before the service's clock ({now.isoformat()})")
        elif event.event_ts > newest:
            reason = (
                "event_ts",
                f"more than {max_ahead_seconds:.0f} s ahead of the service's clock ({now.isoformat()})",
            )
        if reason is not None:
            out.rejections.append(
                EventRejection(index=index, event_id=event.event_id, field=reason[0], reason=reason[1])
            )
            continue
        seen.add(event.event_id)
        out.rows.append(event.model_dump())
        if event.user_id not in known_users:
            unknown_users[event.user_id] = None
        if event.item_id not in known_items:
            unknown_items[event.item_id] = None
    out.unknown_users, out.unknown_items = list(unknown_users), list(unknown_items)
    return out


def load_user_ids(marts: Path) -> frozenset[str]:
    """The users the published user_features mart knows (any snapshot); empty when it is missing."""
    import pyarrow.parquet as pq

    files = mart_files(marts.resolve(), "user_features")  # its file or day files (shoprank/mart_files.py)
    if not files:
        return frozenset()
    column = pq.read_table([str(p) for p in files], columns=["user_id"], partitioning=None).column("user_id").unique()
    return frozenset(str(user) for user in column.to_pylist())
