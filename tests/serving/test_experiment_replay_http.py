"""`shoprank replay --experiments` through the live service (one BentoML server, an A/B test champion vs a
ranker_v3 model): simulated users ask /rank, their simulated clicks and purchases go to POST /events, and the
experiments analysis reads exactly what the service logged."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

from orchestration.experiment_replay import replay_experiments
from serving.experiments.assignment import arm_for
from serving.experiments.config import load_experiments

from .conftest import ServingWorld, bentoml_server

pytestmark = pytest.mark.timeout(600)  # a session world, two models and a server start, on a busy machine
N_REQUESTS = 120


def test_replay_drives_the_live_service_and_the_analysis_reads_its_logs(
    serving_world: ServingWorld, v3_model_tag: str
) -> None:
    settings = serving_world.settings.model_copy(deep=True)
    path = settings.home_dir / "replay-experiments.yaml"
    arms = [{"name": "control", "share": 0.5}, {"name": "v3", "share": 0.5, "model_tag": v3_model_tag}]
    experiment = {"name": "replay-ab", "layer": "model", "salt": "replay-ab-1", "arms": arms}
    path.write_text(yaml.safe_dump({"version": "replay-1", "experiments": [experiment]}))
    settings.serving.experiments_path = path
    env = {**serving_world.env, "SHOPRANK_SERVING__EXPERIMENTS_PATH": str(path)}
    log = settings.home_dir / "bentoml-serve-replay.log"
    with bentoml_server(env, settings.project_root, log, ready_timeout=180) as url:  # two models to load
        result = replay_experiments(settings, url, n_requests=N_REQUESTS, k=10, seed=3)

    driven = result["driven"]
    assert driven["failed"] == 0 and set(driven["per_arm"]) == {"control", "v3"}
    clicks = sum(t.get("clicks", 0) for t in driven["per_arm"].values())
    assert clicks > 0  # the simulator's truth produced responses to report
    (report,) = json.loads(Path(result["report"]).with_suffix(".json").read_text())["experiments"]
    # The analysis counted what the service logged: requests per arm as the client saw them, every replayed user
    # in the arm the bucketing gives it, every reported click in the events log.
    logged = {row["arm"]: row["requests"] for row in report["guardrails"]}
    assert logged == {arm: t["requests"] for arm, t in driven["per_arm"].items()}
    (declared,) = load_experiments(path).experiments
    users = _logged(settings, "requests")["user_id"]
    assert report["analysis"]["arms"] == dict(Counter(arm_for(declared, u).name for u in set(users)))
    events = _logged(settings, "events")
    assert (events["event_type"] == "click").sum() == clicks
    assert report["analysis"]["srm_ok"] and report["decision"]


def _logged(settings, table: str) -> pd.DataFrame:
    """The replay's rows of one of the service's logs."""
    files = sorted((settings.serving_logs_dir / table).glob("dt=*/*.parquet"))
    log = pd.concat([pd.read_parquet(f) for f in files])
    return log[log["request_id"].fillna("").str.startswith("xp-replay-3-")]
