"""The replay with feedback (orchestration/session_replay.py): its visits follow the simulator's visit model, and
what it reports for an answered slate is what POST /events accepts."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from orchestration.session_replay import _events, _run_on_the_visits_clock, _schedule, _timed_events, _visit_plan
from producers.simulator import BUY_DELAY_SECONDS, CART_DELAY_SECONDS, CLICK_DELAY_SECONDS, build_world
from serving.schemas import EventsRequest
from shoprank.settings import Settings, SimulatorSettings

SIM = {"users": 200, "items": 100, "sellers": 8, "categories": 6, "requests_per_day": 100, "days": 3}


def test_visits_hold_several_requests_whose_intent_persists(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path, simulator=SimulatorSettings(**SIM, session_requests=4.0, session_intent_switch=0.1)
    )
    world = build_world(settings)
    plan = _visit_plan(settings, world, 300, np.random.default_rng(0))
    lengths = [len(intents) for _, intents in plan]
    assert min(lengths) >= 2 and 3.0 < np.mean(lengths) < 6.0
    steps = [(a, b) for _, intents in plan for a, b in zip(intents, intents[1:], strict=False)]
    kept = np.mean([a == b for a, b in steps])
    assert 0.85 < kept < 0.99, kept  # switch 0.1, and a fresh draw may land on the same category
    users = {user for user, _ in plan}
    assert all(world.user_created_day[u] < settings.simulator.days for u in users)


def test_reported_events_are_accepted_by_the_events_schema() -> None:
    slate = ["i000001", "i000002", "i000003"]
    clicked, bought = np.array([False, True, True]), np.array([False, False, True])
    events = _events("u000007", "fb-1", slate, clicked, bought, {"i000003": 12.5})
    request = EventsRequest.model_validate({"events": events})
    kinds = [(e.event_type, e.item_id) for e in request.events]
    assert kinds == [
        ("impression", "i000001"),
        ("impression", "i000002"),
        ("impression", "i000003"),
        ("click", "i000002"),
        ("click", "i000003"),
        ("add_to_cart", "i000003"),
        ("purchase", "i000003"),
    ]
    assert [e.position for e in request.events[:3]] == [1, 2, 3]
    assert request.events[-1].price == 12.5 and request.events[-1].quantity == 1
    assert len({e.event_id for e in request.events}) == len(events)


def test_on_the_visits_clock_events_come_the_simulators_delays_after_the_impression() -> None:
    slate = ["i000001", "i000002", "i000003"]
    clicked, bought = np.array([False, True, True]), np.array([False, False, True])
    timed = _timed_events("u000007", "fb-1", slate, clicked, bought, {}, np.random.default_rng(3))
    at = {(e["event_type"], e["item_id"]): t for t, e in timed}
    assert [at[("impression", i)] for i in slate] == [0.0, 0.0, 0.0]
    for item in ("i000002", "i000003"):
        assert CLICK_DELAY_SECONDS[0] <= at[("click", item)] <= CLICK_DELAY_SECONDS[1]
    cart = at[("add_to_cart", "i000003")] - at[("click", "i000003")]
    assert CART_DELAY_SECONDS[0] <= cart <= CART_DELAY_SECONDS[1]
    purchase = at[("purchase", "i000003")] - at[("add_to_cart", "i000003")]
    assert BUY_DELAY_SECONDS[0] <= purchase <= BUY_DELAY_SECONDS[1]
    assert all("event_ts" not in e for _, e in timed)  # stamped when reported
    # the compressed clock reports everything with the impressions
    compressed = _timed_events("u000007", "fb-1", slate, clicked, bought, {}, None)
    assert {t for t, _ in compressed} == {0.0}


def test_visits_clock_schedule_keeps_the_simulators_gaps_and_one_visit_per_user(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, simulator=SimulatorSettings(**SIM, session_requests=4.0))
    plan = _visit_plan(settings, build_world(settings), 60, np.random.default_rng(0), distinct=True)
    assert len({user for user, _ in plan}) == len(plan)
    schedule = _schedule(plan, 90.0, 600.0, seed=1)
    assert [at for at, _, _ in schedule] == sorted(at for at, _, _ in schedule)
    assert len(schedule) == sum(len(intents) for _, intents in plan)
    by_visit: dict[int, list[float]] = {}
    for at, v, j in schedule:
        assert j == len(by_visit.setdefault(v, []))  # a visit's requests in order
        by_visit[v].append(at)
    assert all(0 <= times[0] <= 600 for times in by_visit.values())
    gaps = np.concatenate([np.diff(times) for times in by_visit.values()])
    assert 60 < gaps.mean() < 120, gaps.mean()


def test_the_visits_clock_reports_a_slates_events_at_their_delays(tmp_path: Path) -> None:
    """Requests at their times; a slate's impressions reported before the visit's next request, a click due after
    the next request reported after it (as in training, where such a click is not yet in the session)."""
    settings = Settings(home=tmp_path, simulator=SimulatorSettings(**SIM, request_gap_seconds=0.2))
    plan = [(1, [0, 0, 0]), (2, [1, 1])]
    log: list[tuple[str, int, int, float]] = []
    started = time.monotonic()

    def ask(v: int, j: int) -> list[tuple[float, dict]]:
        log.append(("ask", v, j, time.monotonic() - started))
        return [(0.0, {"kind": "impression", "v": v, "j": j}), (5.0, {"kind": "click", "v": v, "j": j})]

    def report(events: list[dict]) -> None:
        log.extend((e["kind"], e["v"], e["j"], time.monotonic() - started) for e in events)

    _run_on_the_visits_clock(plan, settings, 0.1, 0, ask, report, None)
    asks = [(v, j) for kind, v, j, _ in log if kind == "ask"]
    assert sorted(asks) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    position = {(kind, v, j): n for n, (kind, v, j, _) in enumerate(log)}
    for v, j in asks:
        assert position[("impression", v, j)] > position[("ask", v, j)]
        if (v, j + 1) in set(asks):
            assert position[("impression", v, j)] < position[("ask", v, j + 1)]
            assert position[("click", v, j)] > position[("ask", v, j + 1)]  # 5 s later: after the next request
