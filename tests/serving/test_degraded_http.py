"""The online store goes down under a running service: answers stay 200, degraded, ranked from the cache/popularity;
when the store is back, the next request is served normally again.

The service runs in its own home whose online store is a copy of the serving world's (everything else is linked),
so breaking it does not disturb the other tests. "Down" = the SQLite file is overwritten with garbage, which is
what a lost or corrupted online store looks like to Feast; then it is removed altogether; then truncated.
The same server's log is bounded small here, to see it rotate.
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

LOG_MAX_BYTES, LOG_BACKUPS = 20_000, 2


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
    env = {
        **serving_world.env,
        **settings.runtime_env(),
        "SHOPRANK_SERVING__LOG_REQUESTS": "false",
        "SHOPRANK_SERVING__SERVICE_LOG_MAX_BYTES": str(LOG_MAX_BYTES),
        "SHOPRANK_SERVING__SERVICE_LOG_BACKUPS": str(LOG_BACKUPS),
    }
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


def test_online_store_truncated_then_restored_recovers_within_one_request(
    fragile: tuple[str, Path], serving_world: ServingWorld
) -> None:
    """A failed read reopens the store: no /admin/reload needed once the file is back (the old SQLite connection
    would keep answering "no such table")."""
    url, online_store = fragile
    intact = serving_world.settings.feast_online_path
    body = {"user_id": serving_world.user_ids[0], "k": 5}
    with httpx.Client(base_url=url, timeout=10) as client:
        shutil.copy(intact, online_store)  # back (the test above removed it)
        assert client.post("/rank", json=body).json()["degraded_reasons"] == []
        assert client.get("/readyz").status_code == 200

        with online_store.open("r+b") as handle:
            handle.truncate(0)
        assert client.post("/rank", json=body).json()["degraded_reasons"] == ["feature-fetch-failed"]
        assert client.get("/readyz").status_code == 503

        shutil.copy(intact, online_store)
        recovered = client.post("/rank", json=body).json()
        assert recovered["degraded"] is False and recovered["degraded_reasons"] == [], recovered
        assert client.get("/readyz").status_code == 200


def test_a_bad_request_is_one_warning_line_and_the_log_rotates(fragile: tuple[str, Path]) -> None:
    url, online_store = fragile
    home = online_store.parent.parent
    log_file = home / "logs" / "serve.log"
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(100):
            response = client.post("/rank", json={"user_id": f"bad-{i}", "k": 0})
            assert response.status_code == 400
    files = [log_file, *(log_file.with_name(f"serve.log.{n}") for n in range(1, LOG_BACKUPS + 1))]
    assert all(path.exists() for path in files), sorted(p.name for p in log_file.parent.iterdir())
    assert not log_file.with_name(f"serve.log.{LOG_BACKUPS + 1}").exists()
    assert sum(path.stat().st_size for path in files) <= (LOG_BACKUPS + 1) * LOG_MAX_BYTES
    lines = [line for path in files for line in path.read_text().splitlines()]
    rejected = [line for line in lines if "rejected POST /rank" in line]
    assert rejected and all("[WARNING]" in line and "k: Input should be greater than" in line for line in rejected)
    assert not any("Traceback" in line or "[ERROR]" in line for line in lines)
    # the console (what `make serve` shows, or a redirect of it) keeps errors only
    assert "rejected POST" not in (home / "bentoml-serve.log").read_text()
