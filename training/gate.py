"""The champion/challenger gate: promote a challenger only if it beats the champion on the same holdout.

Both models score the challenger's holdout (rows the champion never trained on either, since it is older), so the
comparison is like for like. The challenger is promoted when
1. its NDCG@k (revenue NDCG@k for the GMV objective) beats the champion's by at least
   ``settings.training.gate.margin`` (with no champion: it beats the popularity baseline), and
2. on every slice (cold-start users, new items, new sellers) with at least ``min_slice_requests`` requests, it
   trails the champion by at most ``slice_tolerance``. Against popularity (no champion yet) slices are reported,
   not enforced: a first model has nothing to regress from, and serving's cold-start rule already answers users
   without history with popular-in-segment items, which is where popularity wins.
The decision, with every reason, is logged, appended to the registry's events and written to
``<home>/models/decisions/<run_date>__<tag>.json``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from shoprank.ranking_features import POPULARITY_FEATURE
from shoprank.settings import Settings, apply_runtime_env
from training import registry
from training.evaluate import evaluate_holdout, slice_masks
from shoprank.model_bundle import load_bundle

log = logging.getLogger(__name__)


@dataclass
class Decision:
    challenger: str
    champion: str | None
    promoted: bool
    reasons: list[str]
    metrics: dict[str, float | None] = field(default_factory=dict)
    decided_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())


def _nan_to_none(metrics: dict[str, float]) -> dict[str, float | None]:
    return {k: None if math.isnan(v) else v for k, v in metrics.items()}


def headline_metric(objective: str) -> str:
    """What the gate compares: NDCG (graded engagement) for the ranker, revenue NDCG (price x purchase) for GMV.
    Slices always compare NDCG: a GMV model must not buy revenue with a collapse of engagement on a slice."""
    return "revenue_ndcg" if objective == "gmv" else "ndcg"


def _compare(
    settings: Settings,
    holdout: pd.DataFrame,
    challenger_scores: pd.Series,
    baseline: str,
    baseline_scores: pd.Series,
    metric: str = "ndcg",
) -> tuple[bool, list[str], dict[str, float]]:
    gate, k = settings.training.gate, settings.training.ndcg_k
    scored = holdout.assign(challenger_score=challenger_scores.to_numpy(), baseline_score=baseline_scores.to_numpy())
    metrics = evaluate_holdout(scored, {"challenger": "challenger_score", baseline: "baseline_score"}, k)
    challenger, reference = metrics[f"challenger_{metric}@{k}"], metrics[f"{baseline}_{metric}@{k}"]
    # With a champion the challenger must clear the margin; against popularity, beating it at all is the bar.
    margin = gate.margin if baseline == "champion" else 0.0
    ok = challenger > reference + margin
    reasons = [
        f"{metric}@{k} {challenger:.4f} vs {baseline} {reference:.4f} (needs > {reference + margin:.4f}): "
        + ("pass" if ok else "FAIL")
    ]
    for name in slice_masks(scored):
        requests = int(metrics.get(f"slice_{name}_requests", 0))
        mine, theirs = metrics[f"slice_{name}_challenger_ndcg@{k}"], metrics[f"slice_{name}_{baseline}_ndcg@{k}"]
        if requests < gate.min_slice_requests or math.isnan(mine) or math.isnan(theirs):
            reasons.append(f"slice {name}: {requests} requests, below the minimum {gate.min_slice_requests}: skipped")
            continue
        slice_ok = mine >= theirs - gate.slice_tolerance
        enforced = baseline == "champion"
        ok = ok and (slice_ok or not enforced)
        verdict = ("pass" if slice_ok else "FAIL") if enforced else ("reported" if slice_ok else "behind (reported)")
        reasons.append(
            f"slice {name} ({requests} requests): {mine:.4f} vs {baseline} {theirs:.4f} "
            f"(tolerance {gate.slice_tolerance}): {verdict}"
        )
    return ok, reasons, metrics


def evaluate_challenger(settings: Settings, challenger_tag: str) -> Decision:
    """Decide, without changing anything, whether ``challenger_tag`` should replace the champion."""
    apply_runtime_env(settings)
    import bentoml

    challenger_model = bentoml.models.get(challenger_tag)
    card = challenger_model.info.metadata
    holdout = pd.read_parquet(card["holdout_path"])
    challenger = load_bundle(challenger_model)
    challenger_scores = pd.Series(challenger.score(holdout))
    metric = headline_metric(challenger.objective)
    champion_tag = registry.champion_tag(settings)
    if champion_tag == str(challenger_model.tag):
        return Decision(str(challenger_model.tag), champion_tag, False, ["already the champion"])
    if champion_tag is None:
        popularity = holdout[POPULARITY_FEATURE]
        ok, reasons, metrics = _compare(settings, holdout, challenger_scores, "popularity", popularity, metric)
        reasons.insert(0, "no champion yet: the challenger must beat the popularity baseline")
        return Decision(str(challenger_model.tag), None, ok, reasons, _nan_to_none(metrics))

    champion = load_bundle(bentoml.models.get(champion_tag))
    missing = sorted(set(champion.feature_columns) - set(holdout.columns))
    if missing:
        reasons = [
            f"the champion {champion_tag} cannot score the challenger's holdout (missing {missing}); "
            "promote by hand after review: make promote TAG=... FORCE=1"
        ]
        return Decision(str(challenger_model.tag), champion_tag, False, reasons)
    ok, reasons, metrics = _compare(
        settings, holdout, challenger_scores, "champion", pd.Series(champion.score(holdout)), metric
    )
    return Decision(str(challenger_model.tag), champion_tag, ok, reasons, _nan_to_none(metrics))


def promote(settings: Settings, challenger_tag: str, force: bool = False, label: str = "") -> dict[str, Any]:
    """Run the gate on ``challenger_tag`` and promote it if it passes (or if ``force``); record the decision."""
    decision = evaluate_challenger(settings, challenger_tag)
    if force and not decision.promoted and decision.champion != decision.challenger:
        decision.reasons.append("FORCED by the operator despite the gate")
        decision.promoted = True
    if decision.promoted:
        registry.set_champion(settings, decision.challenger, decision.reasons)
        log.info("gate: PROMOTE %s over %s: %s", decision.challenger, decision.champion, decision.reasons)
    else:
        registry.record_refusal(settings, decision.challenger, decision.reasons)
        log.warning("gate: KEEP %s, refuse %s: %s", decision.champion, decision.challenger, decision.reasons)
    out = settings.home_dir / "models" / "decisions"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{label or 'manual'}__{decision.challenger.replace(':', '_')}.json"
    path.write_text(json.dumps(asdict(decision), indent=2))
    return {**asdict(decision), "decision_path": str(path), "serving": registry.champion_tag(settings)}
