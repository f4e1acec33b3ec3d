"""Experiments proved through the live service: simulated users ask the running /rank, the service assigns their arms
(serving/experiments.yaml) and logs the requests and impressions; the simulator's hidden truth decides clicks and
purchases, reported to POST /events with the request id as a client application does; then the experiments
analysis (orchestration/experiments.py: dbt's exposure views or the logs) reads what the service logged.

Users are drawn in proportion to their simulated activity (orchestration/replay.py's draw and response model);
the client's own tallies per arm are returned beside the report, so a test can check the logged path lost nothing.
Beside the drawn clicks, the tallies keep what the truth expects (no draw noise): per arm the expected clicks
(``expected_clicks``: the click probabilities of the slate as shown, with position bias), and for an interleaved
slate per team its items, their position-free click probability, the clicks expected at their positions
(``team_A_expected_clicks``...) and the clicks drawn (``team_A_clicks``): whether the two rankers differ for these
users at all, before any statistics.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np

from orchestration.replay import _index, simulate_response
from producers.simulator import build_world, click_logit, position_bias
from serving.item_cache import ItemCache
from shoprank.settings import Settings

EVENTS_PER_CALL = 500  # well under the API's max_events_per_call


def drive(settings: Settings, url: str, n_requests: int = 200, k: int = 20, seed: int = 0) -> dict[str, Any]:
    """``n_requests`` feeds from the live service, their simulated responses reported back; per arm tallies."""
    world = build_world(settings)
    items = ItemCache.from_marts(settings.marts_export_dir)
    rows = np.arange(len(items))
    price = dict(zip(items.all_ids(), np.nan_to_num(items.column("item_price", rows)), strict=True))
    rng = np.random.default_rng(seed)
    existing = np.flatnonzero(world.user_created_day < settings.simulator.days)
    users = rng.choice(existing, size=n_requests, p=world.activity[existing] / world.activity[existing].sum())
    tallies: dict[str, Counter[str]] = {}
    expected: dict[str, defaultdict[str, float]] = {}
    pending: list[dict[str, Any]] = []
    failed = 0
    with httpx.Client(base_url=url, timeout=30) as client:
        for r, user in enumerate(users):
            user_id, request_id = f"u{user:06d}", f"xp-replay-{seed}-{r}"
            answer = client.post("/rank", json={"user_id": user_id, "k": k, "request_id": request_id})
            if answer.status_code != 200:
                failed += 1
                continue
            body = answer.json()
            slate = [item["item_id"] for item in body["items"]]
            known = [(p, i, x) for p, (i, x) in enumerate((i, _index(i)) for i in slate) if x is not None]
            known = [(p, i, x) for p, i, x in known if 0 <= x < len(world.quality)]
            clicked, bought = simulate_response(
                world, int(user), [x for *_, x in known], np.random.default_rng([seed, r])
            )
            arm = body.get("arm") or "none"
            tally = tallies.setdefault(arm, Counter())
            tally["requests"] += 1
            tally["impressions"] += len(slate)
            _expect(world, int(user), known, body, clicked, expected.setdefault(arm, defaultdict(float)))
            now = datetime.now(UTC).isoformat()
            for (position, item_id, _), click, buy in zip(known, clicked, bought, strict=True):
                base = {"user_id": user_id, "item_id": item_id, "request_id": request_id, "position": position + 1}
                if click:
                    tally["clicks"] += 1
                    pending.append(
                        {**base, "event_id": f"{request_id}-c-{item_id}", "event_ts": now, "event_type": "click"}
                    )
                if buy:
                    tally["purchases"] += 1
                    tally["gmv_cents"] += round(price.get(item_id, 0.0) * 100)
                    pending.append(
                        {
                            **base,
                            "event_id": f"{request_id}-p-{item_id}",
                            "event_ts": now,
                            "event_type": "purchase",
                            "price": price.get(item_id, 0.0),
                            "quantity": 1,
                        }
                    )
            if len(pending) >= EVENTS_PER_CALL:
                _report(client, pending)
                pending = []
        if pending:
            _report(client, pending)
    per_arm = {arm: {**t, **expected.get(arm, {})} for arm, t in tallies.items()}
    return {"requests": n_requests, "failed": failed, "per_arm": per_arm}


def _expect(
    world: Any,
    user: int,
    known: list[tuple[int, str, int]],
    body: dict[str, Any],
    clicked: np.ndarray,
    tally: defaultdict[str, float],
) -> None:
    """The truth's expectations for one slate (simulate_response's probabilities, without the draws)."""
    if not known:
        return
    idx = np.asarray([x for *_, x in known], dtype=int)
    p_free = 1 / (1 + np.exp(-click_logit(world, np.full(len(idx), user), idx)))
    p_shown = p_free * position_bias(np.arange(1, len(idx) + 1))
    tally["expected_clicks"] += float(p_shown.sum())
    if not body.get("interleaved"):
        return
    team = {item["item_id"]: item.get("ranker") for item in body["items"]}
    for (_, item_id, _), free, shown, click in zip(known, p_free, p_shown, clicked, strict=True):
        side = team.get(item_id) or "none"
        tally[f"team_{side}_items"] += 1
        tally[f"team_{side}_clicks"] += int(click)
        tally[f"team_{side}_click_probability"] += float(free)
        tally[f"team_{side}_expected_clicks"] += float(shown)


def _report(client: httpx.Client, events: list[dict[str, Any]]) -> None:
    answer = client.post("/events", json={"events": events})
    answer.raise_for_status()
    if answer.json()["rejected"]:
        raise RuntimeError(f"the service rejected replayed events: {answer.json()['rejections'][:3]}")


def replay_experiments(
    settings: Settings, url: str, n_requests: int = 200, k: int = 20, seed: int = 0
) -> dict[str, Any]:
    """Drive the live service, wait for its logs to flush, then run the experiments report on today's logs."""
    from orchestration.experiments import experiment_report

    driven = drive(settings, url, n_requests, k, seed)
    time.sleep(settings.serving.log_flush_seconds + 1.0)  # the service writes its buffered logs every flush period
    report = experiment_report(settings, datetime.now(UTC).date(), pre_days=0)
    return {"driven": driven, **report}
