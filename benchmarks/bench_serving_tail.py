"""Where the /rank tail comes from, in process: per request its wall and CPU time, each stage's share and the
cyclic GC's pauses, then the slowest requests' breakdown.

    SHOPRANK_HOME=<home> python -m benchmarks.bench_serving_tail [--funnel] [--requests 600]

Builds ``RankingService`` in this process (the state loads as the server's worker loads it, ``gc.freeze`` included
unless ``SHOPRANK_SERVING__GC_FREEZE=false``), warms it with 20 feed requests, then times ``--requests`` feed
requests (k=20, rules on; the users of `bench_serving --funnel`, in the same order). Each request's time is split
into the user's online read, retrieval, pre-ranking, the final ranker's scoring, the rules and the response's
metrics/logging (``observe``); ``gc0``/``gc1``/``gc2`` are the collections that ran during it (gc.callbacks), and
``logflush`` the serving log's Parquet writes that overlapped it (on the writer thread, or inline). Printed, never
asserted: ``make bench-serving BENCH_ARGS=--only-funnel`` gives the HTTP figures.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from benchmarks.common import bench_settings
from shoprank.mart_files import read_mart

STAGES = ("read_user", "retrieve", "prerank", "score", "rules", "observe")


class Splits:
    """Milliseconds per named part of the current request (``timed`` wrappers and the GC callback add to it)."""

    def __init__(self) -> None:
        self.current: dict[str, float] = {}
        self._gc_started = 0.0

    def timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(name, (time.perf_counter() - started) * 1000)

        return wrapper

    def add(self, name: str, ms: float) -> None:
        self.current[name] = self.current.get(name, 0.0) + ms

    def gc_callback(self, phase: str, info: dict[str, Any]) -> None:
        """For gc.callbacks: each collection's pause, as ``gc<generation>``."""
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.add(f"gc{info['generation']}", (time.perf_counter() - self._gc_started) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--funnel", action="store_true", help="recall.prerank on (5,000 retrieved, pre-ranked)")
    args = parser.parse_args()
    os.environ["SHOPRANK_RECALL__PRERANK"] = "true" if args.funnel else "false"
    os.environ["SHOPRANK_SERVING__CACHE_REFRESH_SECONDS"] = "0"
    settings = bench_settings()
    import serving.service as service_module
    from serving.schemas import RankRequest

    service = service_module.RankingService()
    print(
        f"bench home {settings.home_dir}: {'funnel' if args.funnel else 'today'}, {args.requests} feed requests; "
        f"gc frozen {gc.get_freeze_count():,} objects, {len(gc.get_objects()):,} tracked, thresholds "
        f"{gc.get_threshold()}",
        flush=True,
    )
    splits = Splits()
    service._read_user = splits.timed("read_user", service._read_user)  # type: ignore[method-assign]
    service._prerank = splits.timed("prerank", service._prerank)  # type: ignore[method-assign]
    service._score = splits.timed("score", service._score)  # type: ignore[method-assign]
    service._observe = splits.timed("observe", service._observe)  # type: ignore[method-assign]
    service_module.apply_rules = splits.timed("rules", service_module.apply_rules)
    retrieval = service.state.retrieval
    object.__setattr__(retrieval, "retrieve_codes", splits.timed("retrieve", retrieval.retrieve_codes))
    if service.request_log is not None:
        service.request_log.flush = splits.timed("logflush", service.request_log.flush)  # type: ignore[method-assign]

    users = sorted(read_mart(settings.marts_export_dir, "user_features", ["user_id"])["user_id"].unique())
    for i in range(20):
        service._rank(RankRequest(user_id=users[i % len(users)], k=20))
    gc.callbacks.append(splits.gc_callback)
    rows = []
    try:
        for i in range(args.requests):
            splits.current = {}
            started, cpu = time.perf_counter(), time.process_time()
            service._rank(RankRequest(user_id=users[(i + 21) % len(users)], k=20))
            wall = (time.perf_counter() - started) * 1000
            rows.append({"wall": wall, "cpu": (time.process_time() - cpu) * 1000, **splits.current})
    finally:
        gc.callbacks.remove(splits.gc_callback)
        if service.event_log is not None:
            service.event_log.close()
    _print(pd.DataFrame(rows).fillna(0.0))


def _print(frame: pd.DataFrame) -> None:
    p50, p95, p99 = frame["wall"].quantile([0.5, 0.95, 0.99])
    print(
        f"  wall p50/p95/p99/max {p50:.1f} / {p95:.1f} / {p99:.1f} / {frame['wall'].max():.1f} ms; "
        f"CPU {frame['cpu'].mean():.1f} ms per request (the process: the log writer's thread included)"
    )
    parts = [c for c in (*STAGES, "gc0", "gc1", "gc2", "logflush") if c in frame]
    print("  mean ms per request: " + ", ".join(f"{c} {frame[c].mean():.2f}" for c in parts))
    for generation in ("gc0", "gc1", "gc2"):
        if generation in frame:
            pauses = frame.loc[frame[generation] > 0, generation]
            print(f"  {generation}: {len(pauses)} requests paused, max {pauses.max():.1f} ms, total {pauses.sum():.1f}")
    slowest = frame.sort_values("wall").tail(max(3, len(frame) // 50))
    print(f"  the slowest {len(slowest)} requests (ms):")
    print(slowest[["wall", "cpu", *parts]].round(1).to_string(index=False))


if __name__ == "__main__":
    main()
