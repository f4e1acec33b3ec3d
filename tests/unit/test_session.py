"""shoprank.session: the session state and its features on hand-made event sequences."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from shoprank.session import (
    SessionConfig,
    SessionEvent,
    SessionState,
    candidate_session_features,
    session_intent_category,
    session_user_features,
    update,
    user_session_features,
)
from training.session_dataset import session_snapshots

T0 = datetime(2026, 1, 7, 12, 0, tzinfo=UTC)
CFG = SessionConfig()
N_CAT = 4


def event(n: int, seconds: float, kind: str, item: str = "i1", category: int | None = 1) -> SessionEvent:
    return SessionEvent(f"e{n}", T0 + timedelta(seconds=seconds), kind, "u1", item, category)


def replay(events: list[SessionEvent], config: SessionConfig = CFG) -> SessionState:
    state = SessionState(user_id="u1")
    for e in events:
        update(state, e, config)
    return state


def same(a: dict, b: dict) -> bool:
    """Rows equal, NaN equal to NaN."""
    return a.keys() == b.keys() and all(a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]) for k in a)


def row_at(state: SessionState, seconds: float, config: SessionConfig = CFG) -> dict:
    return user_session_features(state, T0 + timedelta(seconds=seconds), config, n_categories=N_CAT)


def test_counts_categories_and_items_of_one_session() -> None:
    state = replay(
        [
            event(1, 0, "impression", "i1", 1),
            event(2, 0, "impression", "i2", 2),
            event(3, 5, "click", "i1", 1),
            event(4, 60, "add_to_cart", "i1", 1),
            event(5, 90, "impression", "i3", 1),
            event(6, 100, "click", "i3", 1),
            event(7, 110, "impression", "i4", 3),
        ]
    )
    row = row_at(state, 120)
    assert (row["sess_impressions"], row["sess_clicks"], row["sess_carts"], row["sess_purchases"]) == (4, 2, 1, 0)
    assert [row[f"sess_cat_clicks_{c:02d}"] for c in range(N_CAT)] == [0, 2, 0, 0]
    assert row["sess_clicked_items"] == "i3 i1"  # newest first
    assert row["sess_shown_items"] == "i4 i2"  # shown and never clicked
    assert row["sess_start_ts"] == T0.timestamp()
    assert row["sess_last_click_ts"] == row["sess_cat_last_click_ts_01"] == T0.timestamp() + 100
    assert math.isnan(row["sess_cat_last_click_ts_02"])


def test_a_gap_starts_a_new_session_and_an_ended_session_reads_empty() -> None:
    state = replay([event(1, 0, "click"), event(2, 1800, "click"), event(3, 1800 + 1801, "impression", "i9")])
    row = row_at(state, 3700)
    assert (row["sess_clicks"], row["sess_impressions"]) == (0, 1)  # two clicks 30 min apart, then a gap > 30 min
    assert row["sess_start_ts"] == T0.timestamp() + 3601
    ended = row_at(state, 3601 + 1801)
    assert ended["sess_impressions"] == 0 and math.isnan(ended["sess_start_ts"]) and ended["sess_shown_items"] == ""


def test_a_repeated_event_id_counts_once() -> None:
    once = row_at(replay([event(1, 0, "click"), event(2, 3, "impression")]), 10)
    twice = row_at(replay([event(1, 0, "click"), event(1, 0, "click"), event(2, 3, "impression")]), 10)
    assert same(twice, once) and twice["sess_clicks"] == 1


def test_late_events_within_the_tolerance_give_the_in_order_state() -> None:
    in_order = [event(i, 2 * i, ("impression", "click")[i % 2], f"i{i % 3}", i % N_CAT) for i in range(40)]
    shuffled = list(in_order)
    # Swap neighbours: each event arrives at most 4 s (< max_lateness_seconds) after a newer one.
    for i in range(0, len(shuffled) - 1, 2):
        shuffled[i], shuffled[i + 1] = shuffled[i + 1], shuffled[i]
    assert same(row_at(replay(shuffled), 100), row_at(replay(in_order), 100))


def test_a_late_event_opening_the_new_session_is_placed_there() -> None:
    # Previous session ends at 0; at 1801 and 1803 a new one starts; 1803 arrives first, 1801 two seconds late.
    state = replay([event(1, 0, "click"), event(3, 1803, "click", "i3"), event(2, 1801, "click", "i2")])
    row = row_at(state, 1900)
    assert row["sess_clicks"] == 2 and row["sess_start_ts"] == T0.timestamp() + 1801 and state.late_dropped == 0


def test_events_later_than_the_tolerance_or_of_a_closed_session_are_dropped() -> None:
    state = replay([event(1, 0, "click"), event(2, 100, "click"), event(3, 50, "click")])  # 50 s late
    assert row_at(state, 120)["sess_clicks"] == 2 and state.late_dropped == 1
    # A new session started at 1805; an event at 1799 (6 s late) would have bridged the gap from the closed one:
    # the closed session is gone, so it is dropped (the one case where arrival order shows, documented).
    state = replay([event(1, 0, "click"), event(2, 1805, "click"), event(3, 1799, "click")])
    assert row_at(state, 1850)["sess_clicks"] == 1 and state.late_dropped == 1


def test_state_is_capped() -> None:
    config = SessionConfig(max_clicked_items=3, max_shown_items=2, max_event_ids=5)
    state = replay([event(i, i, "click", f"i{i}") for i in range(10)], config)
    assert len(state.click_ts) == 10 and len(state.clicked) == 3 and len(state.event_ids) == 5
    state = replay([event(i, i, "click", f"i{i}") for i in range(30)], config)
    row = row_at(state, 40, config)
    assert row["sess_clicked_items"] == "i29 i28 i27" and row["sess_clicks"] == 30
    assert row["sess_click_ts_00"] == T0.timestamp() + 29 and row["sess_click_ts_09"] == T0.timestamp() + 20
    shown = replay([event(i, i, "impression", f"i{i}") for i in range(6)], config)
    assert row_at(shown, 10, config)["sess_shown_items"] == "i5 i4"


def test_windows_and_ages_are_taken_at_request_time() -> None:
    state = replay([event(1, 0, "click"), event(2, 400, "click"), event(3, 500, "add_to_cart"), event(4, 700, "click")])
    row = row_at(state, 710)  # pushed at the last event ...
    for now, clicks_5m, clicks_30m, carts_5m in ((710, 1, 3, 1), (1000, 0, 3, 0), (2000, 0, 2, 0)):
        user = session_user_features(row, T0 + timedelta(seconds=now), CFG, n_rows=1)  # ... read later
        assert user["session_clicks_5m"][0] == clicks_5m and user["session_clicks_30m"][0] == clicks_30m
        assert user["session_carts_5m"][0] == carts_5m
        assert user["seconds_since_last_click"][0] == now - 700 and user["session_age_seconds"][0] == now
    over = session_user_features(row, T0 + timedelta(seconds=700 + 1801), CFG, n_rows=1)
    assert over["session_clicks"][0] == 0 and math.isnan(over["seconds_since_last_click"][0])


def test_candidate_features_against_the_session() -> None:
    state = replay(
        [
            event(1, 0, "impression", "i1", 1),
            event(2, 0, "impression", "i2", 2),
            event(3, 10, "click", "i1", 1),
            event(4, 20, "click", "i5", 1),
            event(5, 30, "click", "i6", 0),
        ]
    )
    row = row_at(state, 40)
    out = candidate_session_features(
        row,
        np.array([1, 2, 0, np.nan, 7]),
        ["i1", "i2", "i9", "i5", "i8"],
        T0 + timedelta(seconds=40),
        CFG,
        n_categories=N_CAT,
    )
    np.testing.assert_allclose(out["session_cat_clicks"], [2, 0, 1, 0, 0])
    np.testing.assert_allclose(out["session_cat_click_share"], [2 / 3, 0, 1 / 3, 0, 0])
    np.testing.assert_allclose(out["seconds_since_cat_click"], [20, np.nan, 10, np.nan, np.nan])
    np.testing.assert_allclose(out["session_item_clicked"], [1, 0, 0, 1, 0])
    np.testing.assert_allclose(out["session_item_shown_no_click"], [0, 1, 0, 0, 0])
    # category 0 was clicked last, category 1 before it and most; 2 was shown once and not clicked
    np.testing.assert_allclose(out["session_cat_recency_rank"], [1, np.nan, 0, np.nan, np.nan])
    np.testing.assert_allclose(out["session_cat_is_top"], [1, 0, 0, 0, 0])
    np.testing.assert_allclose(out["session_cat_impressions"], [1, 1, 0, 0, 0])
    np.testing.assert_allclose(out["session_cat_ctr"], [2, 0, np.nan, np.nan, np.nan])
    # a row pushed before per-category impressions were kept: no impressions, the other columns as before
    old_row = {k: v for k, v in row.items() if not k.startswith("sess_cat_impressions_")}
    before = candidate_session_features(
        old_row, np.array([1, 2]), ["i1", "i2"], T0 + timedelta(seconds=40), CFG, n_categories=N_CAT
    )
    np.testing.assert_allclose(before["session_cat_impressions"], [0, 0])
    np.testing.assert_allclose(before["session_cat_recency_rank"], [1, np.nan])


def test_bad_events_are_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="event_type"):
        SessionEvent("e1", T0, "view", "u1", "i1")
    with pytest.raises(ValueError, match="UTC"):
        SessionEvent("e1", datetime(2026, 1, 7, 12), "click", "u1", "i1")
    with pytest.raises(ValueError, match="user"):
        update(SessionState("u2"), event(1, 0, "click"), CFG)


def test_state_round_trips_through_its_dict() -> None:
    state = replay(
        [event(i, 3 * i, ("impression", "click", "add_to_cart")[i % 3], f"i{i % 4}", i % N_CAT) for i in range(12)]
    )
    assert SessionState.from_dict(state.to_dict()) == state


def test_the_offline_replay_equals_updates_per_event_in_arrival_order() -> None:
    """Many users, duplicates and small reorderings online; the offline replay on the clean, ordered log."""
    rng = random.Random(3)
    log = []
    for n in range(600):
        user = f"u{rng.randrange(8)}"
        seconds = n * 17.0 + 4000.0 * (n >= 300)  # a quiet hour in the middle ends every session
        kind = rng.choice(["impression"] * 6 + ["click"] * 3 + ["add_to_cart", "purchase"])
        log.append(
            SessionEvent(
                f"e{n}", T0 + timedelta(seconds=seconds), kind, user, f"i{rng.randrange(30)}", rng.randrange(N_CAT)
            )
        )
    log.sort(key=lambda e: e.event_ts)
    instants = [(f"u{rng.randrange(8)}", T0 + timedelta(seconds=rng.uniform(0, 600 * 17 + 6000))) for _ in range(120)]

    arrivals = [(e.event_ts + timedelta(seconds=rng.uniform(0, 4)), e) for e in log]
    arrivals += [(e.event_ts + timedelta(seconds=rng.uniform(0, 4)), e) for e in rng.sample(log, 60)]  # duplicates
    arrivals.sort(key=lambda pair: pair[0])
    online = {}
    for user, now in instants:
        state = SessionState(user_id=user)
        for _, e in arrivals:
            if e.user_id == user and e.event_ts < now:
                update(state, e, CFG)
        online[(user, now)] = user_session_features(state, now, CFG, n_categories=N_CAT)

    events = pd.DataFrame(
        {
            "event_id": [e.event_id for e in log],
            "event_ts": [e.event_ts for e in log],
            "event_type": [e.event_type for e in log],
            "user_id": [e.user_id for e in log],
            "item_id": [e.item_id for e in log],
            "category_id": [float(e.category_id or 0) for e in log],
        }
    )
    requests = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(len(instants))],
            "user_id": [u for u, _ in instants],
            "request_ts": [now.timestamp() for _, now in instants],
        }
    )
    offline = session_snapshots(events, requests, CFG, N_CAT).set_index("request_id")
    for i, key in enumerate(instants):
        expected = pd.Series(online[key], dtype=object)
        got = offline.loc[f"r{i}", expected.index]
        pd.testing.assert_series_equal(got.astype(object), expected, check_names=False)


def test_an_impression_reported_by_rank_and_by_the_application_counts_once_online_and_offline() -> None:
    """/rank feeds what it served, an application may report the same impression under its own event id: the
    session (serving/sessions.py) and training's replay of the raw log (which holds both) count it once."""
    from serving.sessions import fold_events, session_events
    from training.session_dataset import dedup_ids

    def row(event_id: str, kind: str, item: str, request_id: str | None, seconds: float) -> dict:
        return {
            "event_id": event_id,
            "event_ts": T0 + timedelta(seconds=seconds),
            "event_type": kind,
            "user_id": "u1",
            "item_id": item,
            "request_id": request_id,
        }

    rows = [
        row("rank-1", "impression", "i1", "r1", 0.0),  # /rank's
        row("rank-2", "impression", "i2", "r1", 0.0),
        row("app-1", "impression", "i1", "r1", 0.4),  # the application's report of the same slate
        row("app-2", "impression", "i2", "r1", 0.4),
        row("app-3", "impression", "i1", "r2", 30.0),  # the same item in another request: shown again
        row("app-4", "click", "i1", "r2", 40.0),
        row("app-5", "click", "i1", "r2", 41.0),  # a second click is its own event
    ]
    states: dict = {}
    folded = fold_events(states, session_events(rows, {"i1": 1, "i2": 2}), CFG)
    assert (folded.counted, folded.ignored) == (5, 2)
    assert states["u1"].counts == [3, 2, 0, 0] and states["u1"].cat_impressions == {1: 2, 2: 1}

    frame = pd.DataFrame(rows)
    frame["category_id"] = frame["item_id"].map({"i1": 1.0, "i2": 2.0})
    frame["event_id"] = dedup_ids(frame)
    later = T0 + timedelta(seconds=60)
    requests = pd.DataFrame({"request_id": ["next"], "user_id": ["u1"], "request_ts": [later.timestamp()]})
    offline = session_snapshots(frame, requests, CFG, N_CAT).iloc[0]
    online = user_session_features(states["u1"], later, CFG, n_categories=N_CAT)
    assert offline["sess_impressions"] == 3 and same(online, offline.drop("request_id").to_dict())


def test_a_cold_users_session_points_to_the_category_clicked_last() -> None:
    state = replay(
        [
            event(1, 0, "impression", "i1", 1),
            event(2, 10, "click", "i1", 1),
            event(3, 20, "click", "i5", 1),
            event(4, 30, "click", "i6", 2),
        ]
    )
    row = row_at(state, 40)
    at = T0 + timedelta(seconds=40)
    assert session_intent_category(row, at, CFG, n_categories=N_CAT) == 2  # clicked last, though 1 has more clicks
    # only impressions: no intent; an expired session or no row at all: none either
    shown_only = row_at(replay([event(1, 0, "impression", "i1", 3)]), 10)
    assert session_intent_category(shown_only, T0 + timedelta(seconds=10), CFG, n_categories=N_CAT) is None
    later = T0 + timedelta(seconds=30 + CFG.gap_seconds + 1)
    assert session_intent_category(row, later, CFG, n_categories=N_CAT) is None
    assert session_intent_category({}, at, CFG, n_categories=N_CAT) is None
    # a click in a category outside the model's range gives no segment
    outside = row_at(replay([event(1, 0, "click", "i1", 9)]), 5)
    assert session_intent_category(outside, T0 + timedelta(seconds=5), CFG, n_categories=N_CAT) is None


def search(n: int, seconds: float, query: str | None, kind: str = "impression") -> SessionEvent:
    return SessionEvent(f"q{n}", T0 + timedelta(seconds=seconds), kind, "u1", "i9", 2, query)


def test_the_session_keeps_its_newest_search_query_in_any_arrival_order() -> None:
    events = [search(1, 0, "Premium  Sneakers"), search(2, 5, None), search(3, 8, "lamp", "click"), search(4, 9, "")]
    in_order = replay(events)
    assert row_at(in_order, 10)["sess_last_query"] == "lamp"  # the newest event with a query; feed events keep it
    assert row_at(replay(events[::-1]), 10) == row_at(in_order, 10)  # 9 s of reordering: within the lateness
    assert row_at(replay(events[:1]), 10)["sess_last_query"] == "premium sneakers"  # lowercase, single spaces
    assert SessionState.from_dict(in_order.to_dict()) == in_order
    assert row_at(in_order, 10 + CFG.gap_seconds)["sess_last_query"] == ""  # an ended session has no query
    later = update(in_order, search(5, 20 + CFG.gap_seconds, None), CFG)  # a new session forgets it
    assert row_at(later, 21 + CFG.gap_seconds)["sess_last_query"] == ""
    assert row_at(replay([event(1, 0, "click")]), 1)["sess_last_query"] == ""


def test_query_features_read_the_last_query_against_the_catalogue() -> None:
    from shoprank.ranking_features import TitleWordIndex, title_words
    from shoprank.session import session_query_features

    titles = ["premium sneakers", "eco sneakers", "premium lamp", "eco boots", "mini lamp"]
    category = np.array([0.0, 0.0, 3.0, 0.0, 3.0])
    index = TitleWordIndex(title_words(t) for t in titles)
    rows = np.array([0, 1, 2, 3, 4, -1])  # the last candidate is not in the catalogue
    state = replay([search(1, 0, "eco sneakers")])
    now = T0 + timedelta(seconds=30)
    got = session_query_features(row_at(state, 30), now, CFG, index, rows, category, n_categories=N_CAT)
    np.testing.assert_allclose(got["session_query_title_match"], [0.5, 1.0, 0.0, 0.5, 0.0, np.nan])
    # the best match ("eco sneakers") is all category 0: its items share 1, category 3's share 0, unknown 0
    np.testing.assert_allclose(got["session_query_cat_share"], [1.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    state = replay([search(1, 0, "premium")])  # two best matches, one per category
    got = session_query_features(row_at(state, 30), now, CFG, index, rows, category, n_categories=N_CAT)
    np.testing.assert_allclose(got["session_query_cat_share"], [0.5, 0.5, 0.5, 0.5, 0.5, 0.0])
    # no query in the session, or the session over: no signal (NaN), as for a user without a session
    for values, at in ((row_at(replay([event(1, 0, "click")]), 30), now), (row_at(state, 30), T0 + timedelta(hours=2))):
        got = session_query_features(values, at, CFG, index, rows, category, n_categories=N_CAT)
        assert np.isnan(got["session_query_title_match"]).all() and np.isnan(got["session_query_cat_share"]).all()
    # one value per row (a training frame): each row reads its own query
    frame_values = {k: np.array([v, v], dtype=object) for k, v in row_at(state, 30).items()}
    frame_values["sess_last_query"] = np.array(["premium", "mini lamp"], dtype=object)
    frame_values["sess_last_event_ts"] = np.array([state.last_ts] * 2, dtype=float)
    got = session_query_features(frame_values, now, CFG, index, np.array([0, 4]), category, n_categories=N_CAT)
    np.testing.assert_allclose(got["session_query_title_match"], [1.0, 1.0])
    np.testing.assert_allclose(got["session_query_cat_share"], [0.5, 1.0])


def test_serving_joins_the_query_columns_from_the_item_caches_titles() -> None:
    """serving.ranking.session_columns: a model with the session_query columns gets session_query_features' values
    from the cache's title index, rows and categories (training's function); without titles it refuses to score."""
    from serving.ranking import session_columns
    from shoprank.feature_contract import feature_columns_for
    from shoprank.ranking_features import TitleWordIndex, title_words
    from shoprank.session import session_query_features

    columns = feature_columns_for("ranker_v4_query", N_CAT)
    titles = TitleWordIndex(title_words(t) for t in ["eco sneakers", "mini lamp", "eco boots", ""])
    category = np.array([0.0, 3.0, 0.0, np.nan])  # the cache's last row is the unknown item's
    rows, ids = np.array([2, 1, 0]), ["i2", "i1", "i0"]
    values = row_at(replay([search(1, 0, "eco sneakers")]), 30)
    now = T0 + timedelta(seconds=30)
    served = session_columns(columns, values, ids, category[rows], now, CFG, N_CAT, titles, rows, category)
    expected = session_query_features(values, now, CFG, titles, rows, category, n_categories=N_CAT)
    np.testing.assert_array_equal(served["session_query_cat_share"], [1.0, 0.0, 1.0])
    for name, column in expected.items():
        np.testing.assert_array_equal(served[name], column)
    assert "session_query_title_match" not in session_columns(
        feature_columns_for("ranker_v4", N_CAT), values, ids, category[rows], now, CFG, N_CAT
    )
    with pytest.raises(ValueError, match="no titles"):
        session_columns(columns, values, ids, category[rows], now, CFG, N_CAT)
