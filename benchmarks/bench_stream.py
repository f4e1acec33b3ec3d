"""`make bench-stream`: the real-time path's throughput and freshness. Printed, never asserted. Runs in the bench
home (var/bench; the pipeline runs there first when it has no model), Redis from settings.services, under a key
prefix of its own (deleted at the end).

- the worker: events/s folded and written to the online store (SQLite: local profile; Redis: services profile),
  from a stream filled beforehand (no HTTP), per batch size, for the simulator's event mix and for the worst case
  (every event another user's); wall time and per CPU-second of the worker (target 20,000 events/s);
- POST /events into the stream: events/s over loopback HTTP, batches of ``serving.max_events_per_call``;
- freshness, per profile (embedded: in the service; redis: service -> stream -> worker): from POST /events
  answering for a click to the user's online session row showing it, read as /rank reads it (the same Feast online
  read of the champion's user views plus the session view); target p99 < 1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pandas as pd

from benchmarks.common import bench_settings, has_model, line, run_pipeline, serving


def _event(user: str, item: str, event_type: str = "click") -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "event_ts": datetime.now(UTC),
        "event_type": event_type,
        "user_id": user,
        "item_id": item,
    }


def _with_streaming(settings: Any, **fields: Any) -> Any:
    return settings.model_copy(update={"streaming": settings.streaming.model_copy(update=fields)})


def _cleanup(prefix: str) -> None:
    import redis

    client = redis.Redis()
    keys = list(client.scan_iter(f"{prefix}:*"))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])


def round_robin_events(events: int, users: int) -> list[dict[str, Any]]:
    """The worst case for the worker: clicks of ``users`` users in turn, so a batch touches as many users as it
    holds events (one online-store write per event)."""
    return [_event(f"u{i % users:06d}", f"i{i % 1000:06d}") for i in range(events)]


def simulated_events(settings: Any, events: int) -> list[dict[str, Any]]:
    """The simulator's own event stream (impressions of a request together, then clicks, carts, purchases), its
    newest ``events`` in time order, shifted to end now and given fresh ids: what an application reports."""
    import pyarrow.dataset as ds

    columns = ["event_id", "event_ts", "event_type", "user_id", "item_id", "request_id", "surface", "query"]
    table = ds.dataset(settings.raw_dir / "events", format="parquet", partitioning="hive").to_table(columns=columns)
    frame = table.to_pandas().sort_values(["event_ts", "event_id"]).tail(events)
    shift = pd.Timestamp.now(tz="UTC") - frame["event_ts"].max()
    frame["event_ts"] = frame["event_ts"] + shift
    tag = uuid.uuid4().hex[:6]
    frame["event_id"] = tag + frame["event_id"]
    return [{k: v for k, v in row.items() if v is not None and v == v} for row in frame.to_dict("records")]


def bench_worker(settings: Any, rows: list[dict[str, Any]], batch: int) -> tuple[float, float, Any]:
    """(events/s wall, events per CPU-second of this process, stats) of StreamWorker.run over a stream filled
    beforehand with ``rows``. The CPU figure is what the worker costs on a shared, loaded machine (Redis's and
    SQLite's own I/O waits are in the wall figure only)."""
    from serving.event_stream import StreamKeys, encode_event, xadd_all
    from serving.stream_worker import StreamWorker

    prefix = f"bench-worker-{uuid.uuid4().hex[:8]}"
    local = _with_streaming(settings, key_prefix=prefix, batch_size=batch, block_ms=50)
    worker = StreamWorker(local)
    keys = StreamKeys(prefix)
    try:
        for start in range(0, len(rows), 10_000):
            xadd_all(worker.client, keys, [encode_event(r) for r in rows[start : start + 10_000]], len(rows) * 2)
        started, cpu = time.perf_counter(), time.process_time()
        stats = worker.run(max_idle_batches=1)
        elapsed = time.perf_counter() - started - local.streaming.block_ms / 1000  # the final empty read
        return stats.entries / elapsed, stats.entries / (time.process_time() - cpu), stats
    finally:
        _cleanup(prefix)


@contextlib.contextmanager
def redis_online_store(settings: Any) -> Iterator[Any]:
    """The services profile's online store for the worker: Feast on Redis (keys end with a project of this run's
    own, deleted after) and its registry in a PostgreSQL database of this run's own (dropped after)."""
    import psycopg
    from psycopg import sql

    from feature_repo.materialize import apply_feature_repo
    from shoprank.databases import ensure_postgres_database
    from shoprank.feature_store import get_feature_store
    from shoprank.settings import apply_runtime_env

    name = f"bench_online_{uuid.uuid4().hex[:8]}"
    services = settings.services.model_copy(update={"feast_registry_database": name})
    redis_settings = settings.model_copy(update={"profile": "services", "feast_project": name, "services": services})
    ensure_postgres_database(redis_settings, name)
    try:
        apply_feature_repo(redis_settings)
        yield redis_settings
        get_feature_store(redis_settings).teardown()
    finally:
        apply_runtime_env(settings)
        admin = settings.services.postgres_url("postgres", driver="postgresql")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def bench_intake(base: str, seconds: float, per_call: int, users: int) -> float:
    """Events/s accepted by POST /events (two clients)."""

    def client(_: int) -> int:
        done = 0
        stop = time.monotonic() + seconds
        with httpx.Client(base_url=base, timeout=30) as http:
            while time.monotonic() < stop:
                batch = [_event(f"u{i % users:06d}", f"i{i % 1000:06d}") for i in range(per_call)]
                body = {"events": [{**e, "event_ts": e["event_ts"].isoformat()} for e in batch]}
                http.post("/events", json=body).raise_for_status()
                done += per_call
        return done

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        return sum(pool.map(client, range(2))) / seconds


def bench_freshness(settings: Any, base: str, clicks: int) -> list[float]:
    """Milliseconds from POST /events answering for a click to the online session row counting it."""
    from serving.online_features import OnlineFeatureReader
    from shoprank.feature_store import get_feature_store

    store = get_feature_store(settings)
    reader = OnlineFeatureReader(store, "ranker_v4", settings.simulator.categories)
    out = []
    with httpx.Client(base_url=base, timeout=30) as http:
        for n in range(clicks):
            user = f"fresh-{uuid.uuid4().hex[:10]}"
            event = _event(user, f"i{n % 100:06d}")
            http.post("/events", json={"events": [{**event, "event_ts": event["event_ts"].isoformat()}]})
            started = time.perf_counter()
            deadline = started + 10
            while (reader.user_features(user).get("sess_clicks") or 0) < 1 and time.perf_counter() < deadline:
                time.sleep(0.002)
            out.append((time.perf_counter() - started) * 1000)
    return out


def _drained(settings: Any, seconds: float = 300.0) -> None:
    import redis

    from serving.event_stream import StreamKeys

    client, stream = redis.Redis(), StreamKeys(settings.streaming.key_prefix).stream
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        groups: Any = client.xinfo_groups(stream)
        if groups and groups[0]["lag"] == 0 and groups[0]["pending"] == 0:
            return
        time.sleep(0.2)


@contextlib.contextmanager
def worker_thread(settings: Any) -> Iterator[None]:
    from serving.stream_worker import StreamWorker

    worker = StreamWorker(settings)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        worker.stop.set()
        thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="events through the worker per batch size")
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--batches", type=int, nargs="+", default=[500, 2000, 5000])
    parser.add_argument("--seconds", type=float, default=10.0, help="POST /events load per measurement")
    parser.add_argument("--clicks", type=int, default=100, help="freshness samples per profile")
    args = parser.parse_args()

    from benchmarks.common import fmt_quantiles
    from feature_repo.materialize import apply_feature_repo

    settings = bench_settings()
    print(f"bench home: {settings.home_dir}", flush=True)
    if not has_model(settings):
        from producers.simulator import simulate

        simulate(settings, settings.default_run_date)
        run_pipeline(settings)
    apply_feature_repo(settings)  # the session view and its push source

    print("stream benchmark", flush=True)
    mixes = {
        "simulated": simulated_events(settings, args.events),
        f"round-robin {args.users:,} users": round_robin_events(args.events, args.users),
    }
    for store_name, store in (("sqlite", contextlib.nullcontext(settings)), ("redis", redis_online_store(settings))):
        with store as store_settings:
            for mix, rows in mixes.items():
                for batch in args.batches:
                    rate, per_cpu, stats = bench_worker(store_settings, rows, batch)
                    line(
                        f"worker -> {store_name} online store, {mix}: {len(rows):,} events, batches of {batch}",
                        f"{rate:,.0f} events/s wall, {per_cpu:,.0f} per CPU-s ({stats.pushed_users:,} user rows)",
                    )

    prefix = f"bench-stream-{uuid.uuid4().hex[:8]}"
    redis_env = {"SHOPRANK_STREAMING__MODE": "redis", "SHOPRANK_STREAMING__KEY_PREFIX": prefix}
    redis_settings = _with_streaming(settings, mode="redis", key_prefix=prefix)
    try:
        with serving(settings, env=redis_env) as base:
            per_call = settings.serving.max_events_per_call
            rate = bench_intake(base, args.seconds, per_call, args.users)
            line(f"POST /events -> stream ({per_call} per call, 2 clients)", f"{rate:,.0f} events/s")
            with worker_thread(redis_settings):
                _drained(redis_settings)  # the intake's events first: freshness is measured on an idle stream
                fresh = bench_freshness(settings, base, args.clicks)
            line("freshness, redis: click -> online row (p50/p95/p99)", fmt_quantiles(fresh))
    finally:
        _cleanup(prefix)
    with serving(settings, env={"SHOPRANK_STREAMING__MODE": "embedded"}) as base:
        fresh = bench_freshness(settings, base, args.clicks)
        line("freshness, embedded: click -> online row (p50/p95/p99)", fmt_quantiles(fresh))


if __name__ == "__main__":
    main()
