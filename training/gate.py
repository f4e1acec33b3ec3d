"""The champion/challenger gate: promote a challenger only if it beats the champion on the same holdout.

Both models score the challenger's holdout, so the comparison is like for like, but only if the champion never
trained on those days. That is checked, not assumed: a backfill of day D after a champion trained through D+3 would
score the champion on rows it learned from. The gate therefore refuses (the champion stays) when
- the holdout has fewer than ``min_holdout_requests_with_click`` requests with a click (its metrics are noise), or
- the champion's training window (the card's ``train_window``: fit and validation days) overlaps the holdout's days.
  A model registered without ``train_window`` is bounded by its run day: it trained on days before it, from an
  unknown first day, so any holdout day before its run day counts as overlap; with no run day either, refused.
``--force`` (``make promote FORCE=1``) overrides these refusals as it overrides the comparison.
Otherwise the challenger is promoted when
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
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from shoprank.model_bundle import ModelBundle, load_bundle
from shoprank.ranking_features import POPULARITY_FEATURE
from shoprank.settings import Settings, apply_runtime_env
from training import registry
from training.gate_holdout import HoldoutFacts, Scorer, holdout_facts, holdout_metrics

log = logging.getLogger(__name__)


# Decision.refusal: why the gate would not even compare (None when it compared).
HOLDOUT_TOO_SMALL = "holdout_too_small"
CHAMPION_TRAINED_ON_HOLDOUT = "champion_trained_on_holdout"
WINDOW_UNKNOWN = "training_window_unknown"


@dataclass
class Decision:
    challenger: str
    champion: str | None
    promoted: bool
    reasons: list[str]
    metrics: dict[str, float | None] = field(default_factory=dict)
    decided_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    refusal: str | None = None


def _nan_to_none(metrics: dict[str, float]) -> dict[str, float | None]:
    return {k: v if math.isfinite(v) else None for k, v in metrics.items()}


def _window(value: Any) -> tuple[str, str] | None:
    """A recorded [first, last] day window as ISO day strings; None when absent or malformed."""
    if isinstance(value, list | tuple) and len(value) == 2 and all(value):
        return str(value[0])[:10], str(value[1])[:10]
    return None


def training_window(metadata: dict[str, Any], labels: dict[str, Any]) -> tuple[str | None, str | None, str]:
    """The days a registered model trained on, as (first or None if unknown, last or None if unknown, how known)."""
    recorded = _window(metadata.get("train_window"))
    if recorded:
        return recorded[0], recorded[1], "recorded"
    run_day = metadata.get("run_date") or labels.get("run_date")
    if run_day:
        last = date.fromisoformat(str(run_day)[:10]) - timedelta(days=1)
        return None, last.isoformat(), f"not recorded; bounded by its run day {run_day}"
    return None, None, "not recorded, and no run day"


def holdout_window(card: dict[str, Any], facts: HoldoutFacts) -> tuple[str, str] | None:
    """The first and last day of the holdout rows (the card's ``holdout_window`` when the rows carry no ``dt``)."""
    if facts.first_day and facts.last_day:
        return facts.first_day, facts.last_day
    return _window(card.get("holdout_window"))


def window_refusal(
    champion_tag: str, metadata: dict[str, Any], labels: dict[str, Any], holdout: tuple[str, str] | None
) -> tuple[str, str] | None:
    """(refusal code, reason) when the champion may have trained on the holdout's days; None when it cannot have."""
    first, last, known = training_window(metadata, labels)
    advice = "the champion stays; promote by hand after review: make promote TAG=... FORCE=1"
    if holdout is None or last is None:
        what = "the challenger's holdout days" if holdout is None else f"the champion {champion_tag}'s training window"
        return (
            WINDOW_UNKNOWN,
            f"refused: {what} unknown ({known}): cannot show the champion never trained on the holdout; {advice}",
        )
    start, end = holdout
    if end < (first or end) or start > last:
        return None
    overlap = f"{max(start, first or start)}..{min(end, last)}"
    return CHAMPION_TRAINED_ON_HOLDOUT, (
        f"refused: champion {champion_tag} trained on the holdout day(s) {overlap} (training window "
        f"{first or 'unknown'}..{last}, {known}; holdout {start}..{end}): the comparison would favour it; {advice}"
    )


def headline_metric(objective: str) -> str:
    """What the gate compares: NDCG (graded engagement) for the ranker, revenue NDCG (price x purchase) for GMV.
    Slices always compare NDCG: a GMV model must not buy revenue with a collapse of engagement on a slice."""
    return "revenue_ndcg" if objective == "gmv" else "ndcg"


def _judge(
    settings: Settings, metrics: dict[str, float], baseline: str, metric: str = "ndcg"
) -> tuple[bool, list[str]]:
    """Pass or fail, with every reason, from the holdout metrics of ``challenger`` and ``baseline``."""
    gate, k = settings.training.gate, settings.training.ndcg_k
    challenger, reference = metrics[f"challenger_{metric}@{k}"], metrics[f"{baseline}_{metric}@{k}"]
    # With a champion the challenger must clear the margin; against popularity, beating it at all is the bar.
    margin = gate.margin if baseline == "champion" else 0.0
    ok = challenger > reference + margin
    reasons = [
        f"{metric}@{k} {challenger:.4f} vs {baseline} {reference:.4f} (needs > {reference + margin:.4f}): "
        + ("pass" if ok else "FAIL")
    ]
    slices = [
        key[len("slice_") : -len("_requests")]
        for key in metrics
        if key.startswith("slice_") and key.endswith("_requests")
    ]
    for name in slices:
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
    return ok, reasons


def _compare(
    settings: Settings, holdout_path: str, challenger: ModelBundle, baseline: str, baseline_score: Scorer, metric: str
) -> tuple[bool, list[str], dict[str, float]]:
    """Score the holdout file batch by batch with the challenger and the baseline, and judge (training.gate_holdout)."""
    scorers: dict[str, Scorer] = {"challenger": challenger.score, baseline: baseline_score}
    metrics = holdout_metrics(holdout_path, scorers, settings.training.ndcg_k)
    ok, reasons = _judge(settings, metrics, baseline, metric)
    return ok, reasons, metrics


def evaluate_challenger(settings: Settings, challenger_tag: str) -> Decision:
    """Decide, without changing anything, whether ``challenger_tag`` should replace the champion. The holdout is
    never loaded whole: its facts come from DuckDB, its metrics from batches of whole requests."""
    apply_runtime_env(settings)
    import bentoml

    challenger_model = bentoml.models.get(challenger_tag)
    card = challenger_model.info.metadata
    holdout_path = str(card["holdout_path"])
    champion_tag = registry.champion_tag(settings)
    if champion_tag == str(challenger_model.tag):
        return Decision(str(challenger_model.tag), champion_tag, False, ["already the champion"])
    facts = holdout_facts(settings, holdout_path)
    clicked, least = facts.requests_with_click, settings.training.gate.min_holdout_requests_with_click
    if clicked < least:
        reason = (
            f"refused: the holdout has {clicked} requests with a click, below the minimum {least} "
            "(training.gate.min_holdout_requests_with_click): its metrics are not reliable; the champion stays"
        )
        return Decision(str(challenger_model.tag), champion_tag, False, [reason], refusal=HOLDOUT_TOO_SMALL)
    challenger = load_bundle(challenger_model)
    metric = headline_metric(challenger.objective)
    if champion_tag is None:
        ok, reasons, metrics = _compare(settings, holdout_path, challenger, "popularity", _popularity, metric)
        reasons.insert(0, "no champion yet: the challenger must beat the popularity baseline")
        return Decision(str(challenger_model.tag), None, ok, reasons, _nan_to_none(metrics))

    champion_model = bentoml.models.get(champion_tag)
    refused = window_refusal(
        champion_tag, champion_model.info.metadata, champion_model.info.labels, holdout_window(card, facts)
    )
    if refused:
        return Decision(str(challenger_model.tag), champion_tag, False, [refused[1]], refusal=refused[0])
    champion = load_bundle(champion_model)
    missing = sorted(set(champion.feature_columns) - set(facts.columns))
    if missing:
        reasons = [
            f"the champion {champion_tag} cannot score the challenger's holdout (missing {missing}); "
            "promote by hand after review: make promote TAG=... FORCE=1"
        ]
        return Decision(str(challenger_model.tag), champion_tag, False, reasons)
    ok, reasons, metrics = _compare(settings, holdout_path, challenger, "champion", champion.score, metric)
    return Decision(str(challenger_model.tag), champion_tag, ok, reasons, _nan_to_none(metrics))


def _popularity(batch: pd.DataFrame) -> pd.Series:
    return batch[POPULARITY_FEATURE]


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


# ---- the online path: a model that won an experiment (quality/experiments/decision.py decided) -------------------
CHAMPION_CHANGED = "champion_changed_during_experiment"
NOT_SERVABLE = "model_not_servable"


def promote_online(
    settings: Settings,
    challenger_tag: str,
    won: bool,
    evidence: list[str],
    metrics: dict[str, Any],
    label: str,
    experiment_start: datetime | None = None,
    refusal: str | None = None,
) -> dict[str, Any]:
    """Promote ``challenger_tag`` on online evidence, through the same registry and decision records as
    :func:`promote`: the experiment replaces the offline comparison (it measured users, not a holdout), but the
    model must still load from the store, and the champion must be the one the control arm served (no promotion
    since ``experiment_start``). ``won`` False records a refusal (code ``refusal``) with ``evidence`` as its reasons.
    ``metrics``: the experiment's numbers, nested; recorded flat (``arm.metric.key``)."""
    apply_runtime_env(settings)
    import bentoml

    champion = registry.champion_tag(settings)
    reasons = list(evidence)
    try:
        tag = str(bentoml.models.get(challenger_tag).tag)
        load_bundle(bentoml.models.get(tag))
    except Exception as exc:
        tag, won, refusal = challenger_tag, False, NOT_SERVABLE
        reasons.append(f"refused: {challenger_tag} does not load from the model store ({type(exc).__name__}: {exc})")
    changed = [
        e
        for e in registry.read_registry(settings).get("events", [])
        if e.get("action") == "promote" and experiment_start and datetime.fromisoformat(e["at"]) >= experiment_start
    ]
    if won and champion == tag:
        won = False
        reasons.append("already the champion")
    elif won and changed:
        won, refusal = False, CHAMPION_CHANGED
        reasons.append(
            f"refused: the champion changed during the experiment ({changed[-1]['tag']} at {changed[-1]['at']}): "
            "the control arm did not serve today's champion; rerun the experiment"
        )
    decision = Decision(tag, champion, won, reasons, _flat(metrics), refusal=None if won else refusal)
    if won:
        registry.set_champion(settings, tag, reasons)
        log.info("online gate: PROMOTE %s over %s: %s", tag, champion, reasons[-1])
    elif champion != tag:
        registry.record_refusal(settings, tag, reasons)
    out = settings.home_dir / "models" / "decisions"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{label}__{tag.replace(':', '_')}.json"
    path.write_text(json.dumps(asdict(decision), indent=2, default=str))
    return {**asdict(decision), "decision_path": str(path), "serving": registry.champion_tag(settings)}


def _flat(numbers: dict[str, Any], prefix: str = "") -> dict[str, float | None]:
    """Nested numbers as one level of ``a.b.c`` keys; only numbers (None kept), other values left out."""
    flat: dict[str, float | None] = {}
    for key, value in numbers.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        elif value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
            flat[f"{prefix}{key}"] = None if value is None or not math.isfinite(value) else float(value)
    return flat
