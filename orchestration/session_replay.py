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

Two clocks (``clock``):
- ``visits`` (the default): the simulator's clock, in real time. Visits run side by side, starting uniformly within
  ``spread_seconds``; a visit's requests are ``simulator.request_gap_seconds`` apart on average (exponential), and
  each slate's clicks, carts and purchases are reported when they happen, the simulator's delays after the
  impression (producers/simulator.py: clicks 2-120 s later, so the next request of a visit often comes before
  them). So the session features served (seconds since the last click, the 5-minute windows, the session's age, what
  the session already holds) are drawn from the distribution the ranker was trained on. Each user visits once.
- ``compressed``: requests ``think_seconds`` apart and a slate's clicks reported with its impressions, at once. Fast,
  but the served session columns sit outside training's range (a click 0.3 s before the next request, never one
  still to come): ranker_v4 lost to v3 on it (README, "Live, with feedback").

Events are timestamped when reported; a session lasts ``session.gap_seconds`` after its last event, so a second
replay within that time starts with the first one's sessions for the users it draws again (use another seed, or
wait).
"""

from __future__ import annotations

import heapq
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
from producers.simulator import BUY_DELAY_SECONDS, CART_DELAY_SECONDS, CLICK_DELAY_SECONDS, build_world
from serving.item_cache import ItemCache
from shoprank.settings import Settings

log = logging.getLogger(__name__)

ARMS = ("with session", "without session")
CLOCKS = ("visits", "compressed")


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


def _event(event_type: str, user_id: str, item_id: str, request_id: str, **extra: Any) -> dict[str, Any]:
    """One reported event, without its time (stamped when it is reported)."""
    return {
        "event_id": uuid.uuid4().hex,
        "event_type": event_type,
        "user_id": user_id,
        "item_id": item_id,
        "request_id": request_id,
        "surface": "feed",
        **extra,
    }


def _timed_events(
    user_id: str,
    request_id: str,
    slate: list[str],
    clicked: np.ndarray,
    bought: np.ndarray,
    price: dict[str, float],
    rng: np.random.Generator | None,
) -> list[tuple[float, dict[str, Any]]]:
    """(seconds after the impression, event) for one answered slate: impressions at 0, then each click, cart and
    purchase the simulator's delays later (``rng`` None: all at 0, the compressed clock)."""
    out: list[tuple[float, dict[str, Any]]] = []
    for position, item_id in enumerate(slate, start=1):
        out.append((0.0, _event("impression", user_id, item_id, request_id, position=position)))

    def delay(bounds: tuple[float, float]) -> float:
        return float(rng.uniform(*bounds)) if rng is not None else 0.0

    for item_id, click, buy in zip(slate, clicked, bought, strict=True):
        if not click:
            continue
        at = delay(CLICK_DELAY_SECONDS)
        out.append((at, _event("click", user_id, item_id, request_id)))
        if buy:
            at += delay(CART_DELAY_SECONDS)
            out.append((at, _event("add_to_cart", user_id, item_id, request_id)))
            at += delay(BUY_DELAY_SECONDS)
            paid = price.get(item_id, 0.0)
            out.append((at, _event("purchase", user_id, item_id, request_id, price=paid, quantity=1)))
    return out


def _stamped(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    return [{**event, "event_ts": now} for event in events]


def _events(
    user_id: str, request_id: str, slate: list[str], clicked: np.ndarray, bought: np.ndarray, price: dict[str, float]
) -> list[dict[str, Any]]:
    """What an application reports for one answered slate on the compressed clock: impressions, then clicks, carts
    and purchases, all stamped now."""
    return _stamped([event for _, event in _timed_events(user_id, request_id, slate, clicked, bought, price, None)])


def _visit_plan(
    settings: Settings, world: Any, n_visits: int, rng: np.random.Generator, distinct: bool = False
) -> list[tuple[int, list[int]]]:
    """(user, the intent of each of its requests) per visit, from the simulator's visit model; ``distinct``: each
    user visits once (visits run side by side on the visits clock, and two at once would share one session)."""
    sim = settings.simulator
    existing = np.flatnonzero(world.user_created_day < sim.days)
    weights = world.activity[existing] / world.activity[existing].sum()
    plan = []
    for user in rng.choice(existing, size=n_visits, p=weights, replace=not distinct):
        length = max(2, int(rng.geometric(1.0 / max(sim.session_requests, 2.0))))
        draws = rng.choice(world.n_categories, size=length, p=world.affinity[user])
        switches = rng.random(length) < sim.session_intent_switch
        intents = [int(draws[0])]
        for j in range(1, length):
            intents.append(int(draws[j]) if switches[j] else intents[-1])
        plan.append((int(user), intents))
    return plan


def _schedule(
    plan: list[tuple[int, list[int]]], gap_seconds: float, spread_seconds: float, seed: int
) -> list[tuple[float, int, int]]:
    """(seconds from the start, visit, request) of every request on the visits clock, in time order: a visit starts
    uniformly within ``spread_seconds``, its requests exponential gaps (mean ``gap_seconds``) apart."""
    rng = np.random.default_rng([seed, 1])
    out = []
    for v, (_, intents) in enumerate(plan):
        start = float(rng.uniform(0.0, spread_seconds))
        gaps = np.concatenate([[0.0], rng.exponential(gap_seconds, len(intents) - 1)])
        out += [(start + float(at), v, j) for j, at in enumerate(np.cumsum(gaps))]
    return sorted(out)


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
    clock: str = "compressed",
    spread_seconds: float = 600.0,
) -> pd.DataFrame:
    """Run the visits against both services; one row of online metrics per arm (see the module docstring)."""
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {CLOCKS}, got {clock!r}")
    world = build_world(settings)
    items = ItemCache.from_marts(settings.marts_export_dir)
    ids = np.asarray(items.all_ids(), dtype=object)
    price = dict(zip(ids, np.nan_to_num(items.column("item_price", np.arange(len(items)))), strict=True))
    rng = np.random.default_rng(seed)
    realtime = clock == "visits"
    plan = _visit_plan(settings, world, n_visits, rng, distinct=realtime)
    run = uuid.uuid4().hex[:6]
    stats = {arm: ArmStats() for arm in ARMS}
    clients = {
        ARMS[0]: httpx.Client(base_url=url, timeout=timeout),
        ARMS[1]: httpx.Client(base_url=baseline_url, timeout=timeout),
    }
    n_world = len(world.quality)
    tested = stats[ARMS[0]]

    def report(events: list[dict[str, Any]]) -> None:
        """The tested arm's events to its /events, stamped now (the baseline does not report: module docstring)."""
        if not events:
            return
        answer = clients[ARMS[0]].post("/events", json={"events": _stamped(events)})
        ok = answer.status_code == 200
        tested.rejected_events += answer.json().get("rejected", 0) if ok else len(events)

    def ask(v: int, j: int) -> list[tuple[float, dict[str, Any]]]:
        """Request j of visit v asked of both arms; the tested arm's events to report, with their delays."""
        user, intents = plan[v]
        user_id = f"u{user:06d}"
        pending: list[tuple[float, dict[str, Any]]] = []
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
                world, user, [x for _, x in known], np.random.default_rng([seed, v, j]), intent=intents[j]
            )
            shown = [i for i, _ in known]
            s.impressions += len(shown)
            s.clicks += int(clicked.sum())
            s.purchases += int(bought.sum())
            s.gmv += float(sum(price.get(i, 0.0) for i, b in zip(shown, bought, strict=True) if b))
            if arm == ARMS[0]:
                delays = np.random.default_rng([seed, v, j, 1]) if realtime else None
                pending = _timed_events(user_id, request_id, shown, clicked, bought, price, delays)
        return pending

    try:
        if realtime:
            _run_on_the_visits_clock(plan, settings, spread_seconds, seed, ask, report, progress)
        else:
            for v, (_, intents) in enumerate(plan):
                for j in range(len(intents)):
                    report([event for _, event in ask(v, j)])
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


def _run_on_the_visits_clock(
    plan: list[tuple[int, list[int]]],
    settings: Settings,
    spread_seconds: float,
    seed: int,
    ask: Callable[[int, int], list[tuple[float, dict[str, Any]]]],
    report: Callable[[list[dict[str, Any]]], None],
    progress: Callable[[int], None] | None,
) -> None:
    """One loop over a time-ordered queue of due actions: requests (at the schedule's times) and event reports (at
    the impression's time plus each event's delay). Late actions run as soon as the loop gets to them; events are
    stamped when reported, so the served clock is the real one. Events due after the last request are reported at
    the end (they can move no served feature)."""
    requests = _schedule(plan, settings.simulator.request_gap_seconds, spread_seconds, seed)
    queue: list[tuple[float, int, int, int, list[dict[str, Any]]]] = []  # (due, order, visit, request, events)
    for order, (at, v, j) in enumerate(requests):
        heapq.heappush(queue, (at, order, v, j, []))
    started, order, asked = time.monotonic(), len(requests), 0
    while queue and asked < len(requests):
        due, _, v, j, events = heapq.heappop(queue)
        time.sleep(max(0.0, due - (time.monotonic() - started)))
        if events:
            report(events)
            continue
        now = time.monotonic() - started
        by_delay: dict[float, list[dict[str, Any]]] = {}
        for delay, event in ask(v, j):
            by_delay.setdefault(delay, []).append(event)
        for delay, batch in sorted(by_delay.items()):
            order += 1
            heapq.heappush(queue, (now + delay, order, v, j, batch))
        asked += 1
        if progress:
            progress(asked)
    rest = [event for *_, events in sorted(queue) for event in events]
    for first in range(0, len(rest), 500):  # under the service's events per call
        report(rest[first : first + 500])
