"""The stream worker against the real Redis on loopback (settings.services), each test under its own key prefix,
pushing into the serving world's real Feast online store (SQLite): batches, a re-sent event counted once, a dead
consumer's pending entries recovered, and `shoprank stream-worker` stopped mid-stream (SIGTERM) and restarted
without losing or double-counting an event."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from serving.event_stream import StreamKeys, encode_event, xadd_all
from serving.stream_worker import STATE_FIELD, StreamWorker
from shoprank.session import STORED_COLUMN, unpack_row
from shoprank.settings import Settings
from tests.serving.conftest import ServingWorld


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"test-worker-{os.getpid()}-{time.time_ns()}"
    yield name
    client = redis.Redis()
    keys = list(client.scan_iter(f"{name}:*"))
    if keys:
        client.delete(*keys)


def worker_settings(world: ServingWorld, prefix: str, **streaming: Any) -> Settings:
    fields = {"key_prefix": prefix, "block_ms": 50, "claim_idle_ms": 0, **streaming}
    return world.settings.model_copy(update={"streaming": world.settings.streaming.model_copy(update=fields)})


def click(event_id: str, user_id: str, item_id: str = "i000001", event_type: str = "click") -> str:
    row = {"event_id": event_id, "event_ts": datetime.now(UTC), "event_type": event_type}
    return encode_event(row | {"user_id": user_id, "item_id": item_id})


def online_session(world: ServingWorld, user_ids: list[str], names: list[str]) -> dict[str, list[Any]]:
    from shoprank.feature_store import get_feature_store

    store = get_feature_store(world.settings)
    ref = f"user_session_features:{STORED_COLUMN}"  # the pushed row, stored packed in one string
    stored = store.get_online_features(features=[ref], entity_rows=[{"user_id": u} for u in user_ids]).to_dict()
    rows = [unpack_row(packed) for packed in stored[STORED_COLUMN]]
    return {name: [row.get(name) for row in rows] for name in names}


def test_worker_folds_batches_counts_a_resent_event_once_and_pushes(serving_world: ServingWorld, prefix: str) -> None:
    client, keys = redis.Redis(), StreamKeys(prefix)
    first = click("w-1", "u000011", "i000001")
    events = [first, click("w-2", "u000011", "i000002"), first, click("w-3", "u000012", event_type="add_to_cart")]
    xadd_all(client, keys, events, maxlen=10_000)
    worker = StreamWorker(worker_settings(serving_world, prefix, batch_size=2))
    stats = worker.run(max_idle_batches=2)
    assert (stats.entries, stats.counted, stats.ignored, stats.batches) == (4, 3, 1, 2), stats
    assert client.xpending(keys.stream, "session-worker")["pending"] == 0
    online = online_session(serving_world, ["u000011", "u000012"], ["sess_clicks", "sess_carts", "sess_clicked_items"])
    assert online["sess_clicks"] == [2, 0] and online["sess_carts"] == [0, 1]
    assert set(online["sess_clicked_items"][0].split()) == {"i000001", "i000002"}
    state = json.loads(client.hget(keys.session("u000011"), STATE_FIELD))
    assert state["counts"][1] == 2 and 0 < client.ttl(keys.session("u000011")) <= 7200


def test_a_dead_consumers_pending_entries_are_claimed_on_start(serving_world: ServingWorld, prefix: str) -> None:
    client, keys = redis.Redis(), StreamKeys(prefix)
    client.xgroup_create(keys.stream, "session-worker", id="0", mkstream=True)
    xadd_all(client, keys, [click(f"p-{i}", f"u0000{20 + i % 3}", f"i{i:06d}") for i in range(30)], 10_000)
    # a worker read them and died before acknowledging
    client.xreadgroup("session-worker", "dead-worker", {keys.stream: ">"}, count=30)
    assert client.xpending(keys.stream, "session-worker")["pending"] == 30
    stats = StreamWorker(worker_settings(serving_world, prefix, batch_size=8)).run(max_idle_batches=1)
    assert (stats.claimed, stats.counted, stats.entries) == (30, 30, 30), stats
    assert client.xpending(keys.stream, "session-worker")["pending"] == 0
    assert online_session(serving_world, ["u000020", "u000021", "u000022"], ["sess_clicks"])["sess_clicks"] == [
        10,
        10,
        10,
    ]


def test_a_search_events_query_reaches_the_pushed_session_row(serving_world: ServingWorld, prefix: str) -> None:
    """/events' rows carry the raw contract's query: the stream keeps it, the worker folds it into the session's
    last query (the session_query columns read it), and a later feed event leaves it."""
    client, keys = redis.Redis(), StreamKeys(prefix)
    shown = {"event_id": "s-1", "event_ts": datetime.now(UTC), "event_type": "impression", "user_id": "u000031"}
    searched = encode_event(shown | {"item_id": "i000003", "surface": "search", "query": "Vintage Sneakers"})
    other_user = encode_event(shown | {"event_id": "s-3", "user_id": "u000032", "item_id": "i000003"})
    xadd_all(client, keys, [searched, click("s-2", "u000031", "i000004"), other_user], maxlen=10_000)
    stats = StreamWorker(worker_settings(serving_world, prefix, batch_size=2)).run(max_idle_batches=2)
    assert stats.counted == 3, stats
    online = online_session(serving_world, ["u000031", "u000032"], ["sess_last_query", "sess_impressions"])
    assert online == {"sess_last_query": ["vintage sneakers", ""], "sess_impressions": [1, 1]}


def _start_worker(world: ServingWorld, prefix: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **world.env,
        "SHOPRANK_STREAMING__KEY_PREFIX": prefix,
        "SHOPRANK_STREAMING__BATCH_SIZE": "25",
        "SHOPRANK_STREAMING__BLOCK_MS": "50",
    }
    command = [str(Path(sys.executable).with_name("shoprank")), "stream-worker"]
    return subprocess.Popen(command, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def _wait(check: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_worker_stopped_mid_stream_and_restarted_loses_and_repeats_nothing(
    serving_world: ServingWorld, prefix: str
) -> None:
    client, keys = redis.Redis(), StreamKeys(prefix)
    log = serving_world.settings.home_dir / f"stream-worker-{prefix}.log"
    users = [f"u{i:06d}" for i in range(30, 50)]
    total = 1500

    def counted() -> int:
        return int(client.hget(keys.stats, "counted") or 0)

    worker = _start_worker(serving_world, prefix, log)
    try:
        assert _wait(lambda: client.exists(keys.heartbeat), 60), log.read_text()[-3000:]
        for start in range(0, total, 100):
            xadd_all(
                client,
                keys,
                [click(f"m-{i}", users[i % 20], f"i{i % 200:06d}") for i in range(start, start + 100)],
                100_000,
            )
            if start == 500:  # mid-stream: let it take some, then stop it
                assert _wait(lambda: counted() > 0, 30), log.read_text()[-3000:]
                os.kill(worker.pid, signal.SIGTERM)
                assert worker.wait(30) == 0, log.read_text()[-3000:]
                stopped_at = counted()
        assert stopped_at < total
        worker = _start_worker(serving_world, prefix, log)
        assert _wait(lambda: counted() >= total, 60), f"{counted()} of {total}: {log.read_text()[-3000:]}"
    finally:
        os.kill(worker.pid, signal.SIGTERM)
        worker.wait(30)
    assert counted() == total and int(client.hget(keys.stats, "ignored") or 0) == 0
    assert client.xpending(keys.stream, "session-worker")["pending"] == 0
    states = [json.loads(client.hget(keys.session(user), STATE_FIELD)) for user in users]
    assert sum(state["counts"][1] for state in states) == total
    online = online_session(serving_world, users, ["sess_clicks"])["sess_clicks"]
    assert online == [state["counts"][1] for state in states]


@pytest.fixture
def redis_online(serving_world: ServingWorld, prefix: str) -> Iterator[Settings]:
    """The services profile's online store: Feast on the real Redis (keys end with this test's own Feast project)
    and its registry in a PostgreSQL database of this test's own; the repo applied there."""
    import psycopg
    from psycopg import sql

    from feature_repo.materialize import apply_feature_repo
    from shoprank.databases import ensure_postgres_database
    from shoprank.feature_store import get_feature_store
    from shoprank.settings import apply_runtime_env

    name = prefix.replace("-", "_")
    base = worker_settings(serving_world, prefix)
    settings = base.model_copy(
        update={
            "profile": "services",
            "feast_project": name,
            "services": base.services.model_copy(update={"feast_registry_database": name}),
        }
    )
    ensure_postgres_database(settings, name)
    try:
        apply_feature_repo(settings)
        yield settings
        store = get_feature_store(settings)
        store.teardown()  # the project's Redis keys
    finally:
        apply_runtime_env(serving_world.settings)  # the profile's env back for the other tests
        with psycopg.connect(settings.services.postgres_url("postgres", driver="postgresql"), autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def test_worker_writes_the_redis_online_store_in_one_write_per_batch(
    serving_world: ServingWorld, redis_online: Settings, prefix: str
) -> None:
    from shoprank.feature_store import get_feature_store

    client, keys = redis.Redis(), StreamKeys(prefix)
    users = [f"u{i:06d}" for i in range(60, 90)]
    events = [click(f"r-{i}", users[i % 30], f"i{i % 40:06d}") for i in range(300)]
    xadd_all(client, keys, events, maxlen=10_000)
    worker = StreamWorker(
        redis_online.model_copy(update={"streaming": redis_online.streaming.model_copy(update={"batch_size": 120})})
    )
    stats = worker.run(max_idle_batches=1)
    assert (stats.counted, stats.batches, stats.pushed_users) == (300, 3, 90), stats  # 30 users written per batch
    assert client.xpending(keys.stream, "session-worker")["pending"] == 0
    store = get_feature_store(redis_online)
    assert type(store.config.online_store).__name__ == "RedisOnlineStoreConfig"
    ref = f"user_session_features:{STORED_COLUMN}"
    stored = store.get_online_features(features=[ref], entity_rows=[{"user_id": u} for u in users]).to_dict()
    rows = [unpack_row(packed) for packed in stored[STORED_COLUMN]]
    assert [row["sess_clicks"] for row in rows] == [10] * 30
    assert set(rows[0]["sess_clicked_items"].split()) == {"i000000", "i000010", "i000020", "i000030"}
    # Nothing went to the local profile's SQLite online store.
    assert online_session(serving_world, users[:1], ["sess_clicks"])["sess_clicks"] == [None]
