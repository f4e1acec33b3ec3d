"""Custom Prometheus metrics, exported on BentoML's /metrics beside its own request metrics."""

from __future__ import annotations

import bentoml

DEGRADED_RESPONSES = bentoml.metrics.Counter(
    name="shoprank_degraded_responses",
    documentation="Responses served from a fallback, by reason.",
    labelnames=["reason"],
)
RULE_ACTIONS = bentoml.metrics.Counter(
    name="shoprank_rule_actions",
    documentation="Items moved or removed by a business rule, by rule reason.",
    labelnames=["rule"],
)
RELOADS = bentoml.metrics.Counter(
    name="shoprank_model_reloads",
    documentation="POST /admin/reload outcomes.",
    labelnames=["outcome"],
)
