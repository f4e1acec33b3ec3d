"""Custom Prometheus metrics, exported on BentoML's /metrics beside its own request metrics.

BentoML 1.4 serves /metrics from prometheus_client (multiprocess mode); its own ``bentoml.metrics`` wrapper is
deprecated in favour of prometheus_client directly.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DEGRADED_RESPONSES = Counter(
    "shoprank_degraded_responses", "Responses served from a fallback, by reason.", labelnames=["reason"]
)
RULE_ACTIONS = Counter(
    "shoprank_rule_actions", "Items moved or removed by a business rule, by rule reason.", labelnames=["rule"]
)
RELOADS = Counter("shoprank_model_reloads", "POST /admin/reload outcomes.", labelnames=["outcome"])
EVENTS = Counter("shoprank_events", "Events posted to POST /events, accepted or rejected.", labelnames=["outcome"])
RETRIEVED = Counter(
    "shoprank_retrieved_candidates", "Candidates retrieved for /rank, by the source that brought them.", ["source"]
)
PRERANKED = Counter(
    "shoprank_preranked_candidates",
    "Candidates the pre-ranker passed to the final ranker, by the source that retrieved them.",
    ["source"],
)
STAGE_CANDIDATES = Counter(
    "shoprank_funnel_candidates", "Candidates entering each funnel stage (retrieved, preranked, ranked).", ["stage"]
)
STAGE_SECONDS = Histogram(
    "shoprank_funnel_stage_seconds",
    "Time spent in each funnel stage of /rank (retrieve, prerank, rank).",
    ["stage"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25),
)
