"""The statistics of an online experiment, with kept libraries (tea-tasting; scipy for the interleaving test).

Input: one row per user and arm (the user's exposure and outcome totals during the experiment, and the same totals
over the pre-period, the CUPED covariates). Per treatment arm against the control (the first arm):
- CTR = clicks / impressions and purchases per request, ratios of per-user means (delta method);
- GMV per user, a mean;
each with CUPED on the user's pre-period value, a confidence interval and p-value; the sample-ratio-mismatch test
against the configured shares; the relative minimum detectable effect at 80% power for the arm's size.
Interleaving: per request the ranker whose items got more clicks wins; the share of B wins among decided requests
with a two-sided binomial test against 1/2.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import tea_tasting as tt
from scipy.stats import binomtest

OUTCOMES = ("requests", "impressions", "clicks", "purchases", "gmv")
PRE = "_pre"  # suffix of the pre-period columns
ALPHA = 0.05
POWER = 0.8


class AnalysisInputError(ValueError):
    """The per-user table cannot be analysed (missing columns, unknown arms); the message says what."""


@dataclass(frozen=True)
class MetricResult:
    metric: str
    control: float
    treatment: float
    effect: float
    rel_effect: float
    rel_ci_lower: float
    rel_ci_upper: float
    pvalue: float
    significant: bool
    rel_mde: float | None = None  # relative effect detectable at 80% power, alpha 5%, with these arm sizes


@dataclass(frozen=True)
class ArmComparison:
    control: str
    treatment: str
    users: dict[str, int]
    metrics: list[MetricResult]
    cuped: list[str] = field(default_factory=list)  # the metrics CUPED adjusted (those with a varying pre-period)


@dataclass(frozen=True)
class Analysis:
    experiment: str
    arms: dict[str, int]  # users per arm
    srm_pvalue: float
    srm_ok: bool
    comparisons: list[ArmComparison] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def metric(self, treatment: str, name: str) -> MetricResult:
        for comparison in self.comparisons:
            if comparison.treatment == treatment:
                return next(m for m in comparison.metrics if m.metric == name)
        raise KeyError(treatment)


def _metrics(cuped: bool | set[str], **power: Any) -> dict[str, Any]:
    """The metrics; ``cuped`` True adjusts each on its pre-period columns, a set only those whose pre-period columns
    are all in it (a constant covariate, e.g. no pre-period at all, makes CUPED divide by a zero variance: NaN)."""

    def covs(*names: str) -> list[str | None]:
        use = cuped if isinstance(cuped, bool) else all(n in cuped for n in names)
        return [f"{n}{PRE}" if use else None for n in names]

    return {
        "ctr": tt.RatioOfMeans("clicks", "impressions", *covs("clicks", "impressions"), **power),
        "purchases_per_request": tt.RatioOfMeans("purchases", "requests", *covs("purchases", "requests"), **power),
        "gmv_per_user": tt.Mean("gmv", *covs("gmv"), **power),
    }


def analyse(
    users: pd.DataFrame,
    experiment: str,
    shares: Mapping[str, float],
    cuped: bool = True,
    srm_alpha: float = 0.001,
    power: bool = True,
) -> Analysis:
    """Compare every arm of ``shares`` (first: the control) with the control on the per-user table ``users``
    (columns: arm, the OUTCOMES and, with ``cuped``, the same with the ``_pre`` suffix)."""
    needed = ["arm", *OUTCOMES, *([f"{c}{PRE}" for c in OUTCOMES] if cuped else [])]
    missing = [c for c in needed if c not in users.columns]
    if missing:
        raise AnalysisInputError(f"per-user table lacks columns {missing}")
    unknown = sorted(set(users["arm"]) - set(shares))
    if unknown:
        raise AnalysisInputError(f"arms {unknown} are not arms of {experiment} ({list(shares)})")
    arms = list(shares)
    control = arms[0]
    data = users[needed].copy()
    data[[c for c in needed if c != "arm"]] = data[[c for c in needed if c != "arm"]].fillna(0).astype(float)
    counts = {arm: int((data["arm"] == arm).sum()) for arm in arms}
    present = [arm for arm in arms if counts[arm]]
    srm_pvalue = 1.0
    if len(present) > 1:
        srm = tt.Experiment(srm=tt.SampleRatio({arm: shares[arm] for arm in present}), variant="arm")
        result = srm.analyze(data[data["arm"].isin(present)], control=control, all_variants=True)
        srm_pvalue = min(float(r["srm"].pvalue) for r in result.values())  # type: ignore[union-attr]
    comparisons = []
    for treatment in arms[1:]:
        if not counts[treatment] or not counts[control]:
            continue
        pair = data[data["arm"].isin([control, treatment])]
        # CUPED needs covariates that vary: with no pre-period (new users, a fresh service) a metric's pre columns
        # are constant and it is analysed unadjusted.
        adjusted = {c for c in OUTCOMES if pair[f"{c}{PRE}"].var() > 0} if cuped else set()
        result = tt.Experiment(_metrics(adjusted), variant="arm").analyze(pair, control=control)
        mde = _mde(pair[pair["arm"] == control], counts[control], counts[treatment], adjusted) if power else {}
        metrics = []
        for name, r in result.items():  # type: ignore[union-attr]
            metrics.append(
                MetricResult(
                    metric=name,
                    control=float(r.control),
                    treatment=float(r.treatment),
                    effect=float(r.effect_size),
                    rel_effect=float(r.rel_effect_size),
                    rel_ci_lower=float(r.rel_effect_size_ci_lower),
                    rel_ci_upper=float(r.rel_effect_size_ci_upper),
                    pvalue=float(r.pvalue),
                    significant=float(r.pvalue) < ALPHA,
                    rel_mde=mde.get(name),
                )
            )
        comparisons.append(
            ArmComparison(
                control,
                treatment,
                {control: counts[control], treatment: counts[treatment]},
                metrics,
                [name for name, metric in _metrics(adjusted).items() if metric.numer_covariate is not None],
            )
        )
    return Analysis(experiment, counts, srm_pvalue, srm_pvalue >= srm_alpha, comparisons)


def _mde(control: pd.DataFrame, n_control: int, n_treatment: int, cuped: bool | set[str]) -> dict[str, float]:
    """Relative MDE per metric at 80% power from the control's variance (tea-tasting's solve_power)."""
    if n_control < 2:
        return {}
    metrics = _metrics(cuped, alpha=ALPHA, power=POWER, ratio=n_treatment / n_control, n_obs=n_control + n_treatment)
    try:
        result = tt.Experiment(metrics, variant="arm").solve_power(control, parameter="rel_effect_size")
    except Exception:  # a degenerate control (no variance) has no MDE
        return {}
    return {str(row["metric"]): float(row["rel_effect_size"]) for row in result.to_dicts()}


# ---- interleaving ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InterleavingResult:
    requests: int
    wins_a: int
    wins_b: int
    ties: int
    share_b: float | None  # B wins / decided requests
    ci_lower: float | None
    ci_upper: float | None
    pvalue: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def interleaving_preference(winners: Iterable[str | None]) -> InterleavingResult:
    """Per request its winner ('A', 'B' or None for a tie): B's share of the decided requests, its 95% interval
    (Clopper-Pearson) and the two-sided binomial test of no preference."""
    winners = list(winners)
    a, b = winners.count("A"), winners.count("B")
    ties = len(winners) - a - b
    if a + b == 0:
        return InterleavingResult(len(winners), 0, 0, ties, None, None, None, None)
    test = binomtest(b, a + b, 0.5)
    ci = test.proportion_ci(confidence_level=1 - ALPHA)
    return InterleavingResult(len(winners), a, b, ties, b / (a + b), float(ci.low), float(ci.high), float(test.pvalue))
