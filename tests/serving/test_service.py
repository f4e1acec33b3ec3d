"""The service class instantiated in process (no HTTP): model, Feast and retrieval wired together."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from serving.ranking import REASON_MODEL, REASON_POPULAR
from serving.schemas import RankRequest
from serving.service import FEATURE_FETCH_FAILED, MODEL_UNAVAILABLE, RankingService
from shoprank.mart_files import read_mart

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
    users = read_mart(marts, "user_features")
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


def test_unknown_user_is_a_cold_start_and_unknown_items_are_dropped(
    service: RankingService, serving_world: ServingWorld
) -> None:
    candidates = ["no-such-item", *serving_world.item_ids[:5], "no-such-item"]
    request = RankRequest(user_id="never-seen", candidate_ids=candidates, k=10, apply_rules=False)
    response = service.rank(request)
    assert not response.degraded
    assert sorted(item.item_id for item in response.items) == serving_world.item_ids[:5]
    assert service.explain(request).removed == {"no-such-item": ["unknown-item"]}


def test_online_store_failure_degrades_to_popularity(
    service: RankingService, serving_world: ServingWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving.online_features import OnlineFeatureReader

    def broken(*args: object, **kwargs: object) -> None:
        raise ConnectionError("online store down")

    # every reader fails (the service reopens the store once when a read fails)
    monkeypatch.setattr(OnlineFeatureReader, "user_features", broken)
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
        {"user_id": "u1", "context": {"category_id": float("nan")}},
        {"user_id": "u1", "context": {"category_id": float("inf")}},
        {"user_id": "u1", "context": {"price_cap": float("-inf")}},
        {"user_id": "u1", "context": {"category_id": 2.5}},
        {"user_id": "u1", "context": {"category_id": -1}},
        {"user_id": "u1", "context": {"category_id": True}},
    ],
)
def test_request_validation(body: dict) -> None:
    with pytest.raises(ValidationError):
        RankRequest.model_validate(body)


def test_v3_reader_reads_the_user_views_in_one_online_call(
    serving_world: ServingWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """User, user-window and user x category features in ONE get_online_features call, equal to the marts' newest
    snapshot (online == offline), the stale pair read as absent; item-side views described for the item cache."""
    from serving.online_features import OnlineFeatureReader
    from shoprank.feature_contract import views
    from shoprank.feature_store import get_feature_store
    from shoprank.ranking_features import ITEM_WINDOW_FEATURES, USER_CATEGORY_FEATURES, USER_WINDOW_FEATURES

    from .conftest import STALE_PAIR, offline_user_features

    settings = serving_world.settings
    n_categories = settings.simulator.categories
    store = get_feature_store(settings)
    reader = OnlineFeatureReader(store, "ranker_v3", n_categories)
    assert set(USER_WINDOW_FEATURES) <= set(reader.user_feature_names)
    # the whole view is read: its model columns and the stored-only long-term taste (recall reads it)
    assert reader.category_feature_names == views(n_categories)["user_category_features"].feature_names
    assert set(USER_CATEGORY_FEATURES) | {"uc_taste_30d"} == set(reader.category_feature_names)
    assert {v.name: v.join_key for v in reader.item_views} == {
        "item_features": "item_id",
        "item_window_features": "item_id",
    }
    assert set(ITEM_WINDOW_FEATURES) <= {f for v in reader.item_views for f in v.features}

    calls = []
    real = store.get_online_features
    monkeypatch.setattr(store, "get_online_features", lambda **kw: calls.append(kw) or real(**kw))
    user_id, stale_category = STALE_PAIR
    assert reader.direct is not None  # a SQLite store is read directly (tests/serving/test_online_sqlite.py)
    assert reader.user_features(user_id) == (online := _feast_path(reader).user_features(user_id))
    assert len(calls) == 1
    offline = offline_user_features(settings.marts_export_dir, user_id, n_categories)
    assert online["uc_clicks_30d"][stale_category] is None  # the online store still holds the older row
    for name, value in offline.items():
        if isinstance(value, tuple) or name in online:
            assert online[name] == pytest.approx(value, nan_ok=True), name


def _feast_path(reader: Any) -> Any:
    """The same reader reading through Feast's get_online_features (what other online stores do)."""
    import copy

    feast = copy.copy(reader)
    feast.direct = None
    return feast


def test_sparse_user_category_view_never_reads_an_older_snapshot(serving_world: ServingWorld) -> None:
    """The point-in-time join of the user x category view (one-day TTL) sees only the snapshot of the moment's day:
    the stale pair has its older row the day that row was current, and nothing the day after (training fills 0)."""
    from shoprank.feature_store import get_feature_store

    from .conftest import STALE_PAIR, _snapshots

    user_id, category = STALE_PAIR
    older, newest = _snapshots()
    moments = [older + pd.Timedelta(hours=12), newest + pd.Timedelta(hours=12)]
    entities = pd.DataFrame({"user_id": user_id, "category_id": category, "event_timestamp": moments})
    store = get_feature_store(serving_world.settings)
    rows = store.get_historical_features(entity_df=entities, features=["user_category_features:uc_clicks_30d"])
    values = rows.to_df().sort_values("event_timestamp")["uc_clicks_30d"].tolist()
    assert values[0] == 99 and pd.isna(values[1])
