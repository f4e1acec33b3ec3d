"""The funnel (issue 16): retrieval -> pre-ranker -> final ranker, over HTTP and in process.

A real (tiny) XGBoost pre-ranker is published the way the train-preranker step publishes one
(training.preranker.publish) into the serving world's home, and removed afterwards. The world has 200 items, so
the HTTP server is configured to retrieve 150 and pre-rank to 40 (the same path as 5,000 -> 500 on a big
catalogue; /metrics counts each stage)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator

import numpy as np
import pytest

from serving.prerank import funnel_for
from serving.ranking import user_vector
from serving.schemas import RankRequest
from serving.service import PRERANKER_LOAD_FAILED, RankingService
from shoprank import prerank
from shoprank.ranking_features import category_share_columns
from shoprank.settings import Settings, get_settings
from training.preranker import publish

from .conftest import ServingWorld, pinned_model_client

RETRIEVED, KEPT = 150, 40
PRERANK_ON = "SHOPRANK_RECALL__PRERANK"


def tiny_preranker(settings: Settings, version: str) -> None:
    """Fit a 5-tree LambdaMART on random rows of the pre-ranker's features and publish it as ``version``."""
    from xgboost import XGBRanker

    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, len(prerank.FEATURES))).astype(np.float32)
    y = (x[:, prerank.FEATURES.index("item_clicks_7d")] + rng.normal(scale=0.5, size=400) > 0.5).astype(int)
    model = XGBRanker(n_estimators=5, max_depth=3, n_jobs=1).fit(x, y, qid=np.repeat(np.arange(20), 20))
    card = {"run_date": version, "features": prerank.FEATURES, "metrics": {}}
    publish(settings.preranker_dir, version, model, card, kept=3)


@pytest.fixture(scope="module")
def with_preranker(serving_world: ServingWorld) -> Iterator[Settings]:
    # The funnel is opt-in (recall.prerank): on for this module's in-process services and servers only.
    settings = serving_world.settings
    tiny_preranker(settings, "2026-01-06")
    os.environ[PRERANK_ON] = "true"
    get_settings.cache_clear()
    try:
        yield settings
    finally:
        os.environ.pop(PRERANK_ON, None)
        get_settings.cache_clear()
        shutil.rmtree(settings.preranker_dir)


def _counter(text: str, name: str, label: str) -> float:
    pattern = rf"^{name}_total\{{[^}}]*{label}[^}}]*\}} ([0-9.e+]+)$"
    return sum(float(v) for v in re.findall(pattern, text, flags=re.MULTILINE))


def test_the_funnel_over_http_preranks_the_retrieved_candidates_to_the_configured_count(
    with_preranker: Settings, serving_world: ServingWorld
) -> None:
    env = {
        PRERANK_ON: "true",
        "SHOPRANK_RECALL__PRERANK_CANDIDATES": str(RETRIEVED),
        "SHOPRANK_RECALL__PRERANK_KEEP": str(KEPT),
    }
    with pinned_model_client(serving_world, serving_world.model_tag, "funnel", **env) as http:
        user = serving_world.user_ids[1]
        explained = http.post("/explain", json={"user_id": user, "k": 20, "apply_rules": False})
        assert explained.status_code == 200, explained.text
        body = explained.json()
        assert not body["degraded"], body["degraded_reasons"]
        items = body["items"]
        assert len(items) == 20
        # every ranked item came through retrieval (a source) and the pre-ranker (a score)
        assert all(item["retrieval_source"] not in (None, "request") for item in items)
        assert all(isinstance(item["prerank_score"], float) for item in items)
        assert http.post("/rank", json={"user_id": "never-seen-user", "k": 10}).json()["items"]  # cold: candidates
        metrics = http.get("/metrics").text
    retrieved = _counter(metrics, "shoprank_funnel_candidates", 'stage="retrieved"')
    preranked = _counter(metrics, "shoprank_funnel_candidates", 'stage="preranked"')
    ranked = _counter(metrics, "shoprank_funnel_candidates", 'stage="ranked"')
    # two requests (the /explain and the cold /rank; the readiness probe retrieves nothing)
    assert retrieved == 2 * RETRIEVED and preranked == ranked == 2 * KEPT
    assert _counter(metrics, "shoprank_preranked_candidates", "source=") == 2 * KEPT
    assert re.search(r'^shoprank_funnel_stage_seconds_count\{[^}]*stage="prerank"[^}]*\} 2\.0$', metrics, re.M)


def test_the_model_sees_the_preranker_best_candidates(with_preranker: Settings, serving_world: ServingWorld) -> None:
    service = RankingService()
    assert service.state.preranker is not None and service.state.preranker.version == "2026-01-06"
    service.settings = service.settings.model_copy(
        update={"recall": service.settings.recall.model_copy(update={"prerank_candidates": 150, "prerank_keep": 30})}
    )
    user = serving_world.user_ids[2]
    ranking = service._rank(RankRequest(user_id=user, k=100, apply_rules=False))
    assert ranking.n_candidates == 30 and len(ranking.prerank_scores) == 30
    # the 150 retrieved, scored by the same funnel: the model ranked exactly the best 30 of them
    state = service.state
    n_categories = state.n_categories(service.settings)
    assert state.reader is not None
    cold, values = user_vector(service._read_user(state, user), n_categories, state.reader.user_feature_names)
    shares = None if cold else [values[c] for c in category_share_columns(n_categories)]
    clicks = None if cold else values.get("user_clicks_30d")  # the affinity source's count, as the service passes it
    retrieved, _ = state.retrieval.retrieve(
        user, shares, 150, recall=state.recall, cfg=service.settings.recall, user_clicks=clicks
    )
    funnel = funnel_for(state.preranker, state.items, state.recall)
    assert funnel is not None and len(retrieved) == 150
    recent = state.retrieval.user_recent.get(user, [])
    scores = funnel.scores(user, recent, shares, state.items.rows(retrieved))
    best = {retrieved[p] for p in np.argsort(-scores, kind="stable")[:30]}
    assert {item.item_id for item in ranking.response.items} == best
    assert all(ranking.prerank_scores[i] == pytest.approx(float(scores[retrieved.index(i)])) for i in best)


def test_a_preranker_that_fails_to_load_leaves_the_previous_one_serving(
    with_preranker: Settings, serving_world: ServingWorld
) -> None:
    settings = with_preranker
    service = RankingService()
    previous = service.state.preranker
    assert previous is not None
    broken = settings.preranker_dir / "2026-01-07"
    broken.mkdir()
    (broken / prerank.MODEL_FILE).write_text("{not a model")
    (broken / prerank.CARD_FILE).write_text('{"features": []}')
    current = settings.preranker_dir / prerank.CURRENT
    try:
        current.write_text("2026-01-07")
        reloaded = service.reload()
    finally:  # other tests' servers watch this home: the broken version is named only for the reload
        current.write_text(previous.version)
        shutil.rmtree(broken)
    assert reloaded.error is not None and "preranker" in reloaded.error and "2026-01-07" in reloaded.error
    assert service.state.preranker is previous
    response = service.rank(RankRequest(user_id=serving_world.user_ids[0], k=10))
    assert len(response.items) == 10 and PRERANKER_LOAD_FAILED in response.degraded_reasons


def test_without_any_preranker_a_failed_load_serves_todays_path(
    with_preranker: Settings, serving_world: ServingWorld
) -> None:
    settings = with_preranker
    current = settings.preranker_dir / prerank.CURRENT
    kept = current.read_text()
    current.write_text("2026-01-08")  # names a version that does not exist
    try:
        service = RankingService()
    finally:
        current.write_text(kept)
    assert service.state.preranker is None and service.state.preranker_error is not None
    ranking = service._rank(RankRequest(user_id=serving_world.user_ids[0], k=10))
    assert ranking.n_candidates == min(service.settings.serving.default_candidate_count, len(service.state.items))
    assert not ranking.prerank_scores and PRERANKER_LOAD_FAILED in ranking.response.degraded_reasons
