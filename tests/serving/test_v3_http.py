"""A ranker_v3 model served over HTTP: item-side features from the item cache (item_features and
item_window_features marts), user-side ones from one online read (user views and user x category view), the query
match from the request and the catalogue; the scores equal the model's offline predictions on the same features."""

from __future__ import annotations

from collections.abc import Iterator

import bentoml
import httpx
import numpy as np
import pandas as pd
import pytest

from serving.ranking import build_feature_frame
from shoprank.ranking_features import feature_columns_for, model_matrix, query_title_match, title_words

from .conftest import STALE_PAIR, ServingWorld, offline_item_features, offline_user_features, pinned_model_client

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def v3_client(serving_world: ServingWorld, v3_model_tag: str) -> Iterator[httpx.Client]:
    with pinned_model_client(serving_world, v3_model_tag, "serve-v3", SHOPRANK_SERVING__LOG_REQUESTS="false") as client:
        yield client


def _offline_scores(world: ServingWorld, tag: str, user_id: str, candidates: list[str], query: str | None) -> dict:
    """The model's predictions on features built from the marts (newest snapshot) with the training functions."""
    settings = world.settings
    n_categories = settings.simulator.categories
    marts = settings.marts_export_dir
    catalogue = pd.read_parquet(settings.raw_dir / "items").set_index("item_id")["title"]
    match = query_title_match(query, [title_words(catalogue.get(i)) for i in candidates])
    user = offline_user_features(marts, user_id, n_categories)
    items = offline_item_features(marts, candidates)
    frame = build_feature_frame(user, items, candidates, n_categories, {"query_title_match": match})
    model = bentoml.xgboost.load_model(bentoml.models.get(tag))
    predictions = model.predict(model_matrix(frame, feature_columns_for("ranker_v3", n_categories)))
    return dict(zip(candidates, predictions.tolist(), strict=True))


def test_v3_model_card_and_columns_over_http(
    v3_client: httpx.Client, serving_world: ServingWorld, v3_model_tag: str
) -> None:
    info = v3_client.get("/model").json()
    assert info["model_version"] == v3_model_tag and info["feature_service"] == "ranker_v3"
    assert info["feature_columns"] == feature_columns_for("ranker_v3", serving_world.settings.simulator.categories)
    assert v3_client.get("/readyz").status_code == 200


@pytest.mark.parametrize("surface", ["feed", "search"])
def test_v3_scores_equal_offline_predictions(
    v3_client: httpx.Client, serving_world: ServingWorld, v3_model_tag: str, surface: str
) -> None:
    user_id = STALE_PAIR[0]
    candidates = [*serving_world.item_ids[:14], "never-seen-item"]
    body = {"user_id": user_id, "candidate_ids": candidates, "k": len(candidates), "apply_rules": False}
    query = "pro kite" if surface == "search" else None
    response = v3_client.post("/rank", json={**body, "surface": surface, "query": query})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["feature_service"] == "ranker_v3" and data["degraded"] is False
    served = {item["item_id"]: item["score"] for item in data["items"]}
    known = candidates[:-1]  # the unknown item is dropped, not scored
    assert served == pytest.approx(_offline_scores(serving_world, v3_model_tag, user_id, known, query), rel=1e-5)


def test_v3_explain_shows_the_joined_features(v3_client: httpx.Client, serving_world: ServingWorld) -> None:
    """The item's category picks the user x category values; the stale pair reads as absent (0 clicks), not as the
    older snapshot's 99 that the online store still holds; the query match follows the title."""
    marts = serving_world.settings.marts_export_dir
    items = pd.read_parquet(marts / "item_features.parquet")
    items = items[items["feature_ts"] == items["feature_ts"].max()]
    user_id, stale_category = STALE_PAIR
    candidates = items.groupby("item_category_id")["item_id"].first().tolist()
    body = {"user_id": user_id, "candidate_ids": candidates, "k": len(candidates), "apply_rules": False}
    data = v3_client.post("/explain", json={**body, "surface": "search", "query": "pro kite"}).json()
    user = offline_user_features(marts, user_id, serving_world.settings.simulator.categories)
    category_of = dict(zip(items["item_id"], items["item_category_id"], strict=True))
    catalogue = pd.read_parquet(serving_world.settings.raw_dir / "items").set_index("item_id")["title"]
    for item in data["items"]:
        features, category = item["features"], category_of[item["item_id"]]
        expected = user["uc_clicks_30d"][category]
        assert features["uc_clicks_30d"] == (0.0 if expected is None else expected), category
        assert features["user_clicks_1d"] == user["user_clicks_1d"]
        match = query_title_match("pro kite", [title_words(catalogue[item["item_id"]])])[0]
        assert features["query_title_match"] == pytest.approx(match)
    stale = next(i for i in data["items"] if category_of[i["item_id"]] == stale_category)
    assert stale["features"]["uc_clicks_30d"] == 0.0
    assert np.isfinite([i["model_score"] for i in data["items"]]).all()
