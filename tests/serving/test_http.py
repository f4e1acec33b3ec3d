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
    body["apply_rules"] = False  # the model's order only (the rules may move items against the score)
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


def test_rank_without_candidates_retrieves_its_own(client: httpx.Client, serving_world: ServingWorld) -> None:
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
        ({"user_id": "u000001", "surface": "search"}, "query"),
        ({"user_id": "u000001", "k": "ten"}, "k"),
        ({"user_id": "u000001", "candidate_ids": [f"i{i}" for i in range(2001)]}, "candidate_ids"),
        ({"user_id": "u000001", "apply_rules": "sometimes"}, "apply_rules"),
        ({"user_id": "u000001", "context": {"category_id": [1, 2]}}, "context"),
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


def test_explain_gives_features_contributions_and_rules(client: httpx.Client, serving_world: ServingWorld) -> None:
    body = {"user_id": serving_world.user_ids[4], "candidate_ids": serving_world.item_ids[:120], "k": 10}
    response = client.post("/explain", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    ranked = client.post("/rank", json=body).json()
    assert [i["item_id"] for i in data["items"]] == [i["item_id"] for i in ranked["items"]]
    assert data["rules_version"] == ranked["rules_version"] is not None
    for item in data["items"]:
        assert set(item["features"]) == set(item["contributions"]) - {"bias"}
        assert item["features"]["item_ctr_7d"] is not None
        # pred_contribs add up to the model's raw score
        assert sum(item["contributions"].values()) == pytest.approx(item["model_score"], abs=1e-3)
        assert item["reasons"] == [] or item["reason"] == item["reasons"][-1]
    stocks = {i["item_id"]: i["features"]["item_stock_units"] for i in data["items"]}
    assert all(stock != 0 for stock in stocks.values())
    assert all(reasons == ["out-of-stock-removed"] for reasons in data["removed"].values())
    assert data["removed"], "the synthetic catalogue has out-of-stock items among the first 120"


def test_unknown_surface_context_and_cold_start_user(client: httpx.Client, serving_world: ServingWorld) -> None:
    body = {"user_id": "brand-new-user", "context": {"category_id": 2, "device": "ios"}, "k": 10}
    response = client.post("/explain", json=body)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert all("cold-start-popular" in item["reasons"] for item in items)
    assert all(item["features"]["user_is_cold_start"] == 1 for item in items)


def test_readiness_details_and_metrics(client: httpx.Client) -> None:
    details = client.get("/ready-details").json()
    assert details == details | {"ready": True, "model_loaded": True, "feature_store_reachable": True}
    assert details["item_cache_size"] > 0
    client.post("/rank", json={"user_id": "u000003", "k": 20})
    metrics = client.get("/metrics").text
    assert "shoprank_rule_actions" in metrics
    assert "bentoml_service_request_total" in metrics or "bentoml_api_server_request_total" in metrics


def test_requests_are_logged_in_the_raw_events_contract(client: httpx.Client, serving_world: ServingWorld) -> None:
    import time

    import pandas as pd

    from shoprank.raw_contract import SCHEMAS

    request_id = "logged-request-1"
    response = client.post("/rank", json={"user_id": "u000005", "k": 5, "request_id": request_id})
    assert response.status_code == 200
    events_dir = serving_world.settings.serving_logs_dir / "events"
    deadline = time.monotonic() + 20
    rows = pd.DataFrame()
    while time.monotonic() < deadline:  # flushed every 0.5 s in the test world
        files = sorted(events_dir.glob("dt=*/part-*.parquet"))
        if files:
            rows = pd.concat([pd.read_parquet(f) for f in files])
            if (rows["request_id"] == request_id).any():
                break
        time.sleep(0.25)
    mine = rows[rows["request_id"] == request_id].sort_values("position")
    assert list(rows.columns) == SCHEMAS["events"].names
    assert list(mine["item_id"]) == [item["item_id"] for item in response.json()["items"]]
    assert set(mine["event_type"]) == {"impression"} and list(mine["position"]) == [1, 2, 3, 4, 5]


def test_admin_reload_needs_the_token(client: httpx.Client) -> None:
    assert client.post("/admin/reload").status_code == 401
    assert client.post("/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.post("/admin/reload", headers={"X-Admin-Token": "wrong"}).status_code == 403


def test_admin_reload_swaps_and_a_corrupt_model_keeps_the_previous(
    client: httpx.Client, serving_world: ServingWorld
) -> None:
    from pathlib import Path

    from .conftest import ADMIN_TOKEN

    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ok = client.post("/admin/reload", headers=auth)
    assert ok.status_code == 200, ok.text
    assert ok.json() | {"reloaded": True, "model_version": serving_world.model_tag} == ok.json()

    model_dir = serving_world.settings.model_store_dir / "models" / Path(*serving_world.model_tag.split(":"))
    saved = {path: path.read_bytes() for path in model_dir.iterdir() if path.name != "model.yaml" and path.is_file()}
    assert saved, model_dir
    try:
        for path in saved:
            path.write_bytes(b"this is not an xgboost model")
        failed = client.post("/admin/reload", headers=auth)
        assert failed.status_code == 200, failed.text
        body = failed.json()
        assert body["reloaded"] is False and "model" in body["error"]
        assert body["model_version"] == serving_world.model_tag
        still = client.post("/rank", json={"user_id": serving_world.user_ids[0], "k": 3})
        assert still.status_code == 200 and still.json()["degraded"] is False
    finally:
        for path, content in saved.items():
            path.write_bytes(content)
    assert client.post("/admin/reload", headers=auth).json()["reloaded"] is True


def test_replay_compares_the_three_policies(server_url: str, serving_world: ServingWorld) -> None:
    from serving.replay import POLICIES, format_table, gini, replay

    table = replay(serving_world.settings, server_url, n_requests=12, k=10, seed=3)
    assert list(table.index) == list(POLICIES)
    assert (table["requests"] == 12).all() and (table["failed"] == 0).all()
    assert table.loc["model+rules", "out_of_stock_impressions"] == 0  # the rules remove out-of-stock items
    for column in ("ctr", "new_item_share", "new_seller_share", "seller_gini"):
        assert table[column].between(0, 1).all(), column
    assert table.loc["popularity", "seller_gini"] > 0
    assert "gmv_per_request" in format_table(table)
    assert gini([1, 1, 1, 1]) == 0 and gini([0, 0, 0, 10]) == pytest.approx(0.75)


def test_rules_over_http_cap_sellers_mix_types_and_keep_stock(
    client: httpx.Client, serving_world: ServingWorld
) -> None:
    """The same request with and without rules: the rules' promises hold on the wire, and only with rules on."""
    import yaml

    rules = yaml.safe_load((serving_world.settings.project_root / "serving" / "rules.yaml").read_text())
    body = {"user_id": serving_world.user_ids[1], "candidate_ids": serving_world.item_ids, "k": 20}
    with_rules = client.post("/explain", json=body).json()
    without = client.post("/explain", json={**body, "apply_rules": False}).json()

    import pandas as pd

    catalogue = pd.read_parquet(serving_world.settings.marts_export_dir / "item_features.parquet")
    seller_of = dict(zip(catalogue["item_id"], catalogue["item_seller_id"], strict=False))

    def sellers(items: list[dict]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in items:
            counts[seller_of[item["item_id"]]] = counts.get(seller_of[item["item_id"]], 0) + 1
        return counts

    cap = rules["supply_demand"]["max_per_seller"]
    assert max(sellers(with_rules["items"]).values()) <= cap < max(sellers(without["items"]).values())
    assert all(item["features"]["item_stock_units"] != 0 for item in with_rules["items"])
    types = [item["features"]["item_type_code"] for item in with_rules["items"]]
    assert types.count(1) >= int(rules["mixing"]["min_share"]["video"] * 20)
    # Without rules nothing is moved or removed: the model's order, reasons all "model".
    assert not without["removed"]
    assert all(item["reasons"] == [] for item in without["items"])
    scores = [item["score"] for item in without["items"]]
    assert scores == sorted(scores, reverse=True)
