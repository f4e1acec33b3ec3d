"""Online and offline session features agree on a simulated day.

Online: the raw events in arrival order (every 7th sent twice; a search's events with its query), each validated as a
SessionEvent and folded with
``update`` into a per-user state kept as JSON (as a state store would), the pushed row taken when a request arrives and
the model columns computed from it per candidate. Offline: training's replay (training/session_dataset.py) over the
same raw files. Every session column of every impression must be equal.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import pandas as pd

from producers.simulator import simulate
from shoprank.feature_contract import COMPUTED
from shoprank.ranking_features import TitleWordIndex, title_words
from shoprank.session import (
    SessionConfig,
    SessionEvent,
    SessionState,
    candidate_session_features,
    session_query_features,
    session_user_features,
    update,
    user_session_features,
)
from shoprank.settings import Settings, SimulatorSettings
from training.session_dataset import add_session_features, epoch_seconds, read_events

RUN_DATE = date(2026, 1, 4)
# Few users with many requests each, and a two-hour gap, so most requests have a session behind them.
SIM = SimulatorSettings(days=2, users=40, items=120, sellers=8, categories=5, requests_per_day=500, slate_size=8)
CONFIG = SessionConfig(gap_seconds=7200)


def _online(events: pd.DataFrame, requests: pd.DataFrame, n_categories: int) -> dict[str, dict]:
    """The pushed row of each request's user when the request arrives, from updates per event."""
    arrivals = pd.concat([events, events.iloc[::7]]).sort_values("event_ts", kind="mergesort")
    stream = list(arrivals.itertuples(index=False))
    states: dict[str, str] = {}
    rows: dict[str, dict] = {}
    i = 0
    for request in requests.sort_values("request_ts").itertuples(index=False):
        while i < len(stream) and stream[i].event_ts.timestamp() < request.request_ts:
            e = stream[i]
            category = None if np.isnan(e.category_id) else int(e.category_id)
            query = e.query if isinstance(e.query, str) else None  # a search's events carry its query
            event = SessionEvent(
                e.event_id, e.event_ts.to_pydatetime(), e.event_type, e.user_id, e.item_id, category, query
            )
            saved = states.get(e.user_id)
            state = SessionState.from_dict(json.loads(saved)) if saved else SessionState(user_id=e.user_id)
            states[e.user_id] = json.dumps(update(state, event, CONFIG).to_dict())
            i += 1
        saved = states.get(request.user_id)
        state = SessionState.from_dict(json.loads(saved)) if saved else SessionState(user_id=request.user_id)
        rows[request.request_id] = user_session_features(state, request.request_ts, CONFIG, n_categories=n_categories)
    return rows


def test_online_updates_equal_the_offline_replay(tmp_path) -> None:
    settings = Settings(home=tmp_path, simulator=SIM, session=CONFIG)
    simulate(settings, RUN_DATE)
    n_categories = SIM.categories
    events = read_events(settings, RUN_DATE - timedelta(days=1), RUN_DATE)
    impressions = events[events["event_type"] == "impression"].copy()
    frame = pd.DataFrame(
        {
            "request_id": impressions["request_id"].to_numpy(),
            "item_id": impressions["item_id"].to_numpy(),
            "item_category_id": impressions["category_id"].to_numpy(),
            "dt": impressions["event_ts"].dt.date.to_numpy(),
        }
    )
    frame = frame[frame["dt"] == RUN_DATE].reset_index(drop=True)  # the day before is the sessions' history
    offline = add_session_features(settings, frame, "ranker_v4")

    firsts = impressions.groupby("request_id").agg(user_id=("user_id", "first"), event_ts=("event_ts", "min"))
    firsts["request_ts"] = epoch_seconds(firsts["event_ts"])
    requests = firsts.loc[frame["request_id"].unique()].reset_index()
    rows = _online(events, requests, n_categories)
    when = dict(zip(requests["request_id"], requests["request_ts"], strict=True))
    # the catalogue as serving's item cache holds it on the day: the items published through the day before
    catalogue = pd.read_parquet(settings.raw_dir / "items")
    catalogue = catalogue[catalogue["dt"].astype(str) < RUN_DATE.isoformat()].drop_duplicates("item_id", keep="last")
    catalogue_rows = pd.Index(catalogue["item_id"].astype(str))
    titles = TitleWordIndex(title_words(t) for t in catalogue["title"])
    catalogue_category = catalogue["category_id"].to_numpy(dtype=float)
    online: dict[str, list[float]] = {}
    for request_id, candidates in frame.groupby("request_id", sort=False):
        now = when[request_id]
        columns = {
            **session_user_features(rows[request_id], now, CONFIG, n_rows=len(candidates)),
            **candidate_session_features(
                rows[request_id],
                candidates["item_category_id"].to_numpy(dtype=float),
                candidates["item_id"].to_numpy(),
                now,
                CONFIG,
                n_categories=n_categories,
            ),
            **session_query_features(
                rows[request_id],
                now,
                CONFIG,
                titles,
                catalogue_rows.get_indexer(candidates["item_id"].astype(str)),
                catalogue_category,
                n_categories=n_categories,
            ),
        }
        for name, values in columns.items():
            online.setdefault(name, [0.0] * len(frame))
            for index, value in zip(candidates.index, values, strict=True):
                online[name][index] = float(value)

    session_columns = [
        *COMPUTED["session_user"].columns,
        *COMPUTED["session_candidate"].columns,
        *COMPUTED["session_query"].columns,
    ]
    assert sorted(online) == sorted(session_columns)
    for name in session_columns:
        np.testing.assert_array_equal(offline[name].to_numpy(dtype=float), np.array(online[name]), err_msg=name)
    # The day is not trivial: most requests have a session behind them, some candidates were seen in it.
    assert (offline["session_clicks"] > 0).mean() > 0.5
    assert offline["session_item_shown_no_click"].sum() > 0 and offline["session_item_clicked"].sum() > 0
    # ... and many follow a search of the session, whose query names the candidate's category for some candidates
    assert offline["session_query_title_match"].notna().mean() > 0.2
    assert (offline["session_query_cat_share"] > 0.5).sum() > 0 and (offline["session_query_title_match"] == 1).any()
