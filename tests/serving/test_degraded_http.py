"""The online store goes down under a running service: answers stay 200, degraded, ranked from the cache/popularity.

The service runs in its own home whose online store is a copy of the serving world's (everything else is linked),
so breaking it does not disturb the other tests. "Down" = the SQLite file is overwritten with garbage, which is
what a lost or corrupted online store looks like to Feast; then it is removed altogether.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shoprank.settings import Settings

from .conftest import ServingWorld, bentoml_server

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def fragile(serving_world: ServingWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    source = serving_world.settings
    home = tmp_path_factory.mktemp("fragile_home")
    settings = Settings(home=home, simulator=source.simulator, serving=source.serving)
    (home / "warehouse").symlink_to(source.marts_export_dir.parent)
    settings.model_store_dir.symlink_to(source.model_store_dir)
    settings.feast_registry_path.parent.mkdir(parents=True)
    shutil.copy(source.feast_registry_path, settings.feast_registry_path)
    shutil.copy(source.feast_online_path, settings.feast_online_path)
    env = {**serving_world.env, **settings.runtime_env(), "SHOPRANK_SERVING__LOG_REQUESTS": "false"}
    with bentoml_server(env, settings.project_root, home / "bentoml-serve.log") as url:
        yield url, settings.feast_online_path


def test_online_store_down_gives_degraded_answers_never_500(
    fragile: tuple[str, Path], serving_world: ServingWorld
) -> None:
    url, online_store = fragile
    user = serving_world.user_ids[0]
    with httpx.Client(base_url=url, timeout=10) as client:
        healthy = client.post("/rank", json={"user_id": user, "k": 5})
        assert healthy.status_code == 200 and healthy.json()["degraded"] is False

        online_store.write_bytes(b"not a sqlite database" * 100)
        for body in (
            {"user_id": user, "k": 5},
            {"user_id": user, "candidate_ids": serving_world.item_ids[:40], "k": 8},
            {"user_id": "never-seen", "surface": "search", "query": "shoes"},
        ):
            response = client.post("/rank", json=body)
            assert response.status_code == 200, response.text
            data = response.json()
            assert data["degraded"] is True and data["degraded_reasons"] == ["feature-fetch-failed"]
            assert len(data["items"]) == body.get("k", 10)
            assert all(
                "popular-fallback" in (item["reason"], *item["reasons"]) or item["reasons"] for item in data["items"]
            )
        assert client.post("/explain", json={"user_id": user, "k": 3}).status_code == 200
        assert client.get("/readyz").status_code == 503
        assert client.get("/ready-details").json()["feature_store_reachable"] is False
        assert client.get("/livez").status_code == 200
        assert 'shoprank_degraded_responses_total{reason="feature-fetch-failed"}' in client.get("/metrics").text

        online_store.unlink()
        response = client.post("/rank", json={"user_id": user, "k": 5})
        assert response.status_code == 200 and response.json()["degraded"] is True
