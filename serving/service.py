"""The ShopRank ranking service (BentoML 1.4).

Run it from the repository root with the runtime environment of the settings (BENTOML_HOME, SHOPRANK_FEAST_*):

    bentoml serve serving.service:RankingService --host 127.0.0.1 --port 3000

Endpoints (see serving/README.md)
- ``POST /rank``: the body IS a :class:`~serving.schemas.RankRequest`, flat (``{"user_id": "u1", "k": 10}``): the
  endpoint takes its model as a positional-only parameter ("root input"). Invalid bodies get HTTP 400 naming the
  field.
- ``POST /explain``: the same body; per item the features, XGBoost ``pred_contribs`` and every rule that moved it.
- ``POST /events``: a batch of behaviour events (:class:`~serving.schemas.EventsRequest`); accepted ones go to the
  raw events log and to the session path (in process on the local profile, a Redis stream on the others), whose
  session features the next /rank of the user reads (serving/sessions.py, serving/stream_worker.py).
- ``POST /admin/reload``: reload the champion, rules, item cache and retrieval index (token-guarded).
- ``GET /model``, ``GET /ready-details``; BentoML's ``/livez``, ``/readyz`` (our ``__is_ready__``: model loaded and
  online store answering), ``/healthz`` and ``/metrics`` (plus the counters of serving/metrics.py).

The ranking path, each step a pure module: retrieval (serving/candidates.py) → user features in one online read
(serving/online_features.py), item features from the in-process cache (serving/item_cache.py) → model score
(serving/ranking.py) → business rules (serving/rules/) → top k, logged (serving/request_log.py). When the model or
the online store is unavailable the candidates are ranked by popularity (still through the rules), the response is
``degraded`` with the reason; the service does not answer 500 to a request it can rank.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import bentoml
import numpy as np
from fastapi import FastAPI, Header, HTTPException

from serving import metrics
from serving.candidates import SOURCES, Retrieved, split_known
from serving.event_stream import StreamPublisher
from serving.events import load_user_ids, screen_events
from serving.experiments.interleaving import TEAM_A, TEAM_B, seed_of, team_draft
from serving.experiments.routing import Route, experiment_columns
from serving.experiments.routing import route as route_request
from serving.heap import freeze_loaded
from serving.item_cache import newest_mtime, published_sources
from serving.logs import configure_service_logging
from serving.online_features import OnlineFeatureReader
from serving.prerank import funnel_for
from serving.ranking import (
    REASON_MODEL,
    REASON_POPULAR,
    category_table,
    dedupe,
    fast_matrix,
    query_match_columns,
    session_columns,
    user_vector,
    uses_session,
)
from serving.relevance import relevance_columns
from serving.request_gate import RequestGate
from serving.request_log import RequestLogger
from serving.rules.pipeline import RuleContext, apply_rules, request_seed
from serving.rules.slate import Slate, by_score, make_slate
from serving.schemas import (
    EventsRequest,
    EventsResponse,
    ExplainedItem,
    ExplainResponse,
    HTTPErrorBody,
    ModelInfo,
    RankedItem,
    RankRequest,
    RankResponse,
    ReadyDetails,
    ReloadResponse,
)
from serving.seller_exposure import SellerExposure
from serving.sessions import EmbeddedSessions
from serving.state import (
    ServingState,
    load_items,
    load_prerank,
    load_recall,
    load_state,
    reopen_reader,
    served_item_views,
)
from shoprank.model_bundle import ModelBundle
from shoprank.ranking_features import category_share_columns
from shoprank.recall import current_version
from shoprank.session import session_intent_category
from shoprank.settings import apply_runtime_env, get_settings

log = logging.getLogger("shoprank.serving")

# Degradation reasons (stable strings: dashboards and tests match on them).
MODEL_UNAVAILABLE = "model-unavailable"
FEATURE_STORE_UNAVAILABLE = "feature-store-unavailable"
FEATURE_FETCH_FAILED = "feature-fetch-failed"
SCORING_FAILED = "scoring-failed"
NO_POPULARITY_INDEX = "popularity-index-unavailable"
# The last pre-ranker load failed: the previous one serves, or (none) today's path without pre-ranking.
PRERANKER_LOAD_FAILED = "preranker-load-failed"
# Pre-ranking raised: the first retrieved candidates go to the model, as without a pre-ranker.
PRERANK_FAILED = "prerank-failed"
# Why a candidate was dropped before scoring (in /explain's ``removed``): the item cache does not know it.
UNKNOWN_ITEM = "unknown-item"
READY_PROBE_USER = "__readyz_probe__"

info_app = FastAPI(title="ShopRank ranker info")


@dataclass
class _Ranking:
    """A request's ranking with what /explain needs besides the response."""

    response: RankResponse
    slate: Slate
    top: np.ndarray
    matrix: np.ndarray | None
    model_scores: np.ndarray | None
    sources: dict[str, str]
    n_candidates: int = 0  # known candidates ranked (before rules removed any)
    prerank_scores: dict[str, float] = field(default_factory=dict)  # the kept candidates', with a pre-ranker


@dataclass
class _Shared:
    """What every model ranking one request shares (an interleaved slate's two rankings do it once): the user's
    online features, the candidates with their item-cache rows, and the slate's item columns (scores per model)."""

    user: dict[str, Any] | None
    user_ok: bool
    cold: bool
    user_values: dict[str, float]
    session_down: list[str]
    reasons: list[str]
    candidates: list[str]
    sources: dict[str, str]
    prerank_scores: dict[str, float]
    rows: np.ndarray
    item_matrix: np.ndarray
    slate: Slate


@dataclass
class _Scored:
    """One model's scores of the shared candidates (None: no model, or scoring failed: popularity ranks)."""

    matrix: np.ndarray | None = None
    model_scores: np.ndarray | None = None
    reasons: list[str] = field(default_factory=list)


@bentoml.asgi_app(info_app, path="/")
@bentoml.service(name="shoprank_ranker", traffic={"timeout": 10}, workers=1)
class RankingService:
    """Loads the serving state once (model, feature reader, item cache, retrieval, rules), then ranks."""

    def __init__(self) -> None:
        self.settings = get_settings()
        apply_runtime_env(self.settings)
        self.state: ServingState = load_state(self.settings)
        self._reload_lock = threading.Lock()
        self._reopen_lock = threading.Lock()
        cfg = self.settings.serving
        self.request_log = (
            RequestLogger(self.settings.serving_logs_dir, cfg.log_buffer_rows, cfg.log_flush_seconds)
            if cfg.log_requests
            else None
        )
        # Accepted events always reach the raw events log (the daily pipeline's copy), even with log_requests off.
        self.event_log = self.request_log or RequestLogger(
            self.settings.serving_logs_dir, cfg.log_buffer_rows, cfg.log_flush_seconds
        )
        self.sessions: EmbeddedSessions | StreamPublisher = (
            StreamPublisher(self.settings)
            if self.settings.streaming_mode == "redis"
            else EmbeddedSessions(self.settings, self._item_categories)
        )
        self.seller_exposure = SellerExposure()  # impressions per seller today (the rules' seller floor)
        if cfg.cache_refresh_seconds > 0:
            threading.Thread(target=self._watch_marts, name="item-cache-refresh", daemon=True).start()
        champion = self.state.champion
        log.info("serving %s (%d cached items)", champion.tag if champion else None, len(self.state.items))
        self._freeze_heap()

    # ---- conveniences for tests and /model ----------------------------------------------------------------------
    @property
    def champion(self):  # noqa: ANN201
        return self.state.champion

    @property
    def reader(self):  # noqa: ANN201
        return self.state.reader

    @property
    def popularity(self):  # noqa: ANN201
        return self.state.popularity

    # ---- the ranking path -----------------------------------------------------------------------------------------
    @bentoml.api(route="/rank")
    def rank(self, request: RankRequest, /) -> RankResponse:
        """Rank candidates (or retrieved ones) for a user; see the module docstring."""
        return self._rank(request).response

    @bentoml.api(route="/explain")
    def explain(self, request: RankRequest, /) -> ExplainResponse:
        """The /rank answer with, per item, its features, the model's per-feature contributions and the rules."""
        ranking = self._rank(request, log_request=False, interleave=False)
        state = self.state
        contributions = _contributions(state, ranking.matrix, ranking.top)
        columns = state.champion.feature_columns if state.champion else []
        items = []
        for row, (item, position) in enumerate(zip(ranking.response.items, ranking.top, strict=True)):
            features = (
                {c: _finite(ranking.matrix[position, j]) for j, c in enumerate(columns)}
                if ranking.matrix is not None
                else {
                    c: _finite(v)
                    for c, v in zip(
                        state.items.columns, state.items.matrix[state.items.rows([item.item_id])[0]], strict=True
                    )
                }
            )
            items.append(
                ExplainedItem(
                    **item.model_dump(),
                    features=features,
                    contributions=contributions[row] if contributions else {},
                    model_score=_finite(ranking.model_scores[position]) if ranking.model_scores is not None else None,
                    retrieval_source=ranking.sources.get(item.item_id, "request"),
                    prerank_score=_finite(ranking.prerank_scores.get(item.item_id)),
                )
            )
        data = ranking.response.model_dump(exclude={"items"})
        removed = {item_id: list(reasons) for item_id, reasons in ranking.slate.removed.items()}
        return ExplainResponse(**data, items=items, removed=removed)

    @bentoml.api(route="/events")
    def events(self, request: EventsRequest, /) -> EventsResponse:
        """Accept a batch of events: the raw events log, then the session path; see serving/events.py."""
        cfg, state = self.settings.serving, self.state
        screened = screen_events(
            request.events,
            datetime.now(UTC),
            cfg.max_event_age_seconds,
            cfg.max_event_ahead_seconds,
            state.user_ids,
            state.items.positions if len(state.items) else (),
        )
        reasons: list[str] = []
        if screened.rows:
            self.event_log.log_events([dict(row) for row in screened.rows])
            if not self.sessions.submit(screened.rows):
                reasons = self.sessions.degraded_reasons()
        metrics.EVENTS.labels(outcome="accepted").inc(len(screened.rows))
        metrics.EVENTS.labels(outcome="rejected").inc(len(screened.rejections))
        return EventsResponse(
            accepted=len(screened.rows),
            rejected=len(screened.rejections),
            rejections=screened.rejections,
            unknown_user_ids=screened.unknown_users,
            unknown_item_ids=screened.unknown_items,
            session_path=self.settings.streaming_mode,
            degraded_reasons=reasons,
        )

    def _item_categories(self, item_ids: Sequence[str]) -> dict[str, int]:
        """The items' categories from the item cache (the session state counts clicks per category)."""
        items = self.state.items
        categories = items.column("item_category_id", items.rows(item_ids))
        return {i: int(c) for i, c in zip(item_ids, categories, strict=True) if np.isfinite(c)}

    def _rank(self, request: RankRequest, log_request: bool = True, interleave: bool = True) -> _Ranking:
        """Rank under the user's experiment arms (serving/experiments/routing.py): one consistent state for the
        whole request, even if a reload swaps it meanwhile. /explain (``interleave`` False) explains arm A."""
        started = time.perf_counter()
        request = request.model_copy(update={"request_id": request.request_id or uuid.uuid4().hex})
        route = route_request(self.state, request.user_id, datetime.now(UTC))
        if not route.apply_rules:
            request = request.model_copy(update={"apply_rules": False})
        if route.interleave is None:
            return self._rank_with(route.state, request, started, log_request, route)
        if not interleave:
            return self._rank_with(route.interleave[0], request, started, log_request, route)
        return self._rank_interleaved(request, route, started, log_request)

    def _rank_interleaved(self, request: RankRequest, route: Route, started: float, log_request: bool) -> _Ranking:
        """Team-draft interleaving of arm A's and arm B's rankings; every item says which ranker gave it.

        The work the two rankings share is done once: the user's online features (one read of both models'
        feature services), retrieval and the candidates' cache rows. Each model then scores the same candidates
        (its own feature columns), the rules run per arm on its scores, and the two lists are team-drafted."""
        assert route.interleave is not None and route.interleave_tags is not None
        a_state, b_state = route.interleave
        reader = route.interleave_reader
        if reader is None:  # a state loaded without the arm's union reader: build it (cheap, no I/O)
            readers = [r for r in (a_state.reader, b_state.reader) if r is not None]
            reader = OnlineFeatureReader.union(readers) if readers else None
        shared = self._prepare(a_state, request, reader, [a_state.champion, b_state.champion])
        a, b = (
            self._finish(state, request, route, shared, self._score(state, request, shared), started, False, False)
            for state in (a_state, b_state)
        )
        # an item both rankers listed shows the score and reasons of the team that contributed it
        by_team = {TEAM_A: {i.item_id: i for i in a.response.items}, TEAM_B: {i.item_id: i for i in b.response.items}}
        merged = team_draft(
            [i.item_id for i in a.response.items],
            [i.item_id for i in b.response.items],
            request.k,
            seed_of(str(request.request_id), request.user_id),
        )
        items = [
            by_team[team][item_id].model_copy(update={"rank": rank + 1, "ranker": team})
            for rank, (item_id, team) in enumerate(zip(merged.items, merged.teams, strict=True))
        ]
        reasons = list(dict.fromkeys(a.response.degraded_reasons + b.response.degraded_reasons))
        response = a.response.model_copy(
            update={
                "items": items,
                "degraded": bool(reasons),
                "degraded_reasons": reasons,
                "interleaved": [a.response.model_version, b.response.model_version],
            }
        )
        floor = any(s.rules is not None and s.rules.seller_floor.enabled for s in (a_state, b_state))
        if floor and request.apply_rules and log_request:  # the merged slate counts toward the floor, as a plain one
            self.seller_exposure.record(a_state.items.seller[a_state.items.rows(merged.items)], request=True)
        self._observe(request, response, a.slate, a.top, a.n_candidates, started, log_request, route)
        return replace(a, response=response)

    def _rank_with(
        self,
        state: ServingState,
        request: RankRequest,
        started: float,
        log_request: bool,
        route: Route,
        observe: bool = True,
    ) -> _Ranking:
        """One model's ranking: the shared work, its scores, its rules."""
        shared = self._prepare(state, request, state.reader, [state.champion])
        scored = self._score(state, request, shared)
        return self._finish(state, request, route, shared, scored, started, log_request, observe)

    def _prepare(
        self,
        state: ServingState,
        request: RankRequest,
        reader: OnlineFeatureReader | None,
        models: Sequence[ModelBundle | None],
    ) -> _Shared:
        """What every model ranking this request shares: the user's features in one online read of ``reader``,
        the candidates (given, or retrieved and pre-ranked) and their item-cache rows, the slate's item columns."""
        cfg = self.settings.serving
        reasons: list[str] = []
        n_categories = state.n_categories(self.settings)

        user: dict[str, Any] | None = None
        user_ok = False
        if reader is None:
            reasons.append(MODEL_UNAVAILABLE if state.champion is None else FEATURE_STORE_UNAVAILABLE)
        else:
            try:
                user = self._read_user(state, request.user_id, reader)
                user_ok = True
            except Exception as exc:
                log.warning("online feature read failed: %s: %s", type(exc).__name__, exc)
                reasons.append(FEATURE_FETCH_FAILED)
        user_names = reader.user_feature_names if reader else ()
        cold, user_values = user_vector(user, n_categories, user_names)
        session_model = _reads_session(models)
        session_down = self.sessions.degraded_reasons() if session_model else []
        reasons += session_down  # served without session features: the user's row may be stale

        sources: dict[str, str] = {}
        prerank_scores: dict[str, float] = {}
        if request.candidate_ids is not None:
            candidates = dedupe(request.candidate_ids)
        else:
            shares = None if cold else [user_values[c] for c in category_share_columns(n_categories)]
            funnel = funnel_for(state.preranker, state.items, state.recall) if self.settings.recall.prerank else None
            stage_started = time.perf_counter()
            query = request.query if request.surface == "search" else None
            found = state.retrieval.retrieve_codes(
                request.user_id,
                shares,
                self.settings.recall.prerank_candidates if funnel is not None else cfg.default_candidate_count,
                query=query,
                recall=state.recall,
                cfg=self.settings.recall,
                user_clicks=None if cold else user_values.get("user_clicks_30d"),  # the shares' count
            )
            metrics.STAGE_SECONDS.labels(stage="retrieve").observe(time.perf_counter() - stage_started)
            metrics.STAGE_CANDIDATES.labels(stage="retrieved").inc(len(found))
            _count_sources(metrics.RETRIEVED, found)
            if state.preranker_error and self.settings.recall.prerank:
                reasons.append(PRERANKER_LOAD_FAILED)
            scores = np.zeros(0)
            if funnel is not None:
                found, scores = self._prerank(funnel, state, request.user_id, shares, found, reasons, query)
                _count_sources(metrics.PRERANKED, found)
            candidates = found.ids()
            sources = dict(zip(candidates, found.source_names(), strict=True))
            if len(scores):
                prerank_scores = dict(zip(candidates, scores.tolist(), strict=True))
            if not len(state.popularity):
                reasons.append(NO_POPULARITY_INDEX)
        candidates, unknown = split_known(candidates, state.items)
        rows = state.items.rows(candidates)
        item_matrix = state.items.matrix[rows]
        slate = _slate(state, candidates, rows, item_matrix, np.zeros(len(candidates)))
        if unknown:  # never ranked, never logged as shown; /explain lists them
            slate = replace(slate, removed={item_id: (UNKNOWN_ITEM,) for item_id in unknown})
        return _Shared(
            user, user_ok, cold, user_values, session_down, reasons, candidates, sources, prerank_scores, rows,
            item_matrix, slate,
        )  # fmt: skip

    def _score(self, state: ServingState, request: RankRequest, shared: _Shared) -> _Scored:
        """``state.champion``'s scores of the shared candidates, on its own feature columns (none: popularity)."""
        if state.champion is None or not shared.user_ok or not shared.candidates:
            return _Scored()
        n_categories = state.n_categories(self.settings)
        metrics.STAGE_CANDIDATES.labels(stage="ranked").inc(len(shared.candidates))
        stage_started = time.perf_counter()
        try:
            columns = state.champion.feature_columns
            per_row = query_match_columns(columns, request.surface, request.query, state.items.title_index, shared.rows)
            per_row |= session_columns(
                columns,
                None if shared.session_down else shared.user,
                shared.candidates,
                shared.item_matrix[:, state.items.column_index["item_category_id"]],
                time.time(),
                self.settings.session,
                n_categories,
                state.items.title_index,
                shared.rows,
                state.items.matrix[:, state.items.column_index["item_category_id"]],
            )
            index = state.items.column_index
            relevance, relevance_down = relevance_columns(
                columns,
                state.relevance,
                request.surface,
                request.query,
                state.items.parsed_titles,
                shared.rows,
                shared.item_matrix[:, index["item_category_id"]],
                shared.item_matrix[:, index["item_price"]],
            )
            per_row |= relevance
            matrix = _model_matrix(
                state, shared.user, shared.cold, shared.user_values, shared.item_matrix, n_categories, per_row
            )
            # the score the gate judged: the bundle's objective (ranker, or expected GMV)
            scored = _Scored(matrix, state.champion.score_matrix(matrix), reasons=relevance_down)
        except Exception:
            log.exception("scoring failed")
            scored = _Scored(reasons=[SCORING_FAILED])
        metrics.STAGE_SECONDS.labels(stage="rank").observe(time.perf_counter() - stage_started)
        return scored

    def _finish(
        self,
        state: ServingState,
        request: RankRequest,
        route: Route,
        shared: _Shared,
        scored: _Scored,
        started: float,
        log_request: bool,
        observe: bool,
    ) -> _Ranking:
        """The slate on ``scored`` (or popularity), ``state``'s rules, the top k as the response."""
        request_id = str(request.request_id)
        reasons = shared.reasons + scored.reasons
        candidates, matrix, model_scores = shared.candidates, scored.matrix, scored.model_scores
        base_reason = REASON_MODEL if model_scores is not None else REASON_POPULAR
        scores = model_scores if model_scores is not None else state.popularity.scores(candidates)
        slate = replace(shared.slate, scores=np.asarray(scores, dtype=float))
        rules = state.rules if request.apply_rules else None
        floor = rules is not None and rules.seller_floor.enabled
        day_fraction = 1.0
        if floor:
            slate, day_fraction = self.seller_exposure.annotate(slate, state.items, shared.rows, log_request)
        if rules is not None:
            context = RuleContext(
                k=request.k,
                surface=request.surface,
                cold_user=shared.cold,
                seed=request_seed(request_id, request.user_id, rules.version),
                segment_category=self._segment_category(state, request, shared),
                day_fraction=day_fraction,
            )
            slate, order = apply_rules(slate, rules, context)
        else:
            order = by_score(slate)
        top = order[: request.k]
        if floor and log_request:  # served (not /explain): the seller's impressions count toward its floor
            self.seller_exposure.record(slate.seller[top])
        items = [
            RankedItem(
                item_id=str(slate.item_ids[p]),
                score=float(np.nan_to_num(slate.scores[p])),
                rank=rank + 1,
                reason=slate.reasons[p][-1] if slate.reasons[p] else base_reason,
                reasons=list(slate.reasons[p]),
            )
            for rank, p in enumerate(top)
        ]
        response = RankResponse(
            user_id=request.user_id,
            request_id=request_id,
            model_version=state.champion.tag if state.champion else None,
            feature_service=state.champion.feature_service if state.champion else None,
            rules_version=rules.version if rules else None,
            degraded=bool(reasons),
            degraded_reasons=reasons,
            items=items,
            experiment=route.experiment,
            arm=route.arm,
            assignments=route.assignments,
        )
        if observe:
            self._observe(request, response, slate, top, len(candidates), started, log_request, route)
        # the matrix rows follow the slate only when no rule removed items; explain re-indexes by item id
        if matrix is not None and len(slate) != len(candidates):
            keep = np.asarray([c not in slate.removed for c in candidates], dtype=bool)
            matrix, model_scores = matrix[keep], model_scores[keep] if model_scores is not None else None
        return _Ranking(
            response, slate, top, matrix, model_scores, shared.sources, len(candidates), shared.prerank_scores
        )

    def _prerank(
        self,
        funnel: Any,
        state: ServingState,
        user_id: str,
        shares: Any,
        found: Retrieved,
        reasons: list[str],
        query: str | None = None,
    ) -> tuple[Retrieved, np.ndarray]:
        """The funnel's middle stage (serving/prerank.py): the best ``recall.prerank_keep`` retrieved candidates
        and their scores. If it raises, the first ``serving.default_candidate_count`` go on, as without a
        pre-ranker (no scores)."""
        started = time.perf_counter()
        try:
            recent = state.retrieval.user_recent.get(user_id, [])
            cfg = self.settings.recall
            labels = np.asarray(SOURCES, dtype=object)[found.sources] if cfg.prerank_quotas else None
            rows = state.retrieval.cache_rows(found, state.items)
            order, scores = funnel.keep_rows(
                user_id, recent, shares, rows, cfg.prerank_keep, query, labels, cfg.prerank_quotas
            )
            kept = replace(found, codes=found.codes[order], sources=found.sources[order])
        except Exception:
            log.exception("pre-ranking failed")
            reasons.append(PRERANK_FAILED)
            n = self.settings.serving.default_candidate_count
            kept, scores = replace(found, codes=found.codes[:n], sources=found.sources[:n]), np.zeros(0)
        metrics.STAGE_SECONDS.labels(stage="prerank").observe(time.perf_counter() - started)
        metrics.STAGE_CANDIDATES.labels(stage="preranked").inc(len(kept))
        return kept, scores

    def _observe(
        self,
        request: RankRequest,
        response: RankResponse,
        slate: Slate,
        top: np.ndarray,
        n_candidates: int,
        started: float,
        log_request: bool,
        route: Route,
    ) -> None:
        """Metrics and the request log; never fails the request."""
        try:
            for reason in response.degraded_reasons:
                metrics.DEGRADED_RESPONSES.labels(reason=reason).inc()
            actions: dict[str, int] = {}
            for reasons in [slate.reasons[p] for p in top] + list(slate.removed.values()):
                for reason in reasons:
                    actions[reason] = actions.get(reason, 0) + 1
            for rule, count in actions.items():
                metrics.RULE_ACTIONS.labels(rule=rule.split(":")[0]).inc(count)
            feeds_session = _reads_session(s.champion for s in route.interleave or (route.state,))
            if not log_request or (self.request_log is None and not feeds_session):
                return  # nobody takes the impressions: build none
            prices = self.state.items.column("item_price", self.state.items.rows([i.item_id for i in response.items]))
            now = datetime.now(UTC)
            impressions = [
                {
                    "event_id": uuid.uuid4().hex,
                    "event_ts": now,
                    "event_type": "impression",
                    "user_id": request.user_id,
                    "item_id": item.item_id,
                    "request_id": response.request_id,
                    "position": item.rank,
                    "surface": request.surface,
                    "query": request.query,
                    "price": _finite(price),
                }
                for item, price in zip(response.items, prices, strict=True)
            ]
            if impressions and feeds_session:
                # What the user was shown is part of their session (impressions, shown-not-clicked), as training's
                # raw events hold it; an application that reports the same impressions is counted once
                # (shoprank.session.dedup_id). A service without a session model leaves the shared path alone.
                self.sessions.submit([dict(row) for row in impressions])
            if self.request_log is None:
                return
            record = {
                "request_id": response.request_id,
                "user_id": request.user_id,
                "surface": request.surface,
                "query": request.query,
                "k": request.k,
                "apply_rules": request.apply_rules,
                "model_version": response.model_version,
                "rules_version": response.rules_version,
                "degraded": response.degraded,
                "degraded_reasons": ",".join(response.degraded_reasons),
                "n_candidates": n_candidates,
                "latency_ms": (time.perf_counter() - started) * 1000,
                **experiment_columns(route, response),
            }
            self.request_log.log(record, impressions)
        except Exception:
            log.exception("could not record metrics or the request log")

    # ---- operations -------------------------------------------------------------------------------------------
    def reload(self) -> ReloadResponse:
        """Load the current champion, rules and marts; swap atomically; keep the previous model if it fails."""
        with self._reload_lock:
            previous = self.state
            previous_tag = previous.champion.tag if previous.champion else None
            state = load_state(self.settings, previous=previous)
            self.state = state
            del previous  # the old state's last reference here: freed before the heap is frozen again
            self._freeze_heap()
        reloaded = not any(e.startswith("model:") for e in state.errors)
        metrics.RELOADS.labels(outcome="ok" if reloaded else "kept-previous").inc()
        return ReloadResponse(
            reloaded=reloaded,
            model_version=state.champion.tag if state.champion else None,
            previous_model_version=previous_tag,
            error="; ".join(state.errors) or None,
            item_cache_size=len(state.items),
            rules_version=state.rules.version if state.rules else None,
        )

    def _watch_marts(self) -> None:
        """Refresh the item cache and retrieval index when a new snapshot is published (the marts pointer moves to
        another directory) or, for marts written in place, when one of its files changes; a failed load keeps the
        current cache."""
        interval = self.settings.serving.cache_refresh_seconds
        while True:
            time.sleep(interval)
            self._refresh_recall()
            self._refresh_preranker()
            try:
                loaded = self.state.items
                sources = published_sources(self.settings.marts_export_dir, loaded.sources)
                mtime = newest_mtime(sources)
                if not mtime or (sources == loaded.sources and mtime == loaded.source_mtime):
                    continue
                with self._reload_lock:
                    rules, reader = self.state.rules, self.state.reader
                    views, titles = served_item_views(self.state.champion, reader, self.state.arm_models)
                    items, popularity, retrieval = load_items(
                        self.settings, rules.exploration.new_seller_days if rules else 14.0, views, titles
                    )
                    user_ids = load_user_ids(self.settings.marts_export_dir)
                    current = self.state
                    self.state = ServingState(
                        **{
                            **current.__dict__,
                            "items": items,
                            "popularity": popularity,
                            "retrieval": retrieval,
                            "user_ids": user_ids,
                        }
                    )
                    del current
                    self._freeze_heap()
                log.info("item cache refreshed: %d items (snapshot %s)", len(items), items.snapshot_ts)
            except Exception:
                log.exception("item cache refresh failed; keeping the current cache")

    def _refresh_recall(self) -> None:
        """Load the recall index once CURRENT names another version (the build-retrieval step ran); a failed load
        keeps the one serving."""
        try:
            if current_version(self.settings.recall_dir) == self.state.recall.version:
                return
            with self._reload_lock:
                recall, error = load_recall(self.settings, self.state.recall)
                if error is None:
                    self.state = replace(self.state, recall=recall)
                    self._freeze_heap()
                    log.info("recall index %s loaded", recall.version)
        except Exception:
            log.exception("recall index refresh failed; keeping version %s", self.state.recall.version)

    def _refresh_preranker(self) -> None:
        """Load the pre-ranker once its CURRENT names another version (the train-preranker step ran); a failed load
        keeps the one serving (or today's path), with the error in the state (responses say preranker-load-failed)."""
        try:
            from shoprank.prerank import current_version as preranker_version

            serving = self.state.preranker
            if preranker_version(self.settings.preranker_dir) == (serving.version if serving else None):
                return
            with self._reload_lock:
                preranker, error = load_prerank(self.settings, self.state.preranker)
                self.state = replace(self.state, preranker=preranker, preranker_error=error)
                self._freeze_heap()
        except Exception:
            log.exception("pre-ranker refresh failed; keeping the one serving")

    def _freeze_heap(self) -> None:
        """After the state is loaded or swapped: the cyclic GC skips it from now on (serving/heap.py)."""
        if self.settings.serving.gc_freeze:
            freeze_loaded()

    def _segment_category(self, state: ServingState, request: RankRequest, shared: _Shared) -> int | None:
        """The cold-start segment: the request's context category, else (a cold user of a session model) the
        category the user's live session clicked last, so a new user's first clicks steer the next popular feed."""
        segment = request.segment_category()
        if segment is not None or not shared.cold or shared.user is None or shared.session_down:
            return segment
        n_categories = state.n_categories(self.settings)
        return session_intent_category(shared.user, time.time(), self.settings.session, n_categories=n_categories)

    def _read_user(
        self, state: ServingState, user_id: str, reader: OnlineFeatureReader | None = None
    ) -> dict[str, Any]:
        """The user's online features (``reader``, default the state's). A failed read reopens the online store and
        reads once more: a connection to a SQLite file that was truncated or replaced keeps failing ("no such
        table") after the file is back."""
        reader = reader or state.reader
        assert reader is not None
        try:
            return reader.user_features(user_id)
        except Exception as exc:
            failure = exc
        fresh = self._reopen_reader(reader)
        if fresh is None:
            raise failure
        return fresh.user_features(user_id)

    def _reopen_reader(self, failed: OnlineFeatureReader) -> OnlineFeatureReader | None:
        """A reader on a freshly opened store, swapped into the current state when that still holds the failed one
        (as the champion's reader or an interleaving arm's). None when another request is reopening it, or the
        store cannot even be opened."""
        if not self._reopen_lock.acquire(blocking=False):
            return None
        try:
            reader = reopen_reader(self.settings, failed)
        except Exception as exc:
            log.warning("online store could not be reopened: %s: %s", type(exc).__name__, exc)
            return None
        finally:
            self._reopen_lock.release()
        if self._reload_lock.acquire(blocking=False):  # a reload under way brings its own reader
            try:
                current = self.state
                if current.reader is failed:
                    self.state = replace(current, reader=reader)
                elif any(r is failed for r in current.interleave_readers.values()):
                    pairs = {tags: reader if r is failed else r for tags, r in current.interleave_readers.items()}
                    self.state = replace(current, interleave_readers=pairs)
            finally:
                self._reload_lock.release()
        return reader

    def ready_details(self) -> ReadyDetails:
        state = self.state
        reachable, detail = False, None
        if state.reader is not None:
            try:
                self._read_user(state, READY_PROBE_USER)
                reachable = True
            except Exception as exc:
                detail = f"online store: {type(exc).__name__}: {exc}"
        elif state.load_error:
            detail = state.load_error
        return ReadyDetails(
            ready=state.champion is not None and reachable,
            model_loaded=state.champion is not None,
            feature_store_reachable=reachable,
            item_cache_size=len(state.items),
            detail=detail,
        )

    def __is_ready__(self) -> bool:
        """BentoML's /readyz hook: ready when a model is loaded and the online store answers."""
        return self.ready_details().ready

    @bentoml.on_startup
    def _log_to_rotating_file(self) -> None:
        """In the server only (not when a test builds the class): the service's log goes to a size-bounded file."""
        configure_service_logging(self.settings)

    @bentoml.on_shutdown
    def _flush_logs(self) -> None:
        self.sessions.close()
        self.event_log.close()

    # ---- FastAPI routes mounted on the service --------------------------------------------------------------------
    @info_app.get("/model")
    def model_info(self) -> ModelInfo:
        """What is serving: the model tag, its feature service and card, the rules version, the item snapshot."""
        state = self.state
        meta: dict[str, Any] = state.champion.metadata if state.champion else {}
        return ModelInfo(
            model_version=state.champion.tag if state.champion else None,
            feature_service=meta.get("feature_service"),
            run_date=meta.get("run_date"),
            metrics={k: float(v) for k, v in (meta.get("metrics") or {}).items() if isinstance(v, int | float)},
            feature_columns=list(meta.get("feature_columns") or []),
            popular_pool_size=len(state.popularity),
            load_error=state.load_error,
            rules_version=state.rules.version if state.rules else None,
            item_cache_snapshot=state.items.snapshot_ts,
            experiments_version=state.experiments.version if state.experiments else None,
            experiments=[e.name for e in state.experiments.experiments] if state.experiments else [],
            experiments_error=state.experiments_error,
            relevance_model_version=state.relevance.version,
        )

    @info_app.get("/ready-details")
    def ready_details_route(self) -> ReadyDetails:
        """Why /readyz says what it says: model loaded, online store reachable, item cache size."""
        return self.ready_details()

    @info_app.post(
        "/admin/reload",
        responses={
            401: {"model": HTTPErrorBody, "description": "No admin token given"},
            403: {"model": HTTPErrorBody, "description": "Wrong token, or admin endpoints disabled (no token set)"},
        },
    )
    def admin_reload(
        self, authorization: str | None = Header(None), x_admin_token: str | None = Header(None)
    ) -> ReloadResponse:
        """Reload the champion (and rules, item cache, retrieval). Token: ``Authorization: Bearer <token>`` or
        ``X-Admin-Token``. 401 without a token, 403 with a wrong one or when no token is configured."""
        expected = self.settings.serving.admin_token
        if expected is None or not expected.get_secret_value():
            raise HTTPException(403, "admin endpoints are disabled: SHOPRANK_SERVING__ADMIN_TOKEN is not set")
        given = x_admin_token
        if authorization and authorization.lower().startswith("bearer "):
            given = authorization[7:].strip()
        if not given:
            raise HTTPException(401, "missing admin token", headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
            raise HTTPException(403, "invalid admin token")
        return self.reload()


# Bad bodies are answered before BentoML parses them: 4xx naming what is wrong, one warning line each.
# (RankingService is a bentoml Service; bentoml.asgi_app's stub says it returns the class it decorates.)
RankingService.add_asgi_middleware(  # type: ignore[attr-defined]
    RequestGate,
    models={"/rank": RankRequest, "/explain": RankRequest, "/events": EventsRequest},
    max_bytes=get_settings().serving.max_body_bytes,
)


# ---- helpers (pure) ---------------------------------------------------------------------------------------------
def _count_sources(counter: Any, found: Retrieved) -> None:
    """Add each source's number of ``found`` candidates to the per-source metric ``counter``."""
    for code, count in enumerate(np.bincount(found.sources, minlength=len(SOURCES)).tolist()):
        if count:
            counter.labels(source=SOURCES[code]).inc(count)


def _reads_session(models: Iterable[ModelBundle | None]) -> bool:
    """Whether any of ``models`` reads session features."""
    return any(m is not None and uses_session(m.feature_columns) for m in models)


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _model_matrix(
    state: ServingState,
    user: dict[str, Any] | None,
    cold: bool,
    user_values: dict[str, float],
    item_matrix: np.ndarray,
    n_categories: int,
    per_row: dict[str, np.ndarray],
) -> np.ndarray:
    """The model's matrix in its card's column order: item-side columns from the cache rows, user-side ones from
    the online read, request-time ones computed (numpy; load_state checked every column can be built)."""
    assert state.champion is not None and state.reader is not None
    categories = category_table(user, state.reader.category_feature_names, n_categories, cold)
    columns = state.champion.feature_columns
    return fast_matrix(user_values, item_matrix, columns, n_categories, state.items.column_index, categories, per_row)


def _slate(state: ServingState, candidates: list[str], rows: np.ndarray, items: np.ndarray, scores: Any) -> Slate:
    def col(name: str) -> np.ndarray:
        return items[:, state.items.column_index[name]]

    ctr = col("item_ctr_7d")
    known = rows < len(state.items)
    prior = float(np.nanmean(ctr[known])) if known.any() else 0.05
    return make_slate(
        candidates,
        np.asarray(scores, dtype=float),
        item_type=np.nan_to_num(col("item_type_code"), nan=-1).astype(np.int64),
        category=np.nan_to_num(col("item_category_id"), nan=-1).astype(np.int64),
        seller=state.items.seller[rows],
        stock=col("item_stock_units"),
        purchases_7d=col("item_purchases_7d"),
        clicks_7d=col("item_clicks_7d"),
        ctr=np.where(np.isfinite(ctr), ctr, prior),
        is_new_item=(col("item_is_new") == 1) | ~known,
        is_new_seller=state.items.seller_is_new[rows],
        **_prior_columns(state, candidates),
    )


def _prior_columns(state: ServingState, candidates: list[str]) -> dict[str, np.ndarray]:
    """The learned cold-start prior and history per candidate, for the learned-exploration rule."""
    looked_up = state.priors.lookup(candidates)
    return {
        "prior_ctr": looked_up["prior_ctr"],
        "prior_cvr": looked_up["prior_cvr"],
        "history_impressions": looked_up["impressions"],
        "history_clicks": looked_up["clicks"],
        "history_purchases": looked_up["purchases"],
    }


def _contributions(state: ServingState, matrix: np.ndarray | None, top: np.ndarray) -> list[dict[str, float]]:
    """Per-feature contributions (+ 'bias') of the top items to the served score's margin (see
    ModelBundle.contributions_matrix); empty when the model has no booster."""
    if matrix is None or state.champion is None or not len(top):
        return []
    try:
        contribs = state.champion.contributions_matrix(matrix[top])
    except Exception:
        log.exception("pred_contribs unavailable for this model")
        return []
    names = [*state.champion.feature_columns, "bias"]
    return [{n: float(v) for n, v in zip(names, row, strict=True)} for row in contribs]
