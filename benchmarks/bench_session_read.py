"""The session read's share of a /rank (part of `make bench-serving`): per call, the CPU cost of turning the user's
stored session row into the model's session columns for N candidates, as serving/ranking.py's ``session_columns``
does after the online read (unpack the stored string, user columns, per-candidate columns). Timed with the process's
CPU clock as well as the wall clock: on a shared, loaded machine the CPU figure is the one that says what the code
costs. The session is a busy one (200 events: impressions and clicks over 12 categories, 50 clicked items)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from benchmarks.common import fmt_quantiles, line


def busy_row(settings: Any, now: datetime) -> str:
    from shoprank.session import SessionEvent, SessionState, pack_row, update, user_session_features

    n_categories = settings.simulator.categories
    state = SessionState(user_id="u000001")
    for k in range(200):
        kind = "click" if k % 4 == 0 else "impression"
        ts = now - timedelta(seconds=1200 - 5 * k)
        update(
            state,
            SessionEvent(f"e{k}", ts, kind, "u000001", f"i{k * 7 % 1000:06d}", k % n_categories),
            settings.session,
        )
    return pack_row(user_session_features(state, now, settings.session, n_categories=n_categories))


def bench_session_read(settings: Any, candidates: list[str], n: int = 500) -> tuple[list[float], float]:
    """(wall ms per call, mean CPU ms per call) of the session columns of a v4 model for ``candidates``."""
    from serving.ranking import SESSION_COLUMNS, session_columns
    from shoprank.session import unpack_row

    now = datetime.now(UTC)
    stored = busy_row(settings, now)
    n_categories = settings.simulator.categories
    categories = np.arange(len(candidates), dtype=float) % (n_categories + 1)  # some items of no known category
    columns = sorted(SESSION_COLUMNS)

    def call() -> dict[str, np.ndarray]:
        user = unpack_row(stored)
        return session_columns(columns, user, candidates, categories, now, settings.session, n_categories)

    for _ in range(20):
        call()
    wall = []
    cpu = time.process_time()
    for _ in range(n):
        started = time.perf_counter()
        call()
        wall.append((time.perf_counter() - started) * 1000)
    return wall, (time.process_time() - cpu) * 1000 / n


def print_session_read(settings: Any, candidates: list[str]) -> None:
    wall, cpu = bench_session_read(settings, candidates)
    line(f"session read, {len(candidates)} candidates (p50/p95/p99)", fmt_quantiles(wall))
    line("session read, CPU per call (process clock)", f"{cpu:.2f} ms")
