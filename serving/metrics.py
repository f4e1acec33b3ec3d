"""Custom Prometheus metrics, exported on BentoML's /metrics beside its own request metrics.

BentoML 1.4 serves /metrics from prometheus_client (multiprocess mode); its own ``bentoml.metrics`` wrapper is
deprecated in favour of prometheus_client directly.
"""

from __future__ import annotations

from prometheus_client import Counter

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
