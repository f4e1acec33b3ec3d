"""The replay with feedback (orchestration/session_replay.py): its visits follow the simulator's visit model, and
what it reports for an answered slate is what POST /events accepts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from orchestration.session_replay import _events, _visit_plan
from producers.simulator import build_world
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
