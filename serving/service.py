"""The ShopRank ranking service (BentoML 1.4).

Run it from the repository root with the runtime environment of the settings (BENTOML_HOME, SHOPRANK_FEAST_*):

    bentoml serve serving.service:RankingService --host 127.0.0.1 --port 3000

Endpoints
- ``POST /rank``: the body IS a :class:`~serving.schemas.RankRequest`, flat (``{"user_id": "u1", "k": 10}``); the
  endpoint takes its model as a positional-only parameter, which BentoML 1.4 treats as the whole body ("root
  input"). The answer is a :class:`~serving.schemas.RankResponse`. Invalid bodies get HTTP 400 from BentoML:
  ``{"error": "1 validation error for RankRequestIODescriptor", "detail": [{"type": ..., "loc": ["k"], "msg": ...}]}``.
- ``GET /model``: the serving model's tag, feature service, card metrics (a FastAPI route mounted on the service).
- ``GET /livez``, ``/readyz``, ``/healthz``, ``/metrics``: BentoML's own probes and Prometheus metrics.

The ranking path: candidates (request, or retrieval v0: the most popular items) → user features (one online read)
and item features (one online read for all candidates) → derived features → model score → top k. When the model
or the online store is unavailable the service ranks by popularity, marks the response ``degraded`` and says why;
it does not answer 500 to a request it can rank.
"""

from __future__ import annotations

import logging
from typing import Any

import bentoml
from fastapi import FastAPI

from serving.model_loader import LoadedModel, load_champion
from serving.online_features import OnlineFeatureReader
from serving.ranking import REASON_MODEL, REASON_POPULAR, Ranked, build_feature_frame, dedupe, score, top_k
from serving.retrieval import PopularityIndex
from serving.schemas import ModelInfo, RankedItem, RankRequest, RankResponse
from shoprank.feature_store import get_feature_store
from shoprank.settings import apply_runtime_env, get_settings

log = logging.getLogger("shoprank.serving")

# Degradation reasons (stable strings: dashboards and tests match on them).
MODEL_UNAVAILABLE = "model-unavailable"
FEATURE_STORE_UNAVAILABLE = "feature-store-unavailable"
FEATURE_FETCH_FAILED = "feature-fetch-failed"
SCORING_FAILED = "scoring-failed"
NO_POPULARITY_INDEX = "popularity-index-unavailable"

info_app = FastAPI(title="ShopRank ranker info")


@bentoml.asgi_app(info_app, path="/")
@bentoml.service(name="shoprank_ranker", traffic={"timeout": 10}, workers=1)
class RankingService:
    """Loads settings, the champion model, the popularity index and the feature store once, then ranks."""

    def __init__(self) -> None:
        self.settings = get_settings()
        apply_runtime_env(self.settings)
        self.champion: LoadedModel | None = None
        self.load_error: str | None = None
        self.reader: OnlineFeatureReader | None = None
        try:
            self.champion = load_champion(self.settings)
        except Exception as exc:  # the service still answers, by popularity
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.exception("no model to serve; ranking by popularity")
        try:
            self.popularity = PopularityIndex.from_parquet(self.settings.marts_export_dir / "item_features.parquet")
        except Exception:
            self.popularity = PopularityIndex()
            log.exception("item_features mart unreadable; retrieval v0 has no candidates")
        if self.champion is not None:
            try:
                self.reader = OnlineFeatureReader(get_feature_store(self.settings), self.champion.feature_service)
            except Exception:
                log.exception("feature store unavailable; ranking by popularity")
        log.info("serving %s (%d popular items)", self.champion.tag if self.champion else None, len(self.popularity))

    @bentoml.api(route="/rank")
    def rank(self, request: RankRequest, /) -> RankResponse:
        """Rank candidates (or the most popular items) for a user; see the module docstring."""
        cfg = self.settings.serving
        reasons: list[str] = []
        if request.candidate_ids is not None:
            candidates = dedupe(request.candidate_ids)
        else:
            candidates = self.popularity.top(cfg.default_candidate_count)
            if not len(self.popularity):
                reasons.append(NO_POPULARITY_INDEX)
        ranked = self._model_ranking(request.user_id, candidates, request.k, reasons)
        if ranked is None:
            ranked = top_k(candidates, self.popularity.scores(candidates), request.k, REASON_POPULAR)
        return RankResponse(
            user_id=request.user_id,
            model_version=self.champion.tag if self.champion else None,
            feature_service=self.champion.feature_service if self.champion else None,
            degraded=bool(reasons),
            degraded_reasons=reasons,
            items=[RankedItem(item_id=r.item_id, score=r.score, rank=r.rank, reason=r.reason) for r in ranked],
        )

    def _model_ranking(self, user_id: str, candidates: list[str], k: int, reasons: list[str]) -> list[Ranked] | None:
        """The model's top k, or None (with a reason appended) when a dependency fails."""
        if self.champion is None:
            reasons.append(MODEL_UNAVAILABLE)
            return None
        if self.reader is None:
            reasons.append(FEATURE_STORE_UNAVAILABLE)
            return None
        if not candidates:
            return []
        try:
            user = self.reader.user_features(user_id)
            items = self.reader.item_features(candidates)
        except Exception:
            log.exception("online feature read failed")
            reasons.append(FEATURE_FETCH_FAILED)
            return None
        try:
            frame = build_feature_frame(user, items, candidates, self.champion.n_categories)
            scores = score(self.champion.model, frame, self.champion.feature_columns)
        except Exception:
            log.exception("scoring failed")
            reasons.append(SCORING_FAILED)
            return None
        return top_k(candidates, scores, k, REASON_MODEL)

    @info_app.get("/model")
    def model_info(self) -> ModelInfo:
        """What is serving: the model tag, its feature service and card."""
        meta: dict[str, Any] = self.champion.metadata if self.champion else {}
        return ModelInfo(
            model_version=self.champion.tag if self.champion else None,
            feature_service=meta.get("feature_service"),
            run_date=meta.get("run_date"),
            metrics={k: float(v) for k, v in (meta.get("metrics") or {}).items() if isinstance(v, int | float)},
            feature_columns=list(meta.get("feature_columns") or []),
            popular_pool_size=len(self.popularity),
            load_error=self.load_error,
        )
