"""A running ranking service serves only published marts: a day whose build fails its gates changes nothing it
serves; the next good day, once published, reaches it through its watcher.

Runs in a copy of the home the daily run left behind (raw data and simulator state, warehouse with its published
snapshot, feature store, model store and champion), so the daily run's own checks are not disturbed. The steps run
as `shoprank <step> --run-date D`, as an operator or a DAG task runs them, against a real `bentoml serve` that
checks the marts pointer every half second.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shoprank.ranking_features import ITEM_FEATURES
from shoprank.raw_contract import SCHEMAS, partition_path
from shoprank.settings import Settings
from tests.serving.conftest import bentoml_server

pytestmark = pytest.mark.e2e

SHOPRANK = str(Path(sys.executable).with_name("shoprank"))
# How long the test waits for the watcher (polling every 0.5 s) to load a published snapshot; a generous bound,
# not a latency assertion.
PICKUP_DEADLINE_S = 90


def _step(env: dict[str, str], step: str, day: object, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [SHOPRANK, step, "--run-date", str(day)], env=env, capture_output=True, text=True, timeout=900, check=False
    )
    if check:
        assert done.returncode == 0, f"shoprank {step} failed:\n{(done.stdout + done.stderr)[-4000:]}"
    return done


@pytest.fixture(scope="module")
def served_copy(daily_run: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, dict, str]]:
    home = tmp_path_factory.mktemp("publish-home")
    for part in ("raw", "truth", "warehouse", "feast", "bentoml", "models"):
        if (daily_run.home_dir / part).exists():
            shutil.copytree(daily_run.home_dir / part, home / part, symlinks=True)  # the marts pointer is relative
    settings = Settings(home=home)
    env = {
        **os.environ,
        **settings.runtime_env(),
        "SHOPRANK_SERVING__CACHE_REFRESH_SECONDS": "0.5",
        "SHOPRANK_SERVING__LOG_REQUESTS": "false",
    }
    _step(env, "feast-apply", daily_run.default_run_date)  # the copied registry named the daily home's marts
    with bentoml_server(env, settings.project_root, home / "bentoml-serve.log") as url:
        yield settings, env, url


def _explain(client: httpx.Client, user_id: str, item_ids: list[str]) -> tuple[str, dict[str, dict]]:
    body = {"user_id": user_id, "candidate_ids": item_ids, "k": len(item_ids), "apply_rules": False}
    response = client.post("/explain", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    features = {
        item["item_id"]: {name: item["features"].get(name) for name in ITEM_FEATURES if name in item["features"]}
        for item in data["items"]
    }
    return data["model_version"], features


def _newest_snapshot(marts: Path, item_ids: list[str]) -> dict[str, dict]:
    rows = pd.read_parquet(marts / "item_features.parquet")
    rows = rows[(rows["feature_ts"] == rows["feature_ts"].max()) & rows["item_id"].isin(item_ids)]
    return {row["item_id"]: row for _, row in rows.iterrows()}


def _inflate_events(settings: Settings, day: object, share: float = 0.9) -> None:
    """Re-emit ``share`` of the day's events under new event ids (a producer replaying a batch)."""
    path = partition_path(settings.raw_dir, "events", day)  # type: ignore[arg-type]
    events = pd.read_parquet(path)
    copies = events.sample(frac=share, random_state=0).assign(event_id=lambda f: f["event_id"].astype(str) + "-r")
    inflated = pd.concat([events, copies], ignore_index=True)
    pq.write_table(pa.Table.from_pandas(inflated, schema=SCHEMAS["events"], preserve_index=False), path)


def test_failed_gates_keep_serving_the_published_snapshot_and_a_good_day_is_picked_up(served_copy) -> None:
    settings, env, url = served_copy
    day = settings.default_run_date + timedelta(days=1)
    items = pd.read_parquet(settings.marts_export_dir / "item_features.parquet", columns=["item_id", "feature_ts"])
    item_ids = sorted(items.loc[items["feature_ts"] == items["feature_ts"].max(), "item_id"].unique())[:8]
    with httpx.Client(base_url=url, timeout=30) as client:
        model, before = _explain(client, "u000001", item_ids)
        pointer = os.readlink(settings.marts_export_dir)
        assert set(before) == set(item_ids) and all(f.get("item_impressions_7d") is not None for f in before.values())

        # A new day whose raw events are inflated ~1.9x: dbt exports the marts, then its tests fail.
        _step(env, "simulate", day)
        _inflate_events(settings, day)
        failed = _step(env, "build-warehouse", day, check=False)
        assert failed.returncode != 0 and "unique_combination_of_columns" in failed.stdout + failed.stderr
        assert _step(env, "publish", day, check=False).returncode != 0  # the gates never passed on this build
        time.sleep(3)  # several watcher rounds: it must find nothing new to load
        assert os.readlink(settings.marts_export_dir) == pointer
        assert _explain(client, "u000001", item_ids) == (model, before)
        assert client.get("/model").json()["model_version"] == model

        # The same day, clean (the simulator rewrites it), through the gates and published.
        for step in ("simulate", "build-warehouse", "validate-marts", "check-drift", "publish"):
            _step(env, step, day)
        assert os.readlink(settings.marts_export_dir) != pointer
        expected = _newest_snapshot(settings.marts_export_dir, item_ids)
        deadline = time.monotonic() + PICKUP_DEADLINE_S
        while (served := _explain(client, "u000001", item_ids)) == (model, before) and time.monotonic() < deadline:
            time.sleep(0.5)
    served_model, after = served
    assert served_model == model  # no training ran: the champion is the same
    assert after != before
    for item_id, features in after.items():  # the item features served are the new snapshot's
        published = {name: float(expected[item_id][name]) for name in features if features[name] is not None}
        assert features == pytest.approx(published | {n: None for n in features if features[n] is None}), item_id
