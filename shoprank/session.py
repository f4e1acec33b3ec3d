"""Short-term (session) interest: the one definition of a user's session state and of the features read from it.

Online, the stream worker folds each event into the user's state with :func:`update` and pushes
:func:`user_session_features` (the *state summary*, one row per user) to the online store; serving reads that row and
computes the model columns per request with :func:`session_user_features` and :func:`candidate_session_features`.
Offline, training replays a day's raw events through the same :func:`update` and takes the same summary strictly
before each request (training/session_dataset.py), then calls the same two request-time functions.

Why the pushed row holds timestamps rather than ages: it is written when an event arrives and read at a later request,
so anything that depends on the clock (seconds since the last click, clicks in the last 5 minutes, whether the
session is over) is derived at request time from it, identically online and offline.

The state is order-independent within a session: counts, per-category counts, the newest N click/cart timestamps and
the newest K clicked/shown items (by their latest time) do not depend on the order events arrive in. Only session
boundaries do, so a late event is accepted only within ``max_lateness_seconds`` of the newest one (and is placed in the
session it belongs to); later ones are dropped and counted in ``late_dropped``, and so is a late event that would
have bridged the gap to the previous session (whose state is gone). A repeated ``event_id`` (among the
session's last ``max_event_ids``) is counted once. Pure: no I/O, no clock.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

EVENT_TYPES = ("impression", "click", "add_to_cart", "purchase")
IMPRESSION, CLICK, CART, PURCHASE = range(4)
EVENT_CODES = {name: code for code, name in enumerate(EVENT_TYPES)}

# Schema constants (they name columns, so they are not settings): the newest click/cart timestamps pushed, and the
# request-time windows counted over them (a window count is therefore at most RECENT_TIMESTAMPS).
RECENT_TIMESTAMPS = 10
MAX_QUERY_WORDS = 16  # a pushed query keeps its first words only (a flood of long queries stays bounded)
WINDOWS = {"5m": 300.0, "30m": 1800.0}
NAN = float("nan")


class SessionConfig(BaseModel):
    """How sessions are cut and how much state a user may hold (``settings.session``, SHOPRANK_SESSION__*)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gap_seconds: float = Field(1800.0, gt=0, description="inactivity that ends a session")
    max_lateness_seconds: float = Field(10.0, ge=0, description="an event older than the newest by more is dropped")
    max_clicked_items: int = Field(50, ge=1, description="newest clicked items kept")
    max_shown_items: int = Field(100, ge=1, description="newest shown items kept")
    max_event_ids: int = Field(2000, ge=1, description="newest event ids remembered to drop duplicates")


def dedup_id(event_id: str, event_type: str, request_id: str | None, item_id: str) -> str:
    """The id a session counts an event once by. An impression of a request is its (request_id, item_id), whoever
    reports it: /rank feeds the impressions it served to the session path itself, and an application may report the
    same impression to /events under an event_id of its own (the raw log then holds it twice; training's replay
    counts it once by this same key). Any other event: its event_id."""
    if event_type == "impression" and request_id:
        return f"imp:{request_id}:{item_id}"
    return event_id


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """One behaviour event as the online path receives it (the raw contract's event, with the item's category)."""

    event_id: str
    event_ts: datetime
    event_type: str
    user_id: str
    item_id: str
    category_id: int | None = None
    query: str | None = None

    def __post_init__(self) -> None:
        if not self.event_id or not self.user_id or not self.item_id:
            raise ValueError(f"event_id, user_id and item_id must be non-empty: {self!r}")
        if self.event_type not in EVENT_CODES:
            raise ValueError(f"event_type {self.event_type!r} is not one of {EVENT_TYPES}")
        if self.event_ts.tzinfo is None or self.event_ts.utcoffset() != timedelta(0):
            raise ValueError(f"event_ts must be a UTC datetime, got {self.event_ts!r}")
        if self.category_id is not None and (isinstance(self.category_id, bool) or self.category_id < 0):
            raise ValueError(f"category_id must be a non-negative int or None, got {self.category_id!r}")


@dataclass
class SessionState:
    """One user's current session (bounded by the config's caps). Timestamps are UTC epoch seconds."""

    user_id: str
    start_ts: float = NAN  # first event of the session
    last_ts: float = NAN  # newest event of the session
    prev_last_ts: float = NAN  # newest event of the previous session (places a late event on the right side)
    counts: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # per EVENT_TYPES
    cat_clicks: dict[int, int] = field(default_factory=dict)
    cat_impressions: dict[int, int] = field(default_factory=dict)  # what the session was shown, per category
    cat_last_click: dict[int, float] = field(default_factory=dict)
    click_ts: list[float] = field(default_factory=list)  # newest first, at most RECENT_TIMESTAMPS
    cart_ts: list[float] = field(default_factory=list)
    clicked: dict[str, float] = field(default_factory=dict)  # item -> latest click, the newest max_clicked_items
    shown: dict[str, float] = field(default_factory=dict)  # item -> latest impression, the newest max_shown_items
    event_ids: dict[str, None] = field(default_factory=dict)  # insertion-ordered set, the newest max_event_ids
    late_dropped: int = 0
    # The newest search query of the session (the query of the newest event that carries one: a search request's
    # impressions and clicks) and its time; "" / NaN before the session's first search.
    last_query: str = ""
    last_query_ts: float = NAN

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (for a state store); :meth:`from_dict` reads it back."""
        return {
            "user_id": self.user_id,
            "start_ts": self.start_ts,
            "last_ts": self.last_ts,
            "prev_last_ts": self.prev_last_ts,
            "counts": list(self.counts),
            "cat_clicks": {str(k): v for k, v in self.cat_clicks.items()},
            "cat_impressions": {str(k): v for k, v in self.cat_impressions.items()},
            "cat_last_click": {str(k): v for k, v in self.cat_last_click.items()},
            "click_ts": list(self.click_ts),
            "cart_ts": list(self.cart_ts),
            "clicked": dict(self.clicked),
            "shown": dict(self.shown),
            "event_ids": list(self.event_ids),
            "late_dropped": self.late_dropped,
            "last_query": self.last_query,
            "last_query_ts": self.last_query_ts,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionState:
        return cls(
            user_id=str(data["user_id"]),
            start_ts=float(data["start_ts"]),
            last_ts=float(data["last_ts"]),
            prev_last_ts=float(data["prev_last_ts"]),
            counts=[int(c) for c in data["counts"]],
            cat_clicks={int(k): int(v) for k, v in data["cat_clicks"].items()},
            # a state saved before per-category impressions were kept has none (they count from the next event)
            cat_impressions={int(k): int(v) for k, v in data.get("cat_impressions", {}).items()},
            cat_last_click={int(k): float(v) for k, v in data["cat_last_click"].items()},
            click_ts=[float(t) for t in data["click_ts"]],
            cart_ts=[float(t) for t in data["cart_ts"]],
            clicked={str(k): float(v) for k, v in data["clicked"].items()},
            shown={str(k): float(v) for k, v in data["shown"].items()},
            event_ids=dict.fromkeys(str(i) for i in data["event_ids"]),
            late_dropped=int(data["late_dropped"]),
            # a state saved before the last query was kept has none (it counts from the next search event)
            last_query=str(data.get("last_query", "")),
            last_query_ts=float(data.get("last_query_ts", NAN)),
        )


def update(state: SessionState, event: SessionEvent, config: SessionConfig) -> SessionState:
    """Fold one event into the user's state (in place; the state is returned)."""
    if event.user_id != state.user_id:
        raise ValueError(f"event {event.event_id} of user {event.user_id!r} given to the state of {state.user_id!r}")
    return apply_event(
        state,
        event.event_id,
        event.event_ts.timestamp(),
        EVENT_CODES[event.event_type],
        event.item_id,
        event.category_id,
        config,
        event.query,
    )


def apply_event(
    state: SessionState,
    event_id: str,
    ts: float,
    code: int,
    item_id: str,
    category_id: int | None,
    config: SessionConfig,
    query: str | None = None,
) -> SessionState:
    """:func:`update` on plain values (the offline replay calls this directly, skipping per-event validation).
    ``query``: the search query the event carries (None or "" for a feed event)."""
    if event_id in state.event_ids:
        return state
    if math.isnan(state.last_ts):
        state.start_ts = state.last_ts = ts
    elif ts - state.last_ts > config.gap_seconds:
        _new_session(state, ts)
    elif ts < state.last_ts - config.max_lateness_seconds:
        state.late_dropped += 1
        return state
    elif ts < state.start_ts:
        opens_session = math.isnan(state.prev_last_ts) or ts - state.prev_last_ts > config.gap_seconds
        if not opens_session:  # it belongs to the previous, closed session
            state.late_dropped += 1
            return state
        state.start_ts = ts
    state.last_ts = max(state.last_ts, ts)
    state.event_ids[event_id] = None
    if len(state.event_ids) > config.max_event_ids:
        del state.event_ids[next(iter(state.event_ids))]
    state.counts[code] += 1
    if code == IMPRESSION:
        _keep_newest(state.shown, item_id, ts, config.max_shown_items)
        if category_id is not None:
            state.cat_impressions[category_id] = state.cat_impressions.get(category_id, 0) + 1
    elif code == CLICK:
        _keep_newest(state.clicked, item_id, ts, config.max_clicked_items)
        _insert_newest(state.click_ts, ts)
        if category_id is not None:
            state.cat_clicks[category_id] = state.cat_clicks.get(category_id, 0) + 1
            state.cat_last_click[category_id] = max(state.cat_last_click.get(category_id, ts), ts)
    elif code == CART:
        _insert_newest(state.cart_ts, ts)
    if query:  # the newest query by (time, text): order-independent like the rest of the state
        query = _normalise_query(query)
        if query and (math.isnan(state.last_query_ts) or (ts, query) > (state.last_query_ts, state.last_query)):
            state.last_query, state.last_query_ts = query, ts
    return state


def _normalise_query(query: str) -> str:
    """A query as its words (lowercase, single spaces; capped): what the pushed row keeps and the features read."""
    return " ".join(query.lower().split()[:MAX_QUERY_WORDS])


def _new_session(state: SessionState, ts: float) -> None:
    state.prev_last_ts = state.last_ts
    state.start_ts = state.last_ts = ts
    state.counts = [0, 0, 0, 0]
    state.cat_clicks, state.cat_last_click, state.cat_impressions = {}, {}, {}
    state.click_ts, state.cart_ts = [], []
    state.clicked, state.shown, state.event_ids = {}, {}, {}
    state.last_query, state.last_query_ts = "", NAN


def _insert_newest(times: list[float], ts: float) -> None:
    """Keep the RECENT_TIMESTAMPS largest values, newest first."""
    i = 0
    while i < len(times) and times[i] >= ts:
        i += 1
    if i < RECENT_TIMESTAMPS:
        times.insert(i, ts)
        del times[RECENT_TIMESTAMPS:]


def _keep_newest(items: dict[str, float], item_id: str, ts: float, cap: int) -> None:
    """item -> latest time; beyond ``cap`` items the one with the oldest (time, id) goes (order-independent)."""
    items[item_id] = max(items.get(item_id, ts), ts)
    if len(items) > cap:
        del items[min(items, key=lambda i: (items[i], i))]


# ---- the pushed row ----------------------------------------------------------------------------------------------
def cat_clicks_columns(n_categories: int) -> list[str]:
    return [f"sess_cat_clicks_{c:02d}" for c in range(n_categories)]


def cat_last_click_columns(n_categories: int) -> list[str]:
    return [f"sess_cat_last_click_ts_{c:02d}" for c in range(n_categories)]


def cat_impressions_columns(n_categories: int) -> list[str]:
    return [f"sess_cat_impressions_{c:02d}" for c in range(n_categories)]


CLICK_TS_COLUMNS = [f"sess_click_ts_{i:02d}" for i in range(RECENT_TIMESTAMPS)]
CART_TS_COLUMNS = [f"sess_cart_ts_{i:02d}" for i in range(RECENT_TIMESTAMPS)]
COUNT_COLUMNS = ["sess_impressions", "sess_clicks", "sess_carts", "sess_purchases"]
TIME_COLUMNS = ["sess_start_ts", "sess_last_event_ts", "sess_last_click_ts"]
ITEM_LIST_COLUMNS = ["sess_clicked_items", "sess_shown_items"]  # space-separated item ids, newest first
QUERY_COLUMN = "sess_last_query"  # the session's newest search query (words, lowercase), "" without one


def pushed_columns(n_categories: int) -> dict[str, str]:
    """The pushed row's columns and dtypes (the feature contract's ``user_session_features`` view)."""
    return {
        **dict.fromkeys(TIME_COLUMNS, "float64"),
        **dict.fromkeys(COUNT_COLUMNS, "int64"),
        **dict.fromkeys(CLICK_TS_COLUMNS + CART_TS_COLUMNS, "float64"),
        **dict.fromkeys(cat_clicks_columns(n_categories), "int64"),
        **dict.fromkeys(cat_last_click_columns(n_categories), "float64"),
        **dict.fromkeys(cat_impressions_columns(n_categories), "int64"),
        **dict.fromkeys(ITEM_LIST_COLUMNS, "string"),
        QUERY_COLUMN: "string",
    }


# The pushed row is stored in the online store as ONE string feature, its compact JSON: one online-store value per
# user and write, not one per column (Feast's SQLite store writes a table row per feature, and 53 per user made the
# worker write-bound at ~2k events/s). Serving's reader unpacks it into the pushed columns.
STORED_COLUMN = "sess_row"


def pack_row(row: Mapping[str, Any]) -> str:
    """The pushed row as the stored string (NaN kept as JSON's NaN token, which :func:`unpack_row` reads back)."""
    return json.dumps(row, separators=(",", ":"))


def unpack_row(stored: str | None) -> dict[str, Any]:
    """The pushed columns from the stored string; {} when the user has no row (no session ever pushed). A row
    pushed before a column existed lacks it: readers take a missing value as none (NaN / 0)."""
    return json.loads(stored) if stored else {}


def user_session_features(
    state: SessionState, now: datetime | float, config: SessionConfig, *, n_categories: int
) -> dict[str, float | int | str]:
    """The row pushed to the online store for the user: the session's summary as of ``now`` (an ended session, or
    none, gives the empty row). Categories outside [0, n_categories) are counted in sess_clicks only."""
    now_ts = now.timestamp() if isinstance(now, datetime) else float(now)
    active = not math.isnan(state.last_ts) and now_ts - state.last_ts <= config.gap_seconds
    if not active:
        state = SessionState(user_id=state.user_id)
    click_ts = state.click_ts + [NAN] * (RECENT_TIMESTAMPS - len(state.click_ts))
    cart_ts = state.cart_ts + [NAN] * (RECENT_TIMESTAMPS - len(state.cart_ts))
    clicked = sorted(state.clicked, key=lambda i: (-state.clicked[i], i))
    shown = sorted((i for i in state.shown if i not in state.clicked), key=lambda i: (-state.shown[i], i))
    row: dict[str, float | int | str] = {
        "sess_start_ts": state.start_ts,
        "sess_last_event_ts": state.last_ts,
        "sess_last_click_ts": state.click_ts[0] if state.click_ts else NAN,
    }
    row.update(zip(COUNT_COLUMNS, state.counts, strict=True))
    row.update(zip(CLICK_TS_COLUMNS, click_ts, strict=True))
    row.update(zip(CART_TS_COLUMNS, cart_ts, strict=True))
    for c, (count_column, last_column) in enumerate(
        zip(cat_clicks_columns(n_categories), cat_last_click_columns(n_categories), strict=True)
    ):
        row[count_column] = state.cat_clicks.get(c, 0)
        row[last_column] = state.cat_last_click.get(c, NAN)
    for c, column in enumerate(cat_impressions_columns(n_categories)):
        row[column] = state.cat_impressions.get(c, 0)
    row["sess_clicked_items"] = " ".join(clicked)
    row["sess_shown_items"] = " ".join(shown)
    row[QUERY_COLUMN] = state.last_query
    return row


# ---- request-time model columns (vectorised; user values are scalars or one value per row) ----------------------
SESSION_USER_COLUMNS = [
    "session_impressions",
    "session_clicks",
    "session_carts",
    "session_shown_no_click",
    "session_age_seconds",
    "seconds_since_last_click",
    *(f"session_{kind}_{w}" for kind in ("clicks", "carts") for w in WINDOWS),
]
SESSION_CANDIDATE_COLUMNS = [
    "session_cat_clicks",
    "session_cat_click_share",
    "seconds_since_cat_click",
    "session_item_clicked",
    "session_item_shown_no_click",
    # The candidate's category against the session's other categories: the intent a visit has now is most likely
    # the category clicked last, or most; a category shown often and not clicked is most likely not it.
    "session_cat_recency_rank",
    "session_cat_is_top",
    "session_cat_impressions",
    "session_cat_ctr",
]


# The candidate against the session's newest search query (a later feed request of the visit still knows what the
# user searched for): the share of the query's words in the candidate's title, and the candidate's category's share
# of the catalogue items whose titles match the query best (the category the query names). NaN without a query in
# the active session. A group of its own (feature_contract's "session_query"), apart from session_candidate.
SESSION_QUERY_COLUMNS = ["session_query_title_match", "session_query_cat_share"]


class TitleIndex(Protocol):
    """What :func:`session_query_features` needs of a catalogue's titles (shoprank.ranking_features.TitleWordIndex:
    the share of a query's distinct words in the title of each given row, NaN for no query)."""

    size: int

    def match(self, query: str | None, rows: np.ndarray) -> np.ndarray: ...


def query_category_shares(
    titles: TitleIndex, catalogue_category: np.ndarray, query: str, n_categories: int
) -> tuple[np.ndarray, np.ndarray]:
    """(match of every catalogue row, per category the share of the best-matching rows): the rows whose titles hold
    the most of the query's words (none: all shares 0) and how they spread over the categories."""
    match = titles.match(query, np.arange(titles.size))
    shares = np.zeros(n_categories)
    best = float(match.max()) if len(match) else 0.0
    if best > 0:
        top = match == best
        category = np.asarray(catalogue_category, dtype=float)
        known = top & ~np.isnan(category) & (category >= 0) & (category < n_categories)
        shares = np.bincount(category[known].astype(int), minlength=n_categories)[:n_categories] / top.sum()
    return match, shares


def session_query_features(
    user_values: Mapping[str, Any],
    now: Any,
    config: SessionConfig,
    titles: TitleIndex,
    rows: np.ndarray,
    catalogue_category: np.ndarray,
    *,
    n_categories: int,
) -> dict[str, np.ndarray]:
    """SESSION_QUERY_COLUMNS per candidate: ``rows`` are the candidates' rows in the catalogue ``titles`` indexes
    (negative: not in it), ``catalogue_category`` each catalogue row's category (NaN unknown); user values scalars
    (one request) or one per candidate row (a training frame). One pass over the catalogue per distinct query."""
    rows = np.asarray(rows, dtype=np.int64)
    n = len(rows)
    active = _active(user_values, _now(now, n), config)
    raw = user_values.get(QUERY_COLUMN)
    if raw is None or isinstance(raw, str | float):
        queries = np.full(n, raw if isinstance(raw, str) else "", dtype=object)
    else:
        queries = np.array([q if isinstance(q, str) else "" for q in raw], dtype=object)
    queries = np.where(active, queries, "")
    category = np.asarray(catalogue_category, dtype=float)
    title_match, cat_share = np.full(n, np.nan), np.full(n, np.nan)
    inside = rows >= 0
    own = np.full(n, np.nan)
    own[inside] = category[rows[inside]]
    own_known = inside & ~np.isnan(own) & (own >= 0) & (own < n_categories)
    import pandas as pd  # here, not at the top: settings import this module, and most commands never need pandas

    for query in pd.unique(queries[queries != ""]):
        match, shares = query_category_shares(titles, category, str(query), n_categories)
        at = queries == query
        title_match[at & inside] = match[rows[at & inside]]
        with_cat = at & own_known
        cat_share[with_cat] = shares[own[with_cat].astype(int)]
        cat_share[at & ~own_known] = 0.0
    return {"session_query_title_match": title_match, "session_query_cat_share": cat_share}


def _floats(values: Mapping[str, Any], columns: list[str], n: int) -> np.ndarray:
    """Columns as an (n, len(columns)) float matrix (missing values NaN), broadcasting scalars."""
    if all(np.ndim(values[c]) == 0 for c in columns):  # one request: one row, broadcast (a read-only view)
        return np.broadcast_to(np.array([values[c] for c in columns], dtype=float), (n, len(columns)))
    return np.column_stack([np.broadcast_to(np.asarray(values[c], dtype=float), (n,)) for c in columns]).reshape(
        n, len(columns)
    )


def _active(values: Mapping[str, Any], now: np.ndarray, config: SessionConfig) -> np.ndarray:
    last = np.broadcast_to(np.asarray(values["sess_last_event_ts"], dtype=float), now.shape)
    with np.errstate(invalid="ignore"):
        return (now - last) <= config.gap_seconds  # NaN (no session) -> False


def _now(now: Any, n: int) -> np.ndarray:
    """Request times as epoch seconds, one per row."""
    if isinstance(now, datetime):
        return np.full(n, now.timestamp())
    arr = np.asarray(now)
    if np.issubdtype(arr.dtype, np.datetime64):
        arr = arr.astype("datetime64[us]").astype(np.int64) / 1e6
    return np.broadcast_to(arr.astype(float), (n,)).copy()


def _item_lists(values: Mapping[str, Any], column: str, n: int) -> list[str]:
    raw = values[column]
    if isinstance(raw, str) or raw is None:
        return [raw or ""] * n
    return ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in raw]


def session_user_features(
    user_values: Mapping[str, Any], now: Any, config: SessionConfig, n_rows: int | None = None
) -> dict[str, np.ndarray]:
    """The user-level model columns (``session_user``) at request time ``now`` from the pushed row(s)."""
    n = n_rows if n_rows is not None else len(np.atleast_1d(np.asarray(user_values["sess_last_event_ts"])))
    now_ts = _now(now, n)
    active = _active(user_values, now_ts, config)
    counts = np.nan_to_num(_floats(user_values, COUNT_COLUMNS, n)) * active[:, None]
    times = _floats(user_values, ["sess_start_ts", "sess_last_click_ts"], n)
    shown = _item_lists(user_values, "sess_shown_items", n)
    out = {
        "session_impressions": counts[:, 0],
        "session_clicks": counts[:, 1],
        "session_carts": counts[:, 2],
        "session_shown_no_click": np.array([len(s.split()) for s in shown], dtype=float) * active,
        "session_age_seconds": np.where(active, now_ts - times[:, 0], np.nan),
        "seconds_since_last_click": np.where(active, now_ts - times[:, 1], np.nan),
    }
    for kind, columns in (("clicks", CLICK_TS_COLUMNS), ("carts", CART_TS_COLUMNS)):
        stamps = _floats(user_values, columns, n)
        for name, seconds in WINDOWS.items():
            with np.errstate(invalid="ignore"):
                inside = stamps > (now_ts - seconds)[:, None]
            out[f"session_{kind}_{name}"] = inside.sum(axis=1).astype(float) * active
    return out


def _category_matrix(values: Mapping[str, Any], columns: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(matrix, row index): the user's per-category values as a (1, categories) matrix for one request (scalars)
    or (n, categories) for a training frame (one value per row), and each candidate row's row in it. A column the
    pushed row lacks (pushed before it existed) is NaN."""
    first = values.get(columns[0])
    if first is None or np.ndim(first) == 0:  # the pushed row's columns are all scalars or all per-row
        vector = [np.nan if values.get(c) is None else values[c] for c in columns]
        return np.array([vector], dtype=float), np.zeros(n, dtype=int)
    return _floats(values, columns, n), np.arange(n)


def _per_category(values: Mapping[str, Any], columns: list[str], n: int, category: np.ndarray) -> np.ndarray:
    """The value of each row's category column (:func:`_category_matrix`)."""
    matrix, rows = _category_matrix(values, columns, n)
    return matrix[rows, category]


def _category_standing(
    values: Mapping[str, Any], n: int, category: np.ndarray, n_categories: int
) -> tuple[np.ndarray, np.ndarray]:
    """(recency rank of the row's category among the session's clicked categories, 0 = clicked last, NaN = not
    clicked; 1.0 where it holds the session's most clicks, ties included)."""
    last, rows = _category_matrix(values, cat_last_click_columns(n_categories), n)
    clicks = np.nan_to_num(_category_matrix(values, cat_clicks_columns(n_categories), n)[0])
    own_last = last[rows, category]
    with np.errstate(invalid="ignore"):
        newer = (last[rows] > own_last[:, None]).sum(axis=1).astype(float)
    own_clicks = clicks[rows, category]
    top = (own_clicks > 0) & (own_clicks >= clicks.max(axis=1)[rows])
    return np.where(np.isnan(own_last), np.nan, newer), top.astype(float)


def _member(items: list[str], values: Mapping[str, Any], column: str) -> np.ndarray:
    """1.0 where the row's item is in its space-separated item list (one set per distinct list, hashed lookups)."""
    raw = values[column]
    if isinstance(raw, str) or raw is None:
        listed = set((raw or "").split())
        if not listed:
            return np.zeros(len(items))
        return np.fromiter(map(listed.__contains__, items), bool, len(items)).astype(float)
    import pandas as pd

    lists = _item_lists(values, column, len(items))
    codes, uniques = pd.factorize(pd.Series(lists, dtype=object))
    sets = [set(u.split()) for u in uniques]
    return np.fromiter((i in sets[k] for i, k in zip(items, codes.tolist(), strict=True)), float, len(items))


def candidate_session_features(
    user_values: Mapping[str, Any],
    item_category: Any,
    item_id: Any,
    now: Any,
    config: SessionConfig,
    *,
    n_categories: int,
) -> dict[str, np.ndarray]:
    """The per-candidate model columns (``session_candidate``): rows are candidates, user values scalars (one
    request) or one per row (a training frame). Unknown categories (NaN, out of range) get no category signal.

    Vectorised: the category columns are one index into the user's per-category values, the item columns one set
    lookup per candidate (no per-candidate string search)."""
    items = np.atleast_1d(np.asarray(item_id, dtype=object)).tolist()
    if items and not isinstance(items[0], str):
        items = [str(i) for i in items]
    n = len(items)
    now_ts = _now(now, n)
    active = _active(user_values, now_ts, config)
    category = np.broadcast_to(np.asarray(item_category, dtype=float), (n,))
    known = ~np.isnan(category) & (category >= 0) & (category < n_categories)
    cat = np.where(known, category, 0).astype(int)
    cat_clicks = np.nan_to_num(_per_category(user_values, cat_clicks_columns(n_categories), n, cat))
    cat_clicks = np.where(known & active, cat_clicks, 0.0)
    clicks = np.nan_to_num(np.broadcast_to(np.asarray(user_values["sess_clicks"], dtype=float), (n,))) * active
    cat_last = _per_category(user_values, cat_last_click_columns(n_categories), n, cat)
    recency_rank, is_top = _category_standing(user_values, n, cat, n_categories)
    shown = np.nan_to_num(_per_category(user_values, cat_impressions_columns(n_categories), n, cat))
    shown = np.where(known & active, shown, 0.0)
    return {
        "session_cat_clicks": cat_clicks,
        "session_cat_click_share": np.divide(cat_clicks, clicks, out=np.zeros(n), where=clicks > 0),
        "seconds_since_cat_click": np.where(known & active, now_ts - cat_last, np.nan),
        "session_item_clicked": _member(items, user_values, "sess_clicked_items") * active,
        "session_item_shown_no_click": _member(items, user_values, "sess_shown_items") * active,
        "session_cat_recency_rank": np.where(known & active, recency_rank, np.nan),
        "session_cat_is_top": np.where(known & active, is_top, 0.0),
        "session_cat_impressions": shown,
        "session_cat_ctr": np.divide(cat_clicks, shown, out=np.full(n, np.nan), where=shown > 0),
    }


def session_intent_category(
    user_values: Mapping[str, Any], now: datetime | float, config: SessionConfig, *, n_categories: int
) -> int | None:
    """The category a cold user's live session points to: the one clicked last (ties: the most clicked, then the
    lowest id), or None without an active session with a click in a known category. The cold-start rule ranks
    popular items of this segment when the request carries no context category of its own."""
    if not user_values or "sess_last_event_ts" not in user_values:
        return None
    if not bool(_active(user_values, _now(now, 1), config)[0]):
        return None
    last, _ = _category_matrix(user_values, cat_last_click_columns(n_categories), 1)
    clicks, _ = _category_matrix(user_values, cat_clicks_columns(n_categories), 1)
    last, clicks = last[0], np.nan_to_num(clicks[0])
    clicked = ~np.isnan(last) & (clicks > 0)
    if not clicked.any():
        return None
    order = sorted(np.flatnonzero(clicked).tolist(), key=lambda c: (-last[c], -clicks[c], c))
    return int(order[0])
