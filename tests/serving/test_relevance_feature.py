"""The served search ranker with the human-judged relevance feature (ranker_v3_relevance), in process.

A relevance model version saved as the labelling flow saves it scores each search candidate from the request's query
and the item's title, category and price; the feature reaches the model (explain shows it) and the answer is not
degraded. A feed request has no query: NaN, as in training. Without any version the search is still ranked by the
model, with the feature missing and ``relevance-model-missing`` in degraded_reasons.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from datetime import date

import numpy as np
import pandas as pd
import pytest

from serving.relevance import RELEVANCE_MODEL_MISSING
from serving.schemas import RankRequest
from serving.service import RankingService
from shoprank import query_relevance
from shoprank.ranking_features import feature_columns_for, model_matrix, query_title_match, title_words
from shoprank.settings import get_settings

from .conftest import ServingWorld, offline_item_features, offline_user_features, save_model_beside

SERVICE = "ranker_v3_relevance"
QUERY = "pro kite"


def _catalogue(world: ServingWorld) -> pd.Series:
    return pd.read_parquet(world.settings.raw_dir / "items").set_index("item_id")["title"]


def _relevance_model(world: ServingWorld) -> query_relevance.RelevanceModel:
    """Trained on grades of the world's catalogue: 3 for the query's exact title, 2 its noun, else 0."""
    items = offline_item_features(world.settings.marts_export_dir, world.item_ids)
    catalogue = _catalogue(world)
    rows = []
    for query in ("pro kite", "eco rug", "mini lamp", "boots", "tent"):
        for item_id in world.item_ids[:80]:
            title = str(catalogue[item_id])
            grade = 3 if title == query else (2 if title.split(" ")[-1] == query.split(" ")[-1] else 0)
            rows.append((query, title, items.loc[item_id, "item_category_id"], items.loc[item_id, "item_price"], grade))
    pairs = pd.DataFrame(rows, columns=["query", "title", "category_id", "price", "grade"])
    return query_relevance.RelevanceModel.fit(query_relevance.pair_frame(pairs), pairs["grade"])


def _tiny_ranker(world: ServingWorld, model: query_relevance.RelevanceModel):
    """An XGBRanker on ranker_v3_relevance's columns whose relevance follows the relevance score."""
    from xgboost import XGBRanker

    from serving.ranking import build_feature_frame

    settings, rng = world.settings, np.random.default_rng(5)
    n_categories = settings.simulator.categories
    catalogue = _catalogue(world)
    items = offline_item_features(settings.marts_export_dir, world.item_ids)
    frames = []
    for request in range(40):
        ids = [str(i) for i in rng.choice(world.item_ids, 12, replace=False)]
        query = str(catalogue[ids[0]])
        titles = [query_relevance.parse(catalogue[i]) for i in ids]
        score = query_relevance.score_pairs(
            model, query, titles, items.loc[ids, "item_category_id"], items.loc[ids, "item_price"]
        )
        per_row = {"query_title_match": query_title_match(query, [title_words(catalogue[i]) for i in ids])}
        per_row[query_relevance.COLUMN] = score
        user = offline_user_features(settings.marts_export_dir, world.user_ids[request % 10], n_categories)
        frame = build_feature_frame(user, items.loc[ids], ids, n_categories, per_row)
        frames.append(frame.assign(request_id=request, relevance=(score > 0.5).astype(int)))
    frame = pd.concat(frames, ignore_index=True)
    columns = feature_columns_for(SERVICE, n_categories)
    ranker = XGBRanker(objective="rank:ndcg", n_estimators=15, max_depth=3, tree_method="hist", n_jobs=1)
    ranker.fit(model_matrix(frame, columns), frame["relevance"], qid=frame["request_id"])
    return ranker, columns


@pytest.fixture(scope="module")
def relevance_service(serving_world: ServingWorld) -> Iterator[tuple[RankingService, query_relevance.RelevanceModel]]:
    settings = serving_world.settings
    model = _relevance_model(serving_world)
    query_relevance.save_version(settings, model, date(2026, 1, 1), {"labels_through": "2026-01-01"})
    ranker, columns = _tiny_ranker(serving_world, model)
    tag = save_model_beside(serving_world, "v3rel", ranker, SERVICE, columns, metrics={"ndcg@10": 0.6})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHOPRANK_MODEL_TAG", tag)
        get_settings.cache_clear()
        try:
            yield RankingService(), model
        finally:
            shutil.rmtree(query_relevance.models_dir(settings), ignore_errors=True)
            get_settings.cache_clear()


def _request(world: ServingWorld, surface: str) -> RankRequest:
    """15 candidates: up to 3 titled exactly as the query, the rest of other nouns."""
    titles = _catalogue(world).reindex(world.item_ids)
    exact = [i for i, t in titles.items() if t == QUERY][:3]
    candidates = exact + [i for i, t in titles.items() if not str(t).endswith("kite")][: 15 - len(exact)]
    query = QUERY if surface == "search" else None
    return RankRequest(
        user_id=world.user_ids[0], candidate_ids=candidates, k=15, apply_rules=False, surface=surface, query=query
    )


def test_a_search_is_ranked_with_the_relevance_score(relevance_service, serving_world: ServingWorld) -> None:
    service, model = relevance_service
    assert service.champion.feature_service == SERVICE
    assert service.model_info().relevance_model_version == "2026-01-01"
    request = _request(serving_world, "search")
    response = service.rank(request)
    assert not response.degraded, response.degraded_reasons
    assert response.feature_service == SERVICE and len(response.items) == 15
    items = offline_item_features(serving_world.settings.marts_export_dir, serving_world.item_ids)
    catalogue = _catalogue(serving_world)
    explained = service.explain(request)
    for item in explained.items:
        x = query_relevance.pair_features(
            QUERY,
            [query_relevance.parse(catalogue[item.item_id])],
            [items.loc[item.item_id, "item_category_id"]],
            [items.loc[item.item_id, "item_price"]],
        )
        assert item.features[query_relevance.COLUMN] == pytest.approx(float(model.predict(x)[0]), rel=1e-5)
    exact = [i for i in explained.items if catalogue[i.item_id] == QUERY]
    others = [i for i in explained.items if catalogue[i.item_id].split(" ")[-1] != "kite"]
    assert exact and others
    assert min(i.features[query_relevance.COLUMN] for i in exact) > max(
        i.features[query_relevance.COLUMN] for i in others
    )


def test_a_feed_request_has_no_relevance_score(relevance_service, serving_world: ServingWorld) -> None:
    service, _ = relevance_service
    request = _request(serving_world, "feed")
    assert not service.rank(request).degraded
    values = [item.features[query_relevance.COLUMN] for item in service.explain(request).items]
    assert all(v is None or math.isnan(v) for v in values)


def test_without_a_relevance_model_the_search_degrades_but_is_ranked(
    relevance_service, serving_world: ServingWorld
) -> None:
    service, _ = relevance_service
    shutil.rmtree(query_relevance.models_dir(serving_world.settings))
    service.reload()
    assert service.model_info().relevance_model_version is None
    request = _request(serving_world, "search")
    response = service.rank(request)
    assert response.degraded and RELEVANCE_MODEL_MISSING in response.degraded_reasons
    assert len(response.items) == 15 and all(item.reason == "model" for item in response.items)
    values = [item.features[query_relevance.COLUMN] for item in service.explain(request).items]
    assert all(v is None or math.isnan(v) for v in values)
    assert not service.rank(_request(serving_world, "feed")).degraded  # the feed never reads it
