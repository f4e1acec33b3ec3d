"""A model trained with ``objective=gmv`` serves the score the gate judged: expected GMV (pCTR x pCVR x price) from
its CTR and CVR models, not the LambdaMART ranker's score. The served order over HTTP equals the bundle's order."""

from __future__ import annotations

from collections.abc import Iterator

import bentoml
import httpx
import numpy as np
import pandas as pd
import pytest

from serving.ranking import build_feature_frame
from shoprank.model_bundle import load_bundle
from shoprank.ranking_features import feature_columns_for, model_matrix

from .conftest import ServingWorld, offline_item_features, offline_user_features, pinned_model_client, save_model_beside

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def gmv_model_tag(serving_world: ServingWorld) -> str:
    """A ranker_v3 ranker with CTR and CVR classifiers whose expected GMV ranks differently from the ranker: the
    ranker follows item CTR, the classifiers follow price (so GMV favours expensive items)."""
    from xgboost import XGBClassifier, XGBRanker

    settings = serving_world.settings
    n_categories = settings.simulator.categories
    columns = feature_columns_for("ranker_v3", n_categories)
    rng = np.random.default_rng(11)
    items = offline_item_features(settings.marts_export_dir, serving_world.item_ids)
    frames = []
    for request in range(40):
        user_id = str(rng.choice(serving_world.user_ids[:20]))
        ids = [str(i) for i in rng.choice(serving_world.item_ids, 12, replace=False)]
        user = offline_user_features(settings.marts_export_dir, user_id, n_categories)
        frame = build_feature_frame(user, items.loc[ids], ids, n_categories, {"query_title_match": [np.nan] * 12})
        frames.append(frame.assign(request_id=request))
    frame = pd.concat(frames, ignore_index=True)
    matrix = model_matrix(frame, columns)
    ranker_label = (frame["item_ctr_7d"].rank(pct=True) > 0.7).astype(int)
    price_label = (frame["item_price"].rank(pct=True) > 0.5).astype(int)
    kwargs = {"n_estimators": 15, "max_depth": 3, "tree_method": "hist", "n_jobs": 1}
    ranker = XGBRanker(objective="rank:ndcg", **kwargs).fit(matrix, ranker_label, qid=frame["request_id"])
    ctr = XGBClassifier(**kwargs).fit(matrix, price_label)
    cvr = XGBClassifier(**kwargs).fit(matrix, price_label)
    custom_objects = {"ctr_model": ctr, "cvr_model": cvr}
    return save_model_beside(
        serving_world, "gmv", ranker, "ranker_v3", columns, objective="gmv", custom_objects=custom_objects
    )


@pytest.fixture(scope="module")
def gmv_client(serving_world: ServingWorld, gmv_model_tag: str) -> Iterator[httpx.Client]:
    with pinned_model_client(serving_world, gmv_model_tag, "serve-gmv", SHOPRANK_SERVING__LOG_REQUESTS="false") as c:
        yield c


def test_served_order_is_the_bundles_gmv_order(
    gmv_client: httpx.Client, serving_world: ServingWorld, gmv_model_tag: str
) -> None:
    settings = serving_world.settings
    n_categories = settings.simulator.categories
    user_id = serving_world.user_ids[0]
    candidates = list(serving_world.item_ids[:15])
    body = {"user_id": user_id, "candidate_ids": candidates, "k": len(candidates), "apply_rules": False}
    response = gmv_client.post("/rank", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["model_version"] == gmv_model_tag and data["degraded"] is False
    served = [item["item_id"] for item in data["items"]]

    bundle = load_bundle(bentoml.models.get(gmv_model_tag))
    user = offline_user_features(settings.marts_export_dir, user_id, n_categories)
    items = offline_item_features(settings.marts_export_dir, candidates)
    frame = build_feature_frame(user, items, candidates, n_categories, {"query_title_match": [np.nan] * 15})
    gmv = bundle.score(frame)
    expected = [candidates[i] for i in np.argsort(-gmv, kind="stable")]
    assert served == expected
    assert [item["score"] for item in data["items"]] == pytest.approx(sorted(gmv, reverse=True), rel=1e-5)
    # the ranker alone orders them otherwise: serving the ranker would not be serving what the gate judged
    ranker_order = [candidates[i] for i in np.argsort(-bundle.ranker_scores(frame), kind="stable")]
    assert ranker_order != served


def test_explain_reports_the_served_gmv_score(gmv_client: httpx.Client, serving_world: ServingWorld) -> None:
    candidates = list(serving_world.item_ids[:6])
    body = {"user_id": serving_world.user_ids[0], "candidate_ids": candidates, "k": 6, "apply_rules": False}
    data = gmv_client.post("/explain", json=body).json()
    for item in data["items"]:
        assert item["model_score"] == pytest.approx(item["score"], rel=1e-6)
        assert item["contributions"] and "bias" in item["contributions"]
