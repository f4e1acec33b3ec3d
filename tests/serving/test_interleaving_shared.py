"""An interleaved /rank shares its work between the two rankers (in process, no HTTP): one online read of both
models' feature services, then each model's own scores, team-drafted."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from feast import FeatureStore

from serving.experiments.assignment import arm_for
from serving.experiments.routing import route
from serving.online_sqlite import Columns, SqliteUserRead
from serving.schemas import RankRequest
from serving.service import RankingService
from serving.state import load_state

from .conftest import ServingWorld


@pytest.fixture(scope="module")
def service(serving_world: ServingWorld, v3_model_tag: str, tmp_path_factory: pytest.TempPathFactory) -> RankingService:
    arms = [{"name": "off", "share": 0.5}, {"name": "tdi", "share": 0.5, "interleave": ["champion", v3_model_tag]}]
    declared = {"version": "t", "experiments": [{"name": "tdi", "layer": "model", "salt": "shared-1", "arms": arms}]}
    path = Path(tmp_path_factory.mktemp("interleaving")) / "experiments.yaml"
    path.write_text(yaml.safe_dump(declared))
    settings = serving_world.settings
    service = RankingService()
    with_file = settings.model_copy(update={"serving": settings.serving.model_copy(update={"experiments_path": path})})
    service.state = load_state(with_file)
    assert service.state.experiments_error is None
    return service


def _tdi_users(service: RankingService, serving_world: ServingWorld) -> list[str]:
    assert service.state.experiments is not None
    experiment = service.state.experiments.experiments[0]
    return [u for u in serving_world.user_ids if arm_for(experiment, u).name == "tdi"][:4]


def test_an_interleaved_request_reads_the_online_store_once(
    service: RankingService, serving_world: ServingWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The user's read goes through Feast's get_online_features, or straight to its SQLite tables (the local
    # profile: serving/online_sqlite.py): either way, each call is one read; record the feature names it asks for.
    calls: list[set[str]] = []
    through_feast = FeatureStore.get_online_features
    direct = SqliteUserRead.read

    def counted(self: FeatureStore, *args: object, **kwargs: object) -> object:
        calls.append({ref.split(":", 1)[1] for ref in kwargs.get("features") or args[0]})  # type: ignore[attr-defined]
        return through_feast(self, *args, **kwargs)  # type: ignore[arg-type]

    def counted_direct(self: SqliteUserRead, user_id: str, n_categories: int) -> Columns:
        calls.append({name for table in self.tables for name in table.features})
        return direct(self, user_id, n_categories)

    monkeypatch.setattr(FeatureStore, "get_online_features", counted)
    monkeypatch.setattr(SqliteUserRead, "read", counted_direct)
    (pair,) = service.state.interleave_readers
    readers = [service.state.arm_models[tag][1] for tag in pair]
    assert readers[0].feature_service != readers[1].feature_service  # ranker_v1 vs ranker_v3: a real union
    for user in _tdi_users(service, serving_world):
        calls.clear()
        response = service.rank(RankRequest(user_id=user, candidate_ids=serving_world.item_ids[:40], k=10))
        assert response.interleaved is not None and not response.degraded, response.degraded_reasons
        assert len(calls) == 1, f"{len(calls)} online reads for one interleaved request"
        # the one read asks for every user-side feature of both models' services
        assert calls[0] == {ref.split(":", 1)[1] for r in readers for ref in r.user_refs + r.category_refs}


def test_each_team_keeps_its_own_models_scores_and_order(service: RankingService, serving_world: ServingWorld) -> None:
    differ = False
    for user in _tdi_users(service, serving_world):
        request = RankRequest(
            user_id=user, candidate_ids=serving_world.item_ids[:40], k=10, apply_rules=False, request_id=f"tdi-{user}"
        )
        response = service.rank(request)
        routed = route(service.state, user, datetime.now(UTC))
        assert routed.interleave is not None
        # each model ranking alone, with its own reader (two reads, as before the work was shared)
        alone = [
            service._rank_with(state, request, time.perf_counter(), False, routed, observe=False).response
            for state in routed.interleave
        ]
        assert response.interleaved == [alone[0].model_version, alone[1].model_version]
        for team, own in zip("AB", alone, strict=True):
            scores = {i.item_id: i.score for i in own.items}
            mine = [i for i in response.items if i.ranker == team]
            assert mine, f"team {team} contributed nothing"
            assert {i.item_id: i.score for i in mine} == pytest.approx({i.item_id: scores[i.item_id] for i in mine})
            order = [i.item_id for i in own.items]
            assert [i.item_id for i in mine] == sorted((i.item_id for i in mine), key=order.index)
        a_scores = {i.item_id: i.score for i in alone[0].items}
        differ |= any(a_scores.get(i.item_id) != pytest.approx(i.score) for i in alone[1].items)
    assert differ, "the two models scored alike: the test could not tell whose scores were used"


def test_an_interleaved_slate_counts_toward_the_seller_floor(
    service: RankingService, serving_world: ServingWorld
) -> None:
    """The served (merged) slate's sellers count toward the new-seller floor and the request counts once, as for
    a plain slate (each arm's rules only read the counts); without rules nothing is counted."""
    from collections import Counter
    from dataclasses import replace

    from serving.rules.config import SellerFloorRules
    from serving.seller_exposure import SellerExposure

    state, exposure = service.state, service.seller_exposure
    assert state.rules is not None
    floor = SellerFloorRules(enabled=True, days=10_000, min_impressions=1, max_slots=1, pace=False)
    try:
        service.state = replace(state, rules=state.rules.model_copy(update={"seller_floor": floor}))
        service.seller_exposure = SellerExposure()
        user = _tdi_users(service, serving_world)[0]
        request = RankRequest(user_id=user, candidate_ids=serving_world.item_ids[:40], k=10, request_id="floor-1")
        response = service.rank(request)
        assert response.interleaved is not None
        items = service.state.items
        served = Counter(str(s) for s in items.seller[items.rows([i.item_id for i in response.items])] if s)
        assert sum(served.values()) == 10
        assert service.seller_exposure.counts == dict(served) and service.seller_exposure.requests == 1
        service.rank(request.model_copy(update={"apply_rules": False, "request_id": "floor-2"}))
        assert service.seller_exposure.counts == dict(served) and service.seller_exposure.requests == 1
    finally:
        service.state, service.seller_exposure = state, exposure
