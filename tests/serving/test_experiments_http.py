"""/rank over HTTP with experiments running (one server): an A/B test on the model (champion vs a ranker_v3
model) and, in another layer, a team-draft interleaving of the two; a file naming an unknown model is refused."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

from serving.experiments.assignment import arm_for
from serving.experiments.config import load_experiments

from .conftest import ServingWorld, bentoml_server

pytestmark = pytest.mark.timeout(180)


def _file(path: Path, v3_tag: str, ab_arm: dict) -> Path:
    experiments = [
        {
            "name": "ranker-ab",
            "layer": "model",
            "salt": "ab-1",
            "arms": [{"name": "control", "share": 0.5}, ab_arm],
        },
        {
            "name": "ranker-tdi",
            "layer": "slate",
            "salt": "tdi-1",
            "arms": [{"name": "off", "share": 0.5}, {"name": "tdi", "share": 0.5, "interleave": ["champion", v3_tag]}],
        },
    ]
    path.write_text(yaml.safe_dump({"version": "test-1", "experiments": experiments}))
    return path


@pytest.fixture(scope="module")
def experiments_file(serving_world: ServingWorld, v3_model_tag: str) -> Path:
    path = serving_world.settings.home_dir / "experiments.yaml"
    return _file(path, v3_model_tag, {"name": "v3", "share": 0.5, "model_tag": v3_model_tag})


@pytest.fixture(scope="module")
def client(serving_world: ServingWorld, experiments_file: Path) -> Iterator[httpx.Client]:
    settings = serving_world.settings
    env = {**serving_world.env, "SHOPRANK_SERVING__EXPERIMENTS_PATH": str(experiments_file)}
    log_path = settings.home_dir / "bentoml-serve-experiments.log"
    with bentoml_server(env, settings.project_root, log_path) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def test_rank_serves_each_user_the_arms_of_its_buckets(
    client: httpx.Client, serving_world: ServingWorld, experiments_file: Path, v3_model_tag: str
) -> None:
    config = load_experiments(experiments_file)
    ab, tdi = config.experiments
    seen = set()
    for user_id in serving_world.user_ids[:30]:
        body = client.post("/rank", json={"user_id": user_id, "k": 8, "request_id": f"exp-{user_id}"}).json()
        ab_arm, tdi_arm = arm_for(ab, user_id).name, arm_for(tdi, user_id).name
        assert (body["experiment"], body["arm"]) == ("ranker-ab", ab_arm)
        assert body["assignments"] == {"ranker-ab": ab_arm, "ranker-tdi": tdi_arm}
        assert not body["degraded"], body["degraded_reasons"]
        if tdi_arm == "tdi":
            assert body["interleaved"] == [serving_world.model_tag, v3_model_tag]
            teams = [item["ranker"] for item in body["items"]]
            assert set(teams) == {"A", "B"} and abs(teams.count("A") - teams.count("B")) <= 1
            # arm A's own ranking (/explain explains it) holds A's items in the same order
            explained = client.post("/explain", json={"user_id": user_id, "k": 8, "request_id": f"exp-{user_id}"})
            a_list = [item["item_id"] for item in explained.json()["items"]]
            mine = [item["item_id"] for item in body["items"] if item["ranker"] == "A"]
            assert mine == [i for i in a_list if i in mine]
        else:
            expected = serving_world.model_tag if ab_arm == "control" else v3_model_tag
            assert body["model_version"] == expected and body["interleaved"] is None
            assert {item["ranker"] for item in body["items"]} == {None}
        seen.add((ab_arm, tdi_arm))
    assert len(seen) == 4  # 30 users reach every combination of the two layers
    info = client.get("/model").json()
    assert info["experiments"] == ["ranker-ab", "ranker-tdi"] and info["experiments_error"] is None


def test_the_requests_log_carries_experiment_arm_and_teams(client: httpx.Client, serving_world: ServingWorld) -> None:
    body = client.post("/rank", json={"user_id": "u000007", "k": 6, "request_id": "exp-logged-7"}).json()
    folder = serving_world.settings.serving_logs_dir / "requests"
    deadline, row = time.monotonic() + 20, None
    while row is None and time.monotonic() < deadline:  # flushed every 0.5 s in the test world
        for path in folder.glob("dt=*/part-*.parquet"):
            rows = pd.read_parquet(path)
            if "experiment" in rows and (rows["request_id"] == "exp-logged-7").any():
                row = rows[rows["request_id"] == "exp-logged-7"].iloc[0]
        time.sleep(0.25)
    assert row is not None, "request not logged"
    assert (row["experiment"], row["arm"]) == (body["experiment"], body["arm"])
    assert json.loads(row["assignments"]) == body["assignments"]
    if body["interleaved"]:
        assert json.loads(row["interleave_teams"]) == {i["item_id"]: i["ranker"] for i in body["items"]}
    else:
        assert row["interleave_teams"] is None


def test_an_unknown_model_tag_refuses_the_file_naming_the_field(serving_world: ServingWorld, tmp_path: Path) -> None:
    from serving.state import load_state

    settings = serving_world.settings
    path = _file(tmp_path / "bad.yaml", "shoprank_ranker_v3:nosuchversion", {"name": "v3", "share": 0.5})
    bad = settings.model_copy(update={"serving": settings.serving.model_copy(update={"experiments_path": path})})
    state = load_state(bad)
    assert state.champion is not None and state.experiments is None and not state.arm_models
    assert state.experiments_error is not None
    assert "experiments.1.arms.1.interleave.1: unknown model tag 'shoprank_ranker_v3:nosuchversion'" in (
        state.experiments_error
    )
