"""End to end over HTTP: the real `bentoml serve` process, its validation errors, and a latency figure."""

from __future__ import annotations

import httpx
import pytest

from .conftest import ServingWorld

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def client(server_url: str):
    with httpx.Client(base_url=server_url, timeout=10) as c:
        yield c


def test_rank_returns_k_items_sorted_with_model_version(client: httpx.Client, serving_world: ServingWorld) -> None:
    body = {"user_id": serving_world.user_ids[0], "candidate_ids": serving_world.item_ids[:50], "k": 7}
    response = client.post("/rank", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["model_version"] == serving_world.model_tag
    assert data["feature_service"] == "ranker_v1"
    assert data["degraded"] is False
    assert len(data["items"]) == 7
    scores = [item["score"] for item in data["items"]]
    assert scores == sorted(scores, reverse=True)
    assert [item["rank"] for item in data["items"]] == list(range(1, 8))


def test_rank_without_candidates_uses_retrieval_v0(client: httpx.Client, serving_world: ServingWorld) -> None:
    response = client.post("/rank", json={"user_id": "brand-new-user", "surface": "search", "query": "shoes"})
    assert response.status_code == 200, response.text
    data = response.json()
    assert len(data["items"]) == serving_world.settings.serving.default_k
    assert data["degraded"] is False


def test_model_info_and_probes(client: httpx.Client, serving_world: ServingWorld) -> None:
    info = client.get("/model")
    assert info.status_code == 200, info.text
    assert info.json()["model_version"] == serving_world.model_tag
    for probe in ("/livez", "/readyz", "/healthz"):
        assert client.get(probe).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "u000001", "k": 0}, "k"),
        ({"user_id": "u000001", "k": 100_000}, "k"),
        ({"k": 3}, "user_id"),
        ({"user_id": "u000001", "candidate_ids": "i000001"}, "candidate_ids"),
        ({"user_id": "u000001", "candidate_ids": ["i000001", ""]}, "candidate_ids"),
        ({"user_id": "u000001", "surface": "email"}, "surface"),
    ],
)
def test_malformed_requests_get_4xx_naming_the_field(client: httpx.Client, body: dict, field: str) -> None:
    response = client.post("/rank", json=body)
    assert 400 <= response.status_code < 500, response.text
    data = response.json()
    assert any(detail["loc"][0] == field for detail in data["detail"]), data
    assert field in response.text


def test_non_json_body_is_4xx(client: httpx.Client) -> None:
    response = client.post("/rank", content=b"not json", headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text


def test_rank_scores_500_mixed_candidates(client: httpx.Client, serving_world: ServingWorld) -> None:
    """500 candidates, most unknown to the store: all scored (unknown ones as cold start). Latency: `make bench`."""
    candidates = serving_world.item_ids + [f"x{i:06d}" for i in range(500 - len(serving_world.item_ids))]
    body = {"user_id": serving_world.user_ids[2], "candidate_ids": candidates, "k": 20}
    response = client.post("/rank", json=body)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert len(items) == 20 and {item["item_id"] for item in items} <= set(candidates)
