"""POST /events over HTTP, and the real-time path it feeds, on the serving world's `bentoml serve`.

- the world's own server (local profile: the embedded session path): valid batches, each kind of bad input (400
  naming the field), rejected timestamps, flagged unknown ids, the raw events log;
- a server on a ranker_v4 model (session features): a click changes the user's next /rank;
- a server whose Redis is down (stream mode on a port nothing listens on): /rank answers without session features
  and says why, /events keeps accepting into the raw log, and once a Redis starts there the queued events reach the
  stream.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from serving.ranking import SESSION_COLUMNS
from shoprank.raw_contract import SCHEMAS
from tests.serving.conftest import (
    ServingWorld,
    offline_item_features,
    offline_user_features,
    pinned_model_client,
    save_model_beside,
)
from tests.support.processes import free_port


@pytest.fixture(scope="module")
def client(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=30) as http:
        yield http


def event(event_id: str, user_id: str = "u000001", item_id: str = "i000001", **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_ts": datetime.now(UTC).isoformat(),
        "event_type": "click",
        "user_id": user_id,
        "item_id": item_id,
        **fields,
    }


def wait_for(check: Callable[[], Any], seconds: float = 20.0, every: float = 0.2) -> Any:
    """``check()``'s first truthy answer within ``seconds`` (a bound on waiting, not a timing assertion)."""
    deadline = time.monotonic() + seconds
    while True:
        answer = check()
        if (not answer.empty if isinstance(answer, pd.DataFrame) else answer) or time.monotonic() > deadline:
            return answer
        time.sleep(every)


def logged_events(settings: Any) -> pd.DataFrame:
    files = sorted((settings.serving_logs_dir / "events").glob("dt=*/part-*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files]) if files else pd.DataFrame(columns=SCHEMAS["events"].names)


def test_event_model_is_the_raw_events_contract() -> None:
    from serving.schemas import EventIn, EventType
    from shoprank.raw_contract import EVENT_TYPES

    assert list(EventIn.model_fields) == SCHEMAS["events"].names
    assert EventType.__args__ == EVENT_TYPES  # type: ignore[attr-defined]


def test_a_valid_batch_is_accepted_flagged_and_logged(client: httpx.Client, serving_world: ServingWorld) -> None:
    batch = [
        event("ev-valid-1", request_id="r1", position=3, surface="feed", price=12.5),
        event("ev-valid-2", event_type="purchase", quantity=2, price=12.5),
        event("ev-valid-3", user_id="u-nobody", item_id="i-nothing", event_type="impression"),
    ]
    response = client.post("/events", json={"events": batch})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (3, 0)
    assert body["unknown_user_ids"] == ["u-nobody"] and body["unknown_item_ids"] == ["i-nothing"]
    assert body["session_path"] == "embedded" and body["degraded_reasons"] == []

    def logged() -> pd.DataFrame:
        rows = logged_events(serving_world.settings)
        return rows[rows["event_id"].str.startswith("ev-valid-")]

    rows = wait_for(lambda: len(logged()) == 3 and logged()).sort_values("event_id")
    assert list(rows["event_type"]) == ["click", "purchase", "impression"]
    assert list(rows["user_id"]) == ["u000001", "u000001", "u-nobody"]
    assert rows["quantity"].iloc[1] == 2 and rows["position"].iloc[0] == 3 and rows["request_id"].iloc[0] == "r1"


@pytest.mark.parametrize(
    ("events", "field"),
    [
        ([{k: v for k, v in event("e").items() if k != "event_id"}], "events.0.event_id"),
        ([event("e", event_type="like")], "events.0.event_type"),
        ([event("e", event_ts="2026-01-07T10:00:00")], "events.0.event_ts"),  # no time zone
        ([event("e", event_ts="yesterday")], "events.0.event_ts"),
        ([event("e", user_id="")], "events.0.user_id"),
        ([event("e"), event("f", item_id=None)], "events.1.item_id"),
        ([event("e", price=-1)], "events.0.price"),
        ([event("e", position=0)], "events.0.position"),
        ([event("e", surface="home")], "events.0.surface"),
        ([event("e", colour="red")], "events.0.colour"),
        ([], "events"),
        ("not a list", "events"),
    ],
)
def test_bad_events_get_400_naming_the_field(client: httpx.Client, events: Any, field: str) -> None:
    response = client.post("/events", json={"events": events})
    assert response.status_code == 400, response.text
    assert field in response.json()["detail"]
    assert [".".join(map(str, e["loc"])) for e in response.json()["errors"]][0].startswith(field)


def test_non_finite_price_and_too_many_events_get_400(client: httpx.Client, serving_world: ServingWorld) -> None:
    body = '{"events": [{"event_id": "e", "event_ts": "2026-01-07T10:00:00Z", "event_type": "click", '
    body += '"user_id": "u1", "item_id": "i1", "price": NaN}]}'
    response = client.post("/events", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400 and "events.0.price" in response.json()["detail"]
    limit = serving_world.settings.serving.max_events_per_call
    response = client.post("/events", json={"events": [event(f"many-{i}") for i in range(limit + 1)]})
    assert response.status_code == 400 and "events" in response.json()["detail"]


def test_stale_future_and_repeated_events_are_rejected_the_rest_accepted(
    client: httpx.Client, serving_world: ServingWorld
) -> None:
    cfg = serving_world.settings.serving
    now = datetime.now(UTC)
    old = (now - timedelta(seconds=cfg.max_event_age_seconds + 60)).isoformat()
    ahead = (now + timedelta(seconds=cfg.max_event_ahead_seconds + 60)).isoformat()
    batch = [event("ev-window-ok"), event("ev-window-old", event_ts=old), event("ev-window-ahead", event_ts=ahead)]
    batch.append(event("ev-window-ok"))
    body = client.post("/events", json={"events": batch}).json()
    assert (body["accepted"], body["rejected"]) == (1, 3)
    assert [(r["index"], r["field"]) for r in body["rejections"]] == [(1, "event_ts"), (2, "event_ts"), (3, "event_id")]
    rows = wait_for(
        lambda: (r := logged_events(serving_world.settings))["event_id"].str.startswith("ev-window").any() and r
    )
    assert set(rows.loc[rows["event_id"].str.startswith("ev-window"), "event_id"]) == {"ev-window-ok"}


# ---- a ranker_v4 model: session features ----------------------------------------------------------------------
def train_tiny_v4_ranker(world: ServingWorld, rng: np.random.Generator) -> tuple[Any, list[str]]:
    """A real XGBRanker on ranker_v4's columns: v3's from the marts, the session ones drawn; relevance = the item
    was clicked earlier in the session (so a click moves the item up)."""
    from xgboost import XGBRanker

    from serving.ranking import build_feature_frame
    from shoprank.ranking_features import feature_columns_for, model_matrix

    settings = world.settings
    n_categories = settings.simulator.categories
    items = offline_item_features(settings.marts_export_dir, world.item_ids)
    columns = feature_columns_for("ranker_v4", n_categories)
    frames = []
    for request in range(80):
        user = offline_user_features(settings.marts_export_dir, str(rng.choice(world.user_ids[:20])), n_categories)
        ids = [str(i) for i in rng.choice(world.item_ids, 12, replace=False)]
        clicked = (rng.random(12) < 0.25).astype(float)
        per_row = {name: rng.uniform(0, 3, 12) for name in SESSION_COLUMNS if name in columns}
        per_row |= {"session_item_clicked": clicked, "query_title_match": np.full(12, np.nan)}
        frame = build_feature_frame(user, items.loc[ids], ids, n_categories, per_row)
        frames.append(frame.assign(request_id=request, relevance=clicked.astype(int)))
    frame = pd.concat(frames, ignore_index=True)
    ranker = XGBRanker(objective="rank:ndcg", n_estimators=20, max_depth=3, tree_method="hist", n_jobs=1)
    ranker.fit(model_matrix(frame, columns), frame["relevance"], qid=frame["request_id"])
    return ranker, columns


@pytest.fixture(scope="module")
def v4_model_tag(serving_world: ServingWorld) -> str:
    ranker, columns = train_tiny_v4_ranker(serving_world, np.random.default_rng(4))
    return save_model_beside(serving_world, "v4", ranker, "ranker_v4", columns, metrics={"ndcg@10": 0.6})


@pytest.fixture(scope="module")
def v4_http(serving_world: ServingWorld, v4_model_tag: str) -> Iterator[httpx.Client]:
    """One `bentoml serve` of the world pinned to the v4 model (the embedded session path), shared by the tests."""
    with pinned_model_client(serving_world, v4_model_tag, "v4-embedded") as http:
        yield http


def rank_order(http: httpx.Client, user_id: str, candidates: list[str]) -> tuple[list[str], dict[str, Any]]:
    body = {"user_id": user_id, "candidate_ids": candidates, "k": len(candidates), "apply_rules": False}
    answer = http.post("/rank", json=body)
    assert answer.status_code == 200, answer.text
    return [item["item_id"] for item in answer.json()["items"]], answer.json()


def test_a_click_changes_the_next_rank_on_the_local_profile(serving_world: ServingWorld, v4_http: httpx.Client) -> None:
    user, candidates = "u000007", serving_world.item_ids[20:40]
    with contextlib.nullcontext(v4_http) as http:
        before, answer = rank_order(http, user, candidates)
        assert answer["feature_service"] == "ranker_v4" and not answer["degraded"], answer
        last = before[-1]
        accepted = http.post("/events", json={"events": [event("ev-click-v4", user_id=user, item_id=last)]})
        assert accepted.json()["accepted"] == 1
        after = wait_for(lambda: (order := rank_order(http, user, candidates)[0])[0] == last and order)
        assert after and after[0] == last, f"{last} never reached the top: {rank_order(http, user, candidates)[0]}"
        explained = http.post("/explain", json={"user_id": user, "candidate_ids": [last], "apply_rules": False})
        features = explained.json()["items"][0]["features"]
        assert features["session_item_clicked"] == 1 and features["session_clicks"] == 1
        # another user's list is untouched by that click
        assert rank_order(http, "u000008", candidates)[1]["degraded"] is False


def test_a_cold_users_session_clicks_pick_the_cold_start_segment(
    serving_world: ServingWorld, v4_http: httpx.Client
) -> None:
    """A user the store does not know gets popular items; once their session has clicks, the segment is the
    category clicked last: the same slate as a request naming that category in its context."""
    user, candidates = "u-new-visitor-1", serving_world.item_ids[:60]
    category = offline_item_features(serving_world.settings.marts_export_dir, candidates)["item_category_id"]

    def slate(context: dict[str, Any] | None) -> list[str]:
        body = {"user_id": user, "candidate_ids": candidates, "k": 10, "request_id": "r-cold-seg", "context": context}
        answer = v4_http.post("/rank", json=body)
        assert answer.status_code == 200, answer.text
        items = answer.json()["items"]
        assert any("cold-start-popular" in item["reasons"] for item in items), items
        return [item["item_id"] for item in items]

    plain = slate(None)
    # a category whose segment changes the popular slate (so steering to it is visible)
    steering = ((c, slate({"category_id": c})) for c in sorted({int(c) for c in category}))
    target, named = next((c, order) for c, order in steering if order != plain)
    clicked = [i for i in candidates if int(category[i]) == target][:2]
    batch = [event(f"ev-cold-seg-{n}", user_id=user, item_id=item) for n, item in enumerate(clicked)]
    assert v4_http.post("/events", json={"events": batch}).json()["accepted"] == 2
    steered = wait_for(lambda: (order := slate(None)) == named and order)
    assert steered == named, f"the session's category {target} did not steer the cold slate: {slate(None)} vs {named}"


def test_the_replay_with_feedback_runs_against_two_services(
    serving_world: ServingWorld, v4_http: httpx.Client, server_url: str
) -> None:
    """`shoprank replay --baseline-url` end to end, a few visits: both arms answered, only the tested arm's
    reports reached /events (beside the impressions each service's /rank logs) and its session features moved."""
    from orchestration.session_replay import ARMS, replay_with_feedback

    table = replay_with_feedback(
        serving_world.settings, str(v4_http.base_url), server_url, n_visits=3, k=10, seed=5, think_seconds=0.0
    )
    tested, baseline = table.loc[ARMS[0]], table.loc[ARMS[1]]
    assert tested["requests"] == baseline["requests"] >= 6
    assert (tested["failed"], tested["degraded"], tested["rejected_events"]) == (0, 0, 0), table
    assert (baseline["failed"], baseline["degraded"]) == (0, 0), table
    assert tested["model"] != baseline["model"]

    def replayed_events() -> pd.DataFrame | None:
        """The replay's logged events once both arms' impressions are in (the logs flush on a timer)."""
        rows = logged_events(serving_world.settings).reset_index(drop=True)
        rows = rows[rows["request_id"].fillna("").str.startswith("fb-")]
        shown = rows["event_type"] == "impression"
        tested_shown = (shown & rows["request_id"].str.endswith("-0")).sum()
        baseline_shown = (shown & rows["request_id"].str.endswith("-1")).sum()
        done = baseline_shown >= baseline["impressions"] and tested_shown >= tested["impressions"] + baseline_shown
        return rows if done else None

    replayed = wait_for(replayed_events)
    # /rank logs every impression it serves (both arms); on top, the tested arm reports its impressions, clicks and
    # purchases to /events, the baseline nothing
    assert replayed is not None and tested["impressions"] >= tested["requests"], table
    assert set(replayed.loc[replayed["event_type"] != "impression", "request_id"].str[-2:]) <= {"-0"}
    user = replayed["user_id"].iloc[-1]

    def session_features() -> dict[str, Any] | None:
        body = {"user_id": user, "candidate_ids": serving_world.item_ids[:1], "apply_rules": False}
        features = v4_http.post("/explain", json=body).json()["items"][0]["features"]
        return features if features["session_impressions"] > 0 else None

    assert wait_for(session_features), "the replayed user's session never reached the v4 service"


def test_served_session_columns_equal_trainings_replay_of_the_logged_events(
    serving_world: ServingWorld, v4_http: httpx.Client
) -> None:
    """Train/serve consistency through the live path. A user's earlier clicks and cart reported to /events, then a
    /rank (which feeds the impressions it served to the session path), then the application's reports of that
    slate: half its impressions again under its own event ids, and two clicks. The session columns the v4 service
    serves (/explain) must equal what training's replay (training/session_dataset.py: the same dedup ids, the state
    strictly before the request) computes from the raw events log at the same instant, impressions counted once."""
    from serving.sessions import load_item_categories
    from training.session_dataset import Catalogue, dedup_ids, session_model_columns, session_snapshots

    settings = serving_world.settings
    user, candidates = "u900013", serving_world.item_ids[40:60]  # a user no other test draws
    start = datetime.now(UTC)

    def at(seconds_ago: float, kind: str, item: str, name: str, **fields: Any) -> dict[str, Any]:
        when = (start - timedelta(seconds=seconds_ago)).isoformat()
        return event(name, user_id=user, item_id=item, event_type=kind, **{"event_ts": when, **fields})

    earlier = [
        at(200, "click", serving_world.item_ids[61], "cons-c1"),
        at(190, "add_to_cart", serving_world.item_ids[61], "cons-a1"),
        at(120, "click", serving_world.item_ids[62], "cons-c2"),
    ]
    assert v4_http.post("/events", json={"events": earlier}).json()["accepted"] == 3
    shown, answer = rank_order(v4_http, user, candidates)
    request_id = answer["request_id"]
    # the application reports the half of the slate that scrolled into view (the rest only /rank knows it showed)
    seen = shown[: len(shown) // 2]
    reported = [
        event(f"cons-i{n}", user_id=user, item_id=item, event_type="impression", request_id=request_id, position=n)
        for n, item in enumerate(seen, start=1)
    ] + [event(f"cons-k{n}", user_id=user, item_id=shown[n], request_id=request_id) for n in (2, 5)]
    assert v4_http.post("/events", json={"events": reported}).json()["accepted"] == len(reported)

    body = {"user_id": user, "candidate_ids": candidates, "k": len(candidates), "apply_rules": False}

    def served() -> dict[str, dict[str, Any]] | None:
        items = v4_http.post("/explain", json=body).json()["items"]
        features = {item["item_id"]: item["features"] for item in items}
        return features if next(iter(features.values()))["session_clicks"] == 4 else None

    assert wait_for(served), "the reported clicks never reached the served session row"
    before = datetime.now(UTC).timestamp()
    features = served()
    after = datetime.now(UTC).timestamp()
    assert features is not None

    def user_events() -> pd.DataFrame | None:
        rows = logged_events(settings)
        rows = rows[rows["user_id"] == user]
        return rows if len(rows) >= len(earlier) + len(shown) + len(reported) else None  # /rank's, and ours

    logged = wait_for(user_events)
    assert logged is not None, "the raw events log never held the /rank impressions and the reports"
    events = logged.reset_index(drop=True)
    events["category_id"] = events["item_id"].map(load_item_categories(settings.marts_export_dir)).astype(float)
    events["event_id"] = dedup_ids(events)
    n_categories = settings.simulator.categories
    frame = pd.DataFrame({"item_id": list(features)})
    frame["item_category_id"] = frame["item_id"].map(load_item_categories(settings.marts_export_dir)).astype(float)
    # the catalogue serving reads: the raw items' titles, the published marts' categories
    items = pd.read_parquet(settings.raw_dir / "items", columns=["item_id", "title"])
    catalogue = Catalogue.from_frame(
        items.assign(category_id=items["item_id"].map(load_item_categories(settings.marts_export_dir)))
    )
    offline = {}
    for name, instant in (("before", before), ("after", after)):
        requests = pd.DataFrame({"request_id": ["explain"], "user_id": [user], "request_ts": [instant]})
        row = session_snapshots(events, requests, settings.session, n_categories).iloc[0]
        rows = pd.concat([frame, pd.DataFrame([row] * len(frame)).reset_index(drop=True)], axis=1)
        offline[name] = session_model_columns(
            rows, np.full(len(frame), instant), settings.session, n_categories, catalogue
        )

    # half the slate's impressions are in the log twice (/rank's and the application's), all in the session once
    assert (logged["event_type"] == "impression").sum() == len(shown) + len(seen)
    first = features[candidates[0]]
    assert first["session_impressions"] == len(shown) and first["session_clicks"] == 4
    assert first["session_shown_no_click"] == len(shown) - 2
    for name in SESSION_COLUMNS.intersection(first):  # the session columns of the served model
        served_values = np.array([np.nan if f[name] is None else f[name] for f in features.values()], dtype=float)
        low = np.fmin(offline["before"][name], offline["after"][name])
        high = np.fmax(offline["before"][name], offline["after"][name])
        nan = np.isnan(low)
        assert (np.isnan(served_values) == nan).all(), name
        # time columns move with the clock between the two instants; every other column is equal at both
        assert ((low[~nan] - 1e-6 <= served_values[~nan]) & (served_values[~nan] <= high[~nan] + 1e-6)).all(), (
            name,
            served_values,
            low,
            high,
        )


@contextlib.contextmanager
def redis_on(port: int, log: Path) -> Iterator[None]:
    """A throwaway redis-server on ``port`` (no persistence), stopped on exit."""
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        import redis

        client = redis.Redis(port=port)
        assert wait_for(lambda: _pings(client), 10), log.read_text()
        yield
    finally:
        process.terminate()
        process.wait(10)


def _pings(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


def test_redis_down_rank_answers_without_session_features_and_events_resume(
    serving_world: ServingWorld, v4_model_tag: str
) -> None:
    import redis

    port, prefix = free_port(), f"test-down-{time.time_ns()}"
    env = {
        "SHOPRANK_STREAMING__MODE": "redis",
        "SHOPRANK_STREAMING__KEY_PREFIX": prefix,
        "SHOPRANK_SERVICES__REDIS_PORT": str(port),
    }
    with pinned_model_client(serving_world, v4_model_tag, "v4-redis-down", **env) as http:
        body = {"user_id": "u000009", "candidate_ids": serving_world.item_ids[:50], "k": 5}

        def degraded_answer() -> Any:
            answer = http.post("/rank", json=body).json()
            return "session-stream-unavailable" in answer.get("degraded_reasons", ()) and answer

        answer = wait_for(degraded_answer)
        assert answer and answer["items"] and answer["model_version"] == v4_model_tag, answer
        batch = [event(f"ev-down-{i}", user_id="u000009", item_id=serving_world.item_ids[i]) for i in range(5)]
        accepted = http.post("/events", json={"events": batch}).json()
        assert accepted["accepted"] == 5 and accepted["degraded_reasons"] == ["session-stream-unavailable"]
        logged = wait_for(
            lambda: logged_events(serving_world.settings)["event_id"].str.startswith("ev-down-").sum() == 5
        )
        assert logged, "accepted events missing from the raw events log"

        with redis_on(port, serving_world.settings.home_dir / f"redis-{port}.log"):
            client = redis.Redis(port=port)

            def reported() -> list[str]:
                return [e["event_id"] for e in _stream_events(client, prefix) if e["event_id"].startswith("ev-down-")]

            streamed = wait_for(lambda: len(reported()) == 5)
            assert streamed, f"{len(reported())} of 5 queued events reached the stream"
            assert reported() == [e["event_id"] for e in batch]  # in order
            # the impressions /rank served meanwhile were queued too (a session model's /rank feeds them)
            served = [e for e in _stream_events(client, prefix) if not e["event_id"].startswith("ev-down-")]
            assert served and {(e["event_type"], e["user_id"]) for e in served} == {("impression", "u000009")}
            # Redis is back but no worker runs: /rank still says the session features are not fresh
            reasons = wait_for(
                lambda: http.post("/rank", json=body).json().get("degraded_reasons") == ["session-worker-stalled"]
            )
            assert reasons


def _stream_events(client: Any, prefix: str) -> list[dict[str, Any]]:
    from serving.event_stream import decode_event

    return [decode_event(fields[b"e"]) for _, fields in client.xrange(f"{prefix}:events")]
