"""The whole daily DAG on a small simulated marketplace, then what it left behind, checked for real."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest

from shoprank.mart_files import read_mart
from shoprank.settings import Settings
from tests.support.processes import background_server, free_port

pytestmark = pytest.mark.e2e


def test_dag_run_succeeded(daily_run: Settings):
    from tests.e2e.conftest import _airflow

    logical_date = daily_run.default_run_date + timedelta(days=1)
    state = _airflow(daily_run, "dags", "state", "shoprank_daily", logical_date.isoformat(), timeout=120)
    assert state.stdout.strip().splitlines()[-1] == "success", state.stdout + state.stderr


def test_marts_have_rows_for_the_run(daily_run: Settings):
    marts = daily_run.marts_export_dir
    examples = read_mart(marts, "training_examples")
    users = read_mart(marts, "user_features")
    items = pd.read_parquet(marts / "item_features.parquet")
    assert len(examples) > 1000 and len(users) > 0 and len(items) > 0
    assert pd.to_datetime(examples["dt"]).dt.date.max() == daily_run.default_run_date
    # The newest snapshot (the one serving reads) is stamped the day after the run's day.
    assert users["feature_ts"].max().date() == daily_run.default_run_date + timedelta(days=1)


def test_mart_validation_result_is_recorded(daily_run: Settings):
    results = list(daily_run.quality_dir.rglob(f"*{daily_run.default_run_date}*.json"))
    assert results, f"no validation result under {daily_run.quality_dir}"
    assert any(json.loads(p.read_text()).get("success") is True for p in results)


def test_online_store_serves_features_of_a_known_user(daily_run: Settings):
    from shoprank.feature_store import get_feature_store

    examples = read_mart(daily_run.marts_export_dir, "training_examples")
    busiest_user = examples["user_id"].value_counts().index[0]
    store = get_feature_store(daily_run)
    online = store.get_online_features(
        features=["user_features:user_impressions_30d", "user_features:user_is_cold_start"],
        entity_rows=[{"user_id": busiest_user}],
    ).to_dict()
    # Materialized up to the end of the run's day: the busiest user has history and is not cold.
    assert online["user_impressions_30d"][0] > 0
    assert online["user_is_cold_start"][0] == 0


def test_registered_model_beats_popularity_on_the_holdout(daily_run: Settings):
    import bentoml

    models = bentoml.models.list(daily_run.training.model_name)
    assert len(models) == 1
    card = models[0].info.metadata
    metrics = card["metrics"]
    k = daily_run.training.ndcg_k
    assert card["feature_service"] == daily_run.training.feature_service
    assert card["holdout_window"] == [str(daily_run.default_run_date)] * 2
    assert metrics[f"model_ndcg@{k}"] > metrics[f"popularity_ndcg@{k}"] > 0
    assert metrics[f"model_ndcg@{k}"] > metrics[f"random_ndcg@{k}"]


@pytest.fixture(scope="module")
def served(daily_run: Settings) -> Iterator[str]:
    """`shoprank serve` on a free loopback port, over the model and online store the DAG produced."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with background_server(
        [str(Path(sys.executable).with_name("shoprank")), "serve", "--port", str(port)],
        ready_url=f"{base}/readyz",
        log_path=daily_run.home_dir / "logs" / "e2e-serve.log",
        env={**os.environ, **daily_run.runtime_env()},
    ):
        yield base


def test_service_ranks_a_known_user_with_the_registered_model(daily_run: Settings, served: str):
    import bentoml

    tag = str(bentoml.models.get(f"{daily_run.training.model_name}:latest").tag)
    examples = read_mart(daily_run.marts_export_dir, "training_examples")
    user = examples["user_id"].value_counts().index[0]
    response = httpx.post(f"{served}/rank", json={"user_id": user, "k": 7}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == tag
    assert body["degraded"] is False, body["degraded_reasons"]
    scores = [item["score"] for item in body["items"]]
    assert len(scores) == 7 and scores == sorted(scores, reverse=True)
    assert len({item["item_id"] for item in body["items"]}) == 7


def test_service_rejects_a_malformed_request_naming_the_field(served: str):
    response = httpx.post(f"{served}/rank", json={"user_id": "u000001", "k": "ten"}, timeout=30)
    assert 400 <= response.status_code < 500
    assert "k" in json.dumps(response.json())
