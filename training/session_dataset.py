"""Session features for training, point in time: the raw events replayed through the online path's own function.

For every request of the training frame, the user's session state is built from that user's raw events strictly before
the request (its first impression's timestamp) by :func:`shoprank.session.apply_event`, the function the stream worker
folds each event with; the pushed row :func:`shoprank.session.user_session_features` is taken at that instant, and the
model columns come from the same request-time functions serving calls. One definition, so the training values are
the values serving would have read (tests/unit/test_session.py, tests/data/test_session_replay.py).

The replay is one ordered pass over the events (a Python loop, a few microseconds per event): events and request
instants of a user are merged in time order, an instant before the events of the same timestamp (strictly before).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from shoprank.feature_contract import push_views, ranker
from shoprank.ranking_features import TitleWordIndex, title_words
from shoprank.session import (
    EVENT_CODES,
    SessionConfig,
    SessionState,
    apply_event,
    candidate_session_features,
    pushed_columns,
    session_query_features,
    session_user_features,
    user_session_features,
)
from shoprank.settings import Settings

log = logging.getLogger(__name__)

SESSION_VIEW = "user_session_features"
EVENT_COLUMNS = ["event_id", "event_ts", "event_type", "user_id", "item_id", "request_id", "query"]


def uses_session_features(feature_service: str) -> bool:
    return SESSION_VIEW in ranker(feature_service).columns


def retrieval_features(store, feature_service: str):  # type: ignore[no-untyped-def]
    """What to ask Feast's historical retrieval for: the service, or, when it reads push views (which have no
    offline source), the references of its other views' features."""
    service = store.get_feature_service(feature_service)
    pushed = set(push_views())
    if not any(p.name in pushed for p in service.feature_view_projections):
        return service
    return [f"{p.name}:{f.name}" for p in service.feature_view_projections if p.name not in pushed for f in p.features]


def epoch_seconds(values: pd.Series | np.ndarray) -> np.ndarray:
    """UTC timestamps as float epoch seconds (microsecond precision, as datetime.timestamp())."""
    stamps = pd.to_datetime(pd.Series(values), utc=True)
    return stamps.dt.tz_convert(None).to_numpy().astype("datetime64[us]").astype(np.int64) / 1e6


def read_events(settings: Settings, first_day: date, last_day: date) -> pd.DataFrame:
    """Raw events of [first_day, last_day] with each item's category (``category_id``: float, NaN unknown)."""
    days = [str(first_day + timedelta(days=i)) for i in range((last_day - first_day).days + 1)]
    events_dir = settings.raw_dir / "events"
    if not events_dir.exists():
        raise FileNotFoundError(f"{events_dir} is missing: session features are replayed from the raw events")
    dataset = ds.dataset(events_dir, format="parquet", partitioning="hive")
    table = dataset.to_table(columns=EVENT_COLUMNS, filter=ds.field("dt").isin(days))
    events = table.to_pandas()
    items = ds.dataset(settings.raw_dir / "items", format="parquet", partitioning="hive")
    catalogue = items.to_table(columns=["item_id", "category_id"]).to_pandas().drop_duplicates("item_id")
    events = events.merge(catalogue, on="item_id", how="left", validate="many_to_one")
    events["category_id"] = events["category_id"].astype(float)
    events["event_id"] = dedup_ids(events)
    return events


def dedup_ids(events: pd.DataFrame) -> pd.Series:
    """``shoprank.session.dedup_id`` of every event, vectorised: an impression of a request counts once by
    (request_id, item_id), as online, where /rank feeds what it served and an application may report it again."""
    keyed = (events["event_type"] == "impression") & events["request_id"].notna() & (events["request_id"] != "")
    impression_ids = "imp:" + events["request_id"].astype(str) + ":" + events["item_id"].astype(str)
    return events["event_id"].where(~keyed, impression_ids)


def request_instants(events: pd.DataFrame) -> pd.DataFrame:
    """One row per request: request_id, user_id, request_ts (epoch seconds of its first impression)."""
    impressions = events[events["event_type"] == "impression"]
    out = impressions.groupby("request_id", sort=False).agg(user_id=("user_id", "first"), event_ts=("event_ts", "min"))
    out = out.reset_index()
    out["request_ts"] = epoch_seconds(out.pop("event_ts"))
    return out


def session_snapshots(
    events: pd.DataFrame, requests: pd.DataFrame, config: SessionConfig, n_categories: int
) -> pd.DataFrame:
    """The pushed row of ``requests``' users as of each request_ts, from ``events`` strictly before it.

    ``events``: event_id, event_ts, event_type, user_id, item_id, category_id (and query: optional, a search
    event's query); ``requests``: request_id, user_id,
    request_ts (epoch seconds). Returns request_id + :func:`shoprank.session.pushed_columns`, in ``requests`` order.
    """
    unknown = set(events["event_type"].unique()) - set(EVENT_CODES)
    if unknown:
        raise ValueError(f"events carry unknown event_type values {sorted(unknown)}")
    n_events = len(events)
    users, user_names = pd.factorize(pd.concat([events["user_id"], requests["user_id"]], ignore_index=True))
    times = np.concatenate([epoch_seconds(events["event_ts"]), requests["request_ts"].to_numpy(dtype=float)])
    is_event = np.concatenate([np.ones(n_events, dtype=np.int8), np.zeros(len(requests), dtype=np.int8)])
    order = np.lexsort((np.arange(len(times)), is_event, times, users)).tolist()

    ids = events["event_id"].tolist()
    codes = events["event_type"].map(EVENT_CODES).tolist()
    items = events["item_id"].tolist()
    cats = [None if np.isnan(c) else int(c) for c in events["category_id"].to_numpy(dtype=float)]
    queries = (
        [q if isinstance(q, str) else None for q in events["query"].tolist()]
        if "query" in events.columns
        else [None] * n_events
    )
    user_list, time_list = users.tolist(), times.tolist()

    rows: list[dict[str, float | int | str]] = [{}] * len(requests)
    state = SessionState(user_id="")
    current = -1
    for idx in order:
        user = user_list[idx]
        if user != current:
            state, current = SessionState(user_id=str(user_names[user])), user
        if idx < n_events:
            apply_event(state, ids[idx], time_list[idx], codes[idx], items[idx], cats[idx], config, queries[idx])
        else:
            rows[idx - n_events] = user_session_features(state, time_list[idx], config, n_categories=n_categories)
    out = pd.DataFrame(rows, columns=list(pushed_columns(n_categories)))
    out.insert(0, "request_id", requests["request_id"].to_numpy())
    return out


@dataclass(frozen=True)
class Catalogue:
    """The items' titles and categories the session_query columns read (serving reads its item cache's)."""

    ids: pd.Index
    titles: TitleWordIndex
    category: np.ndarray  # float, NaN unknown, one per row of ``titles``

    @classmethod
    def from_frame(cls, items: pd.DataFrame) -> Catalogue:
        """From item_id, title, category_id rows (the raw items table; an item's newest row wins)."""
        latest = items.drop_duplicates("item_id", keep="last")
        return cls(
            ids=pd.Index(latest["item_id"].astype(str).to_numpy()),
            titles=TitleWordIndex(title_words(t if isinstance(t, str) else None) for t in latest["title"]),
            category=pd.to_numeric(latest["category_id"], errors="coerce").to_numpy(dtype=float),
        )


def read_catalogue(settings: Settings, last_day: date) -> Catalogue:
    """The raw items table's partitions through ``last_day`` as a :class:`Catalogue`."""
    items = ds.dataset(settings.raw_dir / "items", format="parquet", partitioning="hive")
    table = items.to_table(
        columns=["item_id", "title", "category_id"], filter=ds.field("dt") <= str(pd.Timestamp(last_day).date())
    )
    return Catalogue.from_frame(table.to_pandas())


def session_model_columns(
    frame: pd.DataFrame,
    now: np.ndarray,
    config: SessionConfig,
    n_categories: int,
    catalogue: Catalogue | None = None,
) -> dict[str, np.ndarray]:
    """The session_user and session_candidate columns of rows carrying the pushed columns and item_category_id;
    with a ``catalogue``, the session_query columns too."""
    values = {column: frame[column].to_numpy() for column in pushed_columns(n_categories)}
    category = pd.to_numeric(frame["item_category_id"], errors="coerce").to_numpy(dtype=float)
    out = {
        **session_user_features(values, now, config, n_rows=len(frame)),
        **candidate_session_features(
            values, category, frame["item_id"].to_numpy(), now, config, n_categories=n_categories
        ),
    }
    if catalogue is not None:
        rows = catalogue.ids.get_indexer(frame["item_id"].astype(str).to_numpy())
        out.update(
            session_query_features(
                values, now, config, catalogue.titles, rows, catalogue.category, n_categories=n_categories
            )
        )
    return out


def request_snapshots(settings: Settings, request_ids: pd.Series, first_day: date, last_day: date) -> pd.DataFrame:
    """The pushed row of each of ``request_ids`` (requests of [first_day, last_day]) as of its instant, and
    ``request_ts``: one replay of those days' raw events (and the day before's: a session can start before
    midnight). A request's row depends only on its user's earlier events, so the requests of a whole day replayed
    at once give each chunk of that day the rows a replay of the chunk alone would."""
    events = read_events(settings, first_day - timedelta(days=1), last_day)
    requests = request_instants(events)
    wanted = pd.unique(request_ids)
    requests = requests[requests["request_id"].isin(wanted)].reset_index(drop=True)
    missing = set(wanted) - set(requests["request_id"])
    if missing:
        raise ValueError(f"{len(missing)} training requests have no impression in the raw events, e.g. {min(missing)}")
    snapshots = session_snapshots(events, requests, settings.session, settings.simulator.categories)
    snapshots["request_ts"] = requests["request_ts"].to_numpy()
    return snapshots


def add_session_features(
    settings: Settings, frame: pd.DataFrame, feature_service: str, snapshots: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Add the session_user and session_candidate columns to a training frame (one row per impression, with
    request_id, item_id, item_category_id and dt), when the ranker reads the session view; otherwise unchanged.
    ``snapshots``: :func:`request_snapshots` of (at least) the frame's requests, when the caller replayed already
    (the chunked set replays each day once, not once per chunk)."""
    if not uses_session_features(feature_service) or frame.empty:
        return frame
    n_categories = settings.simulator.categories
    if snapshots is None:
        snapshots = request_snapshots(settings, frame["request_id"], min(frame["dt"]), max(frame["dt"]))
    joined = frame[["request_id", "item_id", "item_category_id"]].merge(
        snapshots, on="request_id", how="left", validate="many_to_one"
    )
    # The session_query columns for every session ranker (one catalogue pass per distinct query): a ranker without
    # them in its feature service leaves them unread, and a benchmark can train both on one frame. A day's requests
    # read the catalogue through the day before, as serving's item cache holds the items published by then (a
    # day's candidates were all created before it), so a day's values do not depend on the frame's other days.
    now = joined["request_ts"].to_numpy(dtype=float)
    days = pd.to_datetime(frame["dt"]).dt.date.to_numpy()
    out = frame.copy()
    for day in sorted(set(days)):
        at = days == day
        catalogue = read_catalogue(settings, day - timedelta(days=1))
        columns = session_model_columns(joined[at], now[at], settings.session, n_categories, catalogue)
        for name, values in columns.items():
            if name not in out.columns:
                out[name] = np.nan
            out.loc[at, name] = values
    active = int((joined["sess_last_event_ts"].notna()).sum())
    log.info("session features: %d requests replayed, %d of %d rows in a session", len(snapshots), active, len(out))
    return out
