"""The funnel against today's path, measured with the service's own code in process (part of `make bench-retrieval`).

Per holdout request (user, surface, query; the day after the indexes' day, which nothing has seen):
- the pre-ranker's recall of the final ranker's top 20 over the full candidate set: the final ranker (the
  champion, no rules) ranks every one of the ``recall.prerank_candidates`` retrieved items; the share of its top 20
  that the pre-ranker keeps in its best ``recall.prerank_keep``;
- NDCG@10 of the holdout's clicks (gain 1) and purchases (gain 3) when the final ranker sees today's
  ``serving.default_candidate_count`` retrieved candidates vs the funnel's pre-ranked ones (no rules either way);
- recall@100 / @500 of the clicked items in the funnel's pre-ranked order, per surface and per source.
Each variant (``variants``: a name -> ``recall.prerank_quotas``; default the settings' own) is measured on the same
requests; a variant's NDCG ranks its kept candidates as the request's own (the funnel path without re-retrieving).
Needs a home with a champion, materialized features, a recall index and a pre-ranker (bench_retrieval builds it).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import line


def ndcg_at(ranked: list[str], gains: dict[str, float], k: int = 10) -> float:
    dcg = sum(gains.get(item, 0.0) / np.log2(rank + 2) for rank, item in enumerate(ranked[:k]))
    ideal = sorted(gains.values(), reverse=True)[:k]
    best = sum(g / np.log2(rank + 2) for rank, g in enumerate(ideal))
    return dcg / best if best else float("nan")


def run(
    settings: Any,
    requests: pd.DataFrame,
    shares: dict[str, list[float]],
    n_requests: int,
    variants: dict[str, dict[str, float]] | None = None,
    clicks: dict[str, float] | None = None,
) -> None:
    from serving.candidates import SOURCES
    from serving.prerank import funnel_for
    from serving.service import RankingService

    service = RankingService()
    service.today_settings = settings.model_copy(  # type: ignore[attr-defined]
        update={"recall": settings.recall.model_copy(update={"prerank": False})}
    )
    service.funnel_settings = settings  # type: ignore[attr-defined]
    state = service.state
    if state.champion is None or state.preranker is None:
        line("funnel", "skipped: the home has no champion or no pre-ranker (run train, promote, train-preranker)")
        return
    funnel = funnel_for(state.preranker, state.items, state.recall)
    assert funnel is not None
    cfg = settings.recall
    full_n, keep, today_n = cfg.prerank_candidates, cfg.prerank_keep, settings.serving.default_candidate_count
    rows = requests.head(n_requests) if n_requests else requests
    variants = variants or {"funnel": dict(cfg.prerank_quotas)}
    ndcg_today: dict[str, list[float]] = {}
    recall20: dict[str, dict[str, list[float]]] = {v: {} for v in variants}
    ndcg_funnel: dict[str, dict[str, list[float]]] = {v: {} for v in variants}
    prerank_ms: dict[str, list[float]] = {v: [] for v in variants}
    hits: dict[tuple[str, str, str], Counter[str]] = {}
    totals: Counter[str] = Counter()
    for request in rows.itertuples():
        query = request.query if isinstance(request.query, str) and request.surface == "search" else None
        user_shares = shares.get(request.user_id)
        user_clicks = (clicks or {}).get(request.user_id)  # the affinity source's count, as the service passes it
        found = state.retrieval.retrieve_codes(
            request.user_id, user_shares, full_n, query, state.recall, cfg, user_clicks
        )
        full = found.ids()
        sources = dict(zip(full, found.source_names(), strict=True))
        item_rows = state.retrieval.cache_rows(found, state.items)
        labels = np.asarray(SOURCES, dtype=object)[found.sources]
        recent = state.retrieval.user_recent.get(request.user_id, [])
        top20 = ranked(service, request, query, full, 20, funnel_on=False)
        gains = dict.fromkeys(request.clicked, 1.0)
        if isinstance(request.purchased, set):
            gains.update(dict.fromkeys(request.purchased, 3.0))
        today = ndcg_at(ranked(service, request, query, None, 10, funnel_on=False), gains)
        ndcg_today.setdefault(request.surface, []).append(today)
        totals[request.surface] += len(request.clicked)
        for name, quotas in variants.items():
            started = time.perf_counter()
            # as serving pre-ranks (RankingService._prerank): over the candidates' cache rows, then the kept ids
            order, _ = funnel.keep_rows(request.user_id, recent, user_shares, item_rows, keep, query, labels, quotas)
            kept = [full[p] for p in order.tolist()]
            prerank_ms[name].append((time.perf_counter() - started) * 1000)
            recall20[name].setdefault(request.surface, []).append(len(set(top20) & set(kept)) / max(len(top20), 1))
            ndcg = ndcg_at(ranked(service, request, query, kept, 10, funnel_on=False), gains)
            ndcg_funnel[name].setdefault(request.surface, []).append(ndcg)
            for item in request.clicked:
                if item in kept[:100]:
                    hits.setdefault((name, request.surface, "@100"), Counter())[sources[item]] += 1
                if item in kept:
                    hits.setdefault((name, request.surface, "@500"), Counter())[sources[item]] += 1
    service.settings = settings
    n = len(rows)
    line(f"funnel: {n} holdout requests", f"{full_n} retrieved -> pre-ranker keeps {keep}; today: {today_n} retrieved")
    every = [r for values in ndcg_today.values() for r in values]
    by_surface = ", ".join(f"{s} {np.nanmean(v):.4f}" for s, v in sorted(ndcg_today.items()))
    line("NDCG@10 holdout clicks, today", f"{np.nanmean(every):.4f} ({by_surface})")
    for name, quotas in variants.items():
        every = [r for values in recall20[name].values() for r in values]
        by_surface = ", ".join(f"{s} {np.mean(v):.3f}" for s, v in sorted(recall20[name].items()))
        line(f"[{name}] quotas", str(quotas or "none: by score"))
        line(f"[{name}] pre-ranker recall of the final top 20", f"{np.mean(every):.3f} ({by_surface}; target 0.95)")
        line(f"[{name}] pre-ranker time (in process) p50 / p99", _percentiles(prerank_ms[name]))
        every = [r for values in ndcg_funnel[name].values() for r in values]
        by_surface = ", ".join(f"{s} {np.nanmean(v):.4f}" for s, v in sorted(ndcg_funnel[name].items()))
        line(f"[{name}] NDCG@10 holdout clicks, funnel", f"{np.nanmean(every):.4f} ({by_surface})")
        for surface in sorted(totals):
            for at in ("@100", "@500"):
                counter = hits.get((name, surface, at), Counter())
                per_source = ", ".join(f"{s} {c / totals[surface]:.3f}" for s, c in counter.most_common())
                share = sum(counter.values()) / totals[surface]
                line(f"[{name}] {surface} clicked R{at} ({totals[surface]})", f"{share:.3f}")
                line("", f"by source: {per_source}")


def ranked(
    service: Any, request: Any, query: str | None, candidates: list[str] | None, k: int, funnel_on: bool
) -> list[str]:
    """The final ranker's top ``k`` (no rules) for the holdout request: over ``candidates``, else over what the
    service retrieves, with the funnel on or off (today's path)."""
    from serving.schemas import RankRequest

    service.settings = service.funnel_settings if funnel_on else service.today_settings
    body = RankRequest(
        user_id=request.user_id,
        surface=request.surface,
        query=query,
        k=k,
        apply_rules=False,
        candidate_ids=candidates,
    )
    return [item.item_id for item in service._rank(body, log_request=False).response.items]


def _percentiles(values: list[float]) -> str:
    return f"{np.percentile(values, 50):.2f} / {np.percentile(values, 99):.2f} ms"
