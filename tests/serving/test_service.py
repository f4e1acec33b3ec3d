"""The service class instantiated in process (no HTTP): model, Feast and retrieval wired together."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
from pydantic import ValidationError

from serving.ranking import REASON_MODEL, REASON_POPULAR
from serving.schemas import RankRequest
from serving.service import FEATURE_FETCH_FAILED, MODEL_UNAVAILABLE, RankingService

from .conftest import ServingWorld


@pytest.fixture(scope="module")
def service(serving_world: ServingWorld) -> RankingService:
    return RankingService()


def test_loads_the_champion_once(service: RankingService, serving_world: ServingWorld) -> None:
    assert service.champion is not None
    assert service.champion.tag == serving_world.model_tag
    assert service.champion.feature_service == "ranker_v1"
    assert service.reader is not None
    assert len(service.reader.user_refs) > 0 and len(service.reader.item_refs) > 0


def test_ranks_given_candidates_with_the_model(service: RankingService, serving_world: ServingWorld) -> None:
    candidates = serving_world.item_ids[:30]
    request = RankRequest(user_id=serving_world.user_ids[0], candidate_ids=candidates, k=5, apply_rules=False)
    response = service.rank(request)
    assert response.rules_version is None
    assert not response.degraded and response.degraded_reasons == []
    assert response.model_version == serving_world.model_tag
    assert [item.rank for item in response.items] == [1, 2, 3, 4, 5]
    assert all(item.reason == REASON_MODEL for item in response.items)
    scores = [item.score for item in response.items]
    assert scores == sorted(scores, reverse=True)
    assert {item.item_id for item in response.items} <= set(candidates)


def test_scores_match_the_model_on_the_offline_features(service: RankingService, serving_world: ServingWorld) -> None:
    """The online path builds the same matrix as training would from the mart's latest snapshot."""
    from shoprank.ranking_features import add_derived_features, model_matrix

    settings = serving_world.settings
    marts = settings.marts_export_dir
    users = pd.read_parquet(marts / "user_features.parquet")
    items = pd.read_parquet(marts / "item_features.parquet")
    user_id, candidates = serving_world.user_ids[3], serving_world.item_ids[10:20]
    user = users[(users.user_id == user_id) & (users.feature_ts == users.feature_ts.max())]
    pairs = items[(items.feature_ts == items.feature_ts.max()) & items.item_id.isin(candidates)]
    pairs = pairs.drop(columns="feature_ts").assign(**user.drop(columns=["user_id", "feature_ts"]).iloc[0].to_dict())
    frame = add_derived_features(pairs, service.champion.n_categories)
    predictions = service.champion.model.predict(model_matrix(frame, service.champion.feature_columns))
    expected = dict(zip(frame.item_id, predictions, strict=True))
    response = service.rank(RankRequest(user_id=user_id, candidate_ids=candidates, k=10, apply_rules=False))
    assert {i.item_id: i.score for i in response.items} == pytest.approx(expected, rel=1e-5)


def test_without_candidates_ranks_retrieved_items(service: RankingService, serving_world: ServingWorld) -> None:
    response = service.rank(RankRequest(user_id=serving_world.user_ids[1]))
    assert len(response.items) == service.settings.serving.default_k
    assert not response.degraded
    assert response.rules_version == service.state.rules.version
    assert {item.item_id for item in response.items} <= set(serving_world.item_ids)


def test_unknown_user_and_items_are_cold_starts(service: RankingService, serving_world: ServingWorld) -> None:
    candidates = ["no-such-item", *serving_world.item_ids[:5], "no-such-item"]
    response = service.rank(RankRequest(user_id="never-seen", candidate_ids=candidates, k=10, apply_rules=False))
    assert not response.degraded
    assert sorted(item.item_id for item in response.items) == sorted(set(candidates))


def test_online_store_failure_degrades_to_popularity(
    service: RankingService, serving_world: ServingWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ConnectionError("online store down")

    monkeypatch.setattr(service.reader, "user_features", broken)
    candidates = serving_world.item_ids[:20]
    request = RankRequest(user_id=serving_world.user_ids[0], candidate_ids=candidates, k=4, apply_rules=False)
    response = service.rank(request)
    assert response.degraded and response.degraded_reasons == [FEATURE_FETCH_FAILED]
    assert all(item.reason == REASON_POPULAR for item in response.items)
    by_popularity = sorted(candidates, key=lambda c: (-service.popularity.scores([c])[0], c))
    assert [i.item_id for i in response.items] == by_popularity[:4]


def test_missing_model_degrades_to_popularity(
    service: RankingService, serving_world: ServingWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "state", replace(service.state, champion=None, reader=None))
    response = service.rank(RankRequest(user_id=serving_world.user_ids[0], k=3, apply_rules=False))
    assert response.degraded and response.degraded_reasons == [MODEL_UNAVAILABLE]
    assert response.model_version is None
    assert [i.item_id for i in response.items] == service.popularity.top(3)


def test_model_info(service: RankingService, serving_world: ServingWorld) -> None:
    info = service.model_info()
    assert info.model_version == serving_world.model_tag
    assert info.feature_service == "ranker_v1"
    assert info.metrics["ndcg@10"] == 0.5
    assert info.popular_pool_size == len(serving_world.item_ids)


@pytest.mark.parametrize(
    "body",
    [
        {"user_id": "u1", "k": 0},
        {"user_id": "u1", "k": 10_000},
        {"k": 3},
        {"user_id": ""},
        {"user_id": "u" * 65},
        {"user_id": "u1", "surface": "email"},
        {"user_id": "u1", "candidate_ids": "i1"},
        {"user_id": "u1", "candidate_ids": ["i1", ""]},
        {"user_id": "u1", "colour": "red"},
    ],
)
def test_request_validation(body: dict) -> None:
    with pytest.raises(ValidationError):
        RankRequest.model_validate(body)
