"""The online decision rule: does a treatment arm win clearly enough to ship, and why (or why not).

It reads an experiment's analysis as the report records it (``ExperimentReport.to_dict()``, the daily report's
JSON) and applies settings.training.gate.online, in this order (the first failure of the experiment as a whole
ends the decision; per arm every check is reported):
1. there is an analysis with a treatment arm;
2. the split is sound: no sample ratio mismatch, few users seen in several arms;
3. per treatment arm: enough users in both arms; enough power (the primary metric's relative MDE at 80% power is
   at most ``max_rel_mde``); the primary metric (GMV per user) significantly better at ``alpha``; no guardrail
   metric (CTR, purchases per request) significantly worse; serving guardrails held (p99 latency at most
   ``max_latency_p99_ratio`` times the control's, degraded share at most ``max_degraded_share_increase`` above it).
The winner is the passing arm with the largest relative gain on the primary metric. Which model the arm serves and
how it reaches the registry is the caller's business (orchestration/experiments.py, training/gate.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from shoprank.settings import OnlineGateSettings

# Refusal codes (Verdict.refusal), the first check that failed.
NO_DATA = "no_data"
SAMPLE_RATIO_MISMATCH = "sample_ratio_mismatch"
MIXED_ASSIGNMENT = "users_in_several_arms"
NO_WINNER = "no_arm_passes"


@dataclass
class Verdict:
    experiment: str
    ship: bool
    arm: str | None  # the winning arm (None: keep the control)
    control: str | None
    reasons: list[str]
    refusal: str | None = None
    # per arm: the failed checks' codes (empty: passed)
    failed: dict[str, list[str]] = field(default_factory=dict)
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _refuse(experiment: str, control: str | None, code: str, reason: str, numbers: dict[str, Any]) -> Verdict:
    return Verdict(experiment, False, None, control, [f"refused: {reason}"], code, numbers=numbers)


def _guardrail_row(guardrails: list[dict[str, Any]], arm: str) -> dict[str, Any] | None:
    return next((row for row in guardrails if row.get("arm") == arm), None)


def _serving_checks(
    rule: OnlineGateSettings, guardrails: list[dict[str, Any]], control: str, arm: str
) -> list[tuple[str, bool, str]]:
    mine, theirs = _guardrail_row(guardrails, arm), _guardrail_row(guardrails, control)
    if mine is None or theirs is None:
        return [("serving_guardrails_missing", False, "serving guardrails: no requests-log rows for both arms")]
    limit = theirs["latency_p99_ms"] * rule.max_latency_p99_ratio
    degraded_limit = theirs["degraded_share"] + rule.max_degraded_share_increase
    return [
        (
            "latency_p99",
            mine["latency_p99_ms"] <= limit,
            f"p99 latency {mine['latency_p99_ms']:.1f} ms vs control {theirs['latency_p99_ms']:.1f} ms "
            f"(limit {limit:.1f} ms)",
        ),
        (
            "degraded_share",
            mine["degraded_share"] <= degraded_limit,
            f"degraded share {mine['degraded_share']:.3f} vs control {theirs['degraded_share']:.3f} "
            f"(limit {degraded_limit:.3f})",
        ),
    ]


def _arm_checks(
    rule: OnlineGateSettings, comparison: dict[str, Any], guardrails: list[dict[str, Any]]
) -> list[tuple[str, bool, str]]:
    """(code, passed, what was compared) for one treatment arm against the control."""
    control, arm = comparison["control"], comparison["treatment"]
    metrics = {m["metric"]: m for m in comparison["metrics"]}
    primary = metrics[rule.primary_metric]
    fewest = min(comparison["users"].values())
    mde = primary.get("rel_mde")
    checks = [
        (
            "too_few_users",
            fewest >= rule.min_users_per_arm,
            f"users {comparison['users']} (at least {rule.min_users_per_arm} per arm)",
        ),
        (
            "underpowered",
            mde is not None and math.isfinite(mde) and mde <= rule.max_rel_mde,
            f"{rule.primary_metric} MDE at 80% power {'unknown' if mde is None else f'{mde:.1%}'} "
            f"(at most {rule.max_rel_mde:.0%})",
        ),
        (
            "primary_not_better",
            primary["pvalue"] < rule.alpha and primary["effect"] > 0,
            f"{rule.primary_metric} {primary['rel_effect']:+.1%} [{primary['rel_ci_lower']:+.1%}, "
            f"{primary['rel_ci_upper']:+.1%}], p = {primary['pvalue']:.3g} (needs better at alpha {rule.alpha})",
        ),
    ]
    for name in rule.guardrail_metrics:
        m = metrics[name]
        broken = m["pvalue"] < rule.alpha and m["effect"] < 0
        checks.append(
            (f"guardrail_{name}", not broken, f"guardrail {name} {m['rel_effect']:+.1%}, p = {m['pvalue']:.3g}")
        )
    return checks + _serving_checks(rule, guardrails, control, arm)


def decide(report: dict[str, Any], rule: OnlineGateSettings) -> Verdict:
    """The verdict on one experiment's recorded analysis (``ExperimentReport.to_dict()``)."""
    name, analysis = report["name"], report.get("analysis")
    comparisons = (analysis or {}).get("comparisons") or []
    control = comparisons[0]["control"] if comparisons else None
    numbers: dict[str, Any] = {"window": report.get("window")}
    if not comparisons:
        return _refuse(name, control, NO_DATA, "no analysis with a treatment arm yet", numbers)
    assert analysis is not None
    users = sum(analysis["arms"].values())
    several = report.get("users_in_several_arms", 0)
    numbers.update(users=analysis["arms"], srm_pvalue=analysis["srm_pvalue"], users_in_several_arms=several)
    if not analysis["srm_ok"]:
        reason = (
            f"sample ratio mismatch (p = {analysis['srm_pvalue']:.2g}, users {analysis['arms']}): the split is broken"
        )
        return _refuse(name, control, SAMPLE_RATIO_MISMATCH, reason, numbers)
    if users and several / (users + several) > rule.max_users_in_several_arms_share:
        reason = f"{several} users were seen in several arms (the split changed mid-experiment)"
        return _refuse(name, control, MIXED_ASSIGNMENT, reason, numbers)
    reasons = [f"split sound: SRM p = {analysis['srm_pvalue']:.3g}, {several} users in several arms"]
    failed: dict[str, list[str]] = {}
    winners: list[tuple[float, str]] = []
    guardrails = report.get("guardrails") or []
    for comparison in comparisons:
        arm = comparison["treatment"]
        checks = _arm_checks(rule, comparison, guardrails)
        failed[arm] = [code for code, ok, _ in checks if not ok]
        reasons += [f"{arm}: {what}: {'pass' if ok else 'FAIL'}" for _, ok, what in checks]
        numbers[arm] = {
            m["metric"]: {k: m[k] for k in ("rel_effect", "rel_ci_lower", "rel_ci_upper", "pvalue", "rel_mde")}
            for m in comparison["metrics"]
        }
        if not failed[arm]:
            primary = next(m for m in comparison["metrics"] if m["metric"] == rule.primary_metric)
            winners.append((primary["rel_effect"], arm))
    if not winners:
        codes = sorted({code for codes in failed.values() for code in codes})
        reasons.append(f"refused: no arm passes every check (failed: {', '.join(codes)}); keep {control}")
        return Verdict(name, False, None, control, reasons, NO_WINNER, failed, numbers)
    winner = max(winners)[1]
    reasons.append(f"ship {winner}: {rule.primary_metric} significantly better, no guardrail broken, split sound")
    return Verdict(name, True, winner, control, reasons, None, failed, numbers)
