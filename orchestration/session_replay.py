"""Replay with feedback: simulated users browse in visits, their clicks and purchases go to POST /events as they
happen, so the session features move during the replay; a ranker with session features (``ranker_v4``) is compared
with one without (``ranker_v3``) over the same visits.

Two services answer: ``url`` (the one under test, e.g. the v4 champion) and ``baseline_url`` (e.g. a service pinned
to the v3 model, ``SHOPRANK_MODEL_TAG=<tag> shoprank serve --port ...``). Each simulated visit follows the
simulator's visit model (producers/simulator.py, docs/simulator.md): a user drawn by activity, an intent drawn from
their affinity, a geometric number of requests (mean ``simulator.session_requests``, at least 2 here) within which the
intent switches with probability ``simulator.session_intent_switch``. Every request is asked of both services; the
user answers each slate from the simulator's hidden truth *with the visit's intent* (``w_intent`` for items of the
intent's category), both arms with the same random draws (common random numbers). Only the arm under test reports
its impressions, clicks, carts and purchases to its service's ``/events``: both services of one home share the
session path (the embedded pusher's online store, or the Redis stream and the worker's per-user state), so the
baseline's reports would overwrite or join the session the tested arm reads, and a model without session features
has no use for them. So only the session features differ between the arms.

A visit's events are timestamped now; a session lasts ``session.gap_seconds`` after its last event, so a second
replay within that time starts with the first one's sessions for the users it draws again (use another seed, or
wait).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pandas as pd

from orchestration.replay import _index, simulate_response
from producers.simulator import build_world
from serving.item_cache import ItemCache
from shoprank.settings import Settings

log = logging.getLogger(__name__)

ARMS = ("with session", "without session")


@dataclass
class ArmStats:
    requests: int = 0
    impressions: int = 0
    clicks: int = 0
    purchases: int = 0
    gmv: float = 0.0
    failed_requests: int = 0
    degraded_responses: int = 0
    rejected_events: int = 0
    served_by: str = ""


def _events(
    user_id: str, request_id: str, slate: list[str], clicked: np.ndarray, bought: np.ndarray, price: dict[str, float]
) -> list[dict[str, Any]]:
    """What an application reports for one answered slate: impressions, then clicks, carts and purchases."""
    now = datetime.now(UTC).isoformat()
    out = []

    def event(event_type: str, item_id: str, **extra: Any) -> None:
        out.append(
            {
                "event_id": uuid.uuid4().hex,
                "event_ts": now,
                "event_type": event_type,
                "user_id": user_id,
                "item_id": item_id,
                "request_id": request_id,
                "surface": "feed",
                **extra,
            }
        )

    for position, item_id in enumerate(slate, start=1):
        event("impression", item_id, position=position)
    for item_id, click, buy in zip(slate, clicked, bought, strict=True):
        if click:
            event("click", item_id)
        if buy:
            event("add_to_cart", item_id)
            event("purchase", item_id, price=price.get(item_id, 0.0), quantity=1)
    return out


def _visit_plan(settings: Settings, world: Any, n_visits: int, rng: np.random.Generator) -> list[tuple[int, list[int]]]:
    """(user, the intent of each of its requests) per visit, from the simulator's visit model."""
    sim = settings.simulator
    existing = np.flatnonzero(world.user_created_day < sim.days)
    weights = world.activity[existing] / world.activity[existing].sum()
    plan = []
    for user in rng.choice(existing, size=n_visits, p=weights):
        length = max(2, int(rng.geometric(1.0 / max(sim.session_requests, 2.0))))
        draws = rng.choice(world.n_categories, size=length, p=world.affinity[user])
        switches = rng.random(length) < sim.session_intent_switch
        intents = [int(draws[0])]
        for j in range(1, length):
            intents.append(int(draws[j]) if switches[j] else intents[-1])
        plan.append((int(user), intents))
    return plan


def replay_with_feedback(
    settings: Settings,
    url: str,
    baseline_url: str,
    n_visits: int = 50,
    k: int = 20,
    seed: int = 0,
    think_seconds: float = 0.3,
    timeout: float = 30.0,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Run the visits against both services; one row of online metrics per arm (see the module docstring)."""
    world = build_world(settings)
    items = ItemCache.from_marts(settings.marts_export_dir)
    ids = np.asarray(items.all_ids(), dtype=object)
    price = dict(zip(ids, np.nan_to_num(items.column("item_price", np.arange(len(items)))), strict=True))
    rng = np.random.default_rng(seed)
    plan = _visit_plan(settings, world, n_visits, rng)
    run = uuid.uuid4().hex[:6]
    stats = {arm: ArmStats() for arm in ARMS}
    clients = {
        ARMS[0]: httpx.Client(base_url=url, timeout=timeout),
        ARMS[1]: httpx.Client(base_url=baseline_url, timeout=timeout),
    }
    n_world = len(world.quality)
    try:
        for v, (user, intents) in enumerate(plan):
            user_id = f"u{user:06d}"
            for j, intent in enumerate(intents):
                for arm, client in clients.items():
                    s = stats[arm]
                    s.requests += 1
                    request_id = f"fb-{run}-{v}-{j}-{ARMS.index(arm)}"
                    response = client.post("/rank", json={"user_id": user_id, "k": k, "request_id": request_id})
                    if response.status_code != 200:
                        s.failed_requests += 1
                        continue
                    data = response.json()
                    s.degraded_responses += bool(data["degraded"])
                    s.served_by = str(data.get("model_version", ""))
                    slate = [item["item_id"] for item in data["items"]]
                    known = [(i, x) for i, x in ((i, _index(i)) for i in slate) if x is not None and 0 <= x < n_world]
                    clicked, bought = simulate_response(
                        world, user, [x for _, x in known], np.random.default_rng([seed, v, j]), intent=intent
                    )
                    shown = [i for i, _ in known]
                    s.impressions += len(shown)
                    s.clicks += int(clicked.sum())
                    s.purchases += int(bought.sum())
                    s.gmv += float(sum(price.get(i, 0.0) for i, b in zip(shown, bought, strict=True) if b))
                    if arm != ARMS[0]:
                        continue  # the baseline does not report (module docstring: the shared session path)
                    reported = _events(user_id, request_id, shown, clicked, bought, price)
                    answer = client.post("/events", json={"events": reported})
                    ok = answer.status_code == 200
                    s.rejected_events += answer.json().get("rejected", 0) if ok else len(reported)
                time.sleep(think_seconds)  # the user reads the list before asking for the next one
            if progress:
                progress(v + 1)
    finally:
        for client in clients.values():
            client.close()
    return pd.DataFrame(
        [
            {
                "arm": arm,
                "model": s.served_by,
                "requests": s.requests,
                "impressions": s.impressions,
                "ctr": s.clicks / max(s.impressions, 1),
                "clicks_per_request": s.clicks / max(s.requests, 1),
                "purchases_per_request": s.purchases / max(s.requests, 1),
                "gmv_per_request": s.gmv / max(s.requests, 1),
                "degraded": s.degraded_responses,
                "failed": s.failed_requests,
                "rejected_events": s.rejected_events,
            }
            for arm, s in stats.items()
        ]
    ).set_index("arm")
