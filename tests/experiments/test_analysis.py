"""The experiment analysis on hand-made logs with a known answer: exposures and outcomes from the service's request
and events logs (written by its RequestLogger), CUPED covariates from the pre-period, the statistics, interleaving."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quality.experiments.analysis import analyse, interleaving_preference
from quality.experiments.exposure import exposures
from serving.request_log import RequestLogger
from shoprank.raw_contract import SCHEMAS

START = datetime(2026, 12, 1, tzinfo=UTC)
STOP = START + timedelta(days=7)


def _request(log: RequestLogger, request_id: str, user: str, arm: str, items: list[str], teams=None) -> None:
    ts = START + timedelta(hours=1)
    log.log(
        {
            "request_id": request_id,
            "request_ts": ts,
            "user_id": user,
            "experiment": "exp",
            "arm": arm,
            "assignments": json.dumps({"exp": arm}),
            "interleave_teams": json.dumps(teams) if teams else None,
        },
        [
            {"user_id": user, "item_id": item, "request_id": request_id, "position": p + 1, "event_ts": ts}
            for p, item in enumerate(items)
        ],
    )


def _event(kind: str, user: str, item: str, request_id: str | None, price: float | None = None, ts=None) -> dict:
    return {
        "event_id": f"{kind}-{user}-{item}-{request_id}",
        "event_ts": ts or START + timedelta(hours=2),
        "event_type": kind,
        "user_id": user,
        "item_id": item,
        "request_id": request_id,
        "price": price,
        "quantity": 1 if kind == "purchase" else None,
    }


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    write_logs(tmp_path / "logs", tmp_path / "raw" / "events")
    return tmp_path


def write_logs(logs_dir: Path, raw_events_dir: Path) -> None:
    """Hand-made logs: u1, u2 in control, u3, u4 in treat (interleaved), u5 in both."""
    log = RequestLogger(logs_dir, buffer_rows=10_000, flush_seconds=3600)
    items = ["i1", "i2", "i3", "i4"]
    _request(log, "r1", "u1", "control", items)
    _request(log, "r2", "u1", "control", items)
    _request(log, "r3", "u2", "control", items)
    _request(log, "r4", "u3", "treat", items, teams={"i1": "A", "i2": "B", "i3": "A", "i4": "B"})
    _request(log, "r5", "u4", "treat", items, teams={"i1": "B", "i2": "A", "i3": "B", "i4": "A"})
    _request(log, "r6", "u5", "control", items)  # u5 is seen in both arms: left out
    _request(log, "r7", "u5", "treat", items)
    _request(log, "r8", "u1", "control", items)
    log.log_events(
        [
            _event("click", "u1", "i1", "r1"),
            _event("click", "u3", "i2", "r4"),
            _event("click", "u3", "i4", "r4"),
            _event("purchase", "u3", "i2", "r4", price=30.0),
            _event("click", "u4", "i2", "r5"),
            _event("click", "u2", "i9", "unlogged"),  # not an exposed request
            _event("click", "u1", "i3", None, ts=START - timedelta(days=1)),  # pre-period
        ]
    )
    log.close()
    raw = raw_events_dir / "dt=2026-11-29"
    raw.mkdir(parents=True)
    pre = pd.DataFrame(
        [
            {**_event("impression", "u2", "i1", "old"), "event_ts": START - timedelta(days=2)},
            {**_event("purchase", "u2", "i1", "old", price=5.0), "event_ts": START - timedelta(days=2)},
        ],
        columns=SCHEMAS["events"].names,
    )
    pre["event_ts"] = pd.to_datetime(pre["event_ts"], utc=True)
    pre.to_parquet(raw / "part-0.parquet", index=False)


def test_exposures_and_outcomes_per_user_from_the_logs(logs: Path) -> None:
    import duckdb

    got = exposures(duckdb.connect(), logs / "logs", logs / "raw" / "events", "exp", START, STOP)
    users = got.users.set_index("user_id").sort_index()
    assert got.users_in_several_arms == 1 and "u5" not in users.index
    assert users["arm"].to_dict() == {"u1": "control", "u2": "control", "u3": "treat", "u4": "treat"}
    assert users["requests"].to_dict() == {"u1": 3, "u2": 1, "u3": 1, "u4": 1}
    assert users["impressions"].to_dict() == {"u1": 12, "u2": 4, "u3": 4, "u4": 4}
    assert users["clicks"].to_dict() == {"u1": 1, "u2": 0, "u3": 2, "u4": 1}
    assert users["purchases"].to_dict() == {"u1": 0, "u2": 0, "u3": 1, "u4": 0}
    assert users["gmv"].to_dict() == {"u1": 0, "u2": 0, "u3": 30.0, "u4": 0}
    # pre-period: u1's logged click the day before, u2's raw impression and purchase
    assert users["clicks_pre"].to_dict() == {"u1": 1, "u2": 0, "u3": 0, "u4": 0}
    assert users.loc["u2", ["impressions_pre", "purchases_pre", "gmv_pre"]].tolist() == [1, 1, 5.0]
    # interleaving: r4's clicks both went to B's items; r5's click to A's item
    winners = got.requests.set_index("request_id")["winner"].to_dict()
    assert winners == {"r4": "B", "r5": "A"}


def test_analysis_recovers_a_known_effect_with_cuped_and_flags_srm() -> None:
    rng = np.random.default_rng(7)
    n = 6000
    arm = np.where(np.arange(n) % 2 == 0, "control", "treat")
    skill = rng.gamma(2, 0.05, n)  # each user's own click propensity, seen in both periods (what CUPED uses)
    impressions_pre, impressions = rng.poisson(30, n) + 1, rng.poisson(30, n) + 1
    lift = np.where(arm == "treat", 1.2, 1.0)
    clicks = rng.binomial(impressions, np.clip(skill * lift, 0, 1))
    users = pd.DataFrame(
        {
            "arm": arm,
            "requests": impressions // 10 + 1,
            "impressions": impressions,
            "clicks": clicks,
            "purchases": rng.binomial(clicks, 0.2),
            "gmv": rng.binomial(clicks, 0.2) * 20.0,
            "requests_pre": impressions_pre // 10 + 1,
            "impressions_pre": impressions_pre,
            "clicks_pre": rng.binomial(impressions_pre, np.clip(skill, 0, 1)),
            "purchases_pre": 0,
            "gmv_pre": 0.0,
        }
    )
    shares = {"control": 0.5, "treat": 0.5}
    plain = analyse(users, "exp", shares, cuped=False).metric("treat", "ctr")
    cuped = analyse(users, "exp", shares).metric("treat", "ctr")
    # the true relative lift of CTR is 20%: both estimates cover it, CUPED's interval is narrower
    for result in (plain, cuped):
        assert result.significant and result.rel_ci_lower < 0.2 < result.rel_ci_upper
    assert (cuped.rel_ci_upper - cuped.rel_ci_lower) < 0.8 * (plain.rel_ci_upper - plain.rel_ci_lower)
    assert cuped.rel_mde is not None and 0 < cuped.rel_mde < 0.2
    # the plain CTR is the ratio of the arm's sums (delta method on per-user means)
    control = users[users["arm"] == "control"]
    assert plain.control == pytest.approx(control["clicks"].sum() / control["impressions"].sum())
    assert analyse(users, "exp", shares).srm_ok
    lopsided = analyse(users, "exp", {"control": 0.7, "treat": 0.3})  # 50/50 users where 70/30 was configured
    assert not lopsided.srm_ok and lopsided.srm_pvalue < 1e-6


def test_interleaving_preference_and_its_binomial_test() -> None:
    result = interleaving_preference(["B"] * 70 + ["A"] * 30 + [None] * 50)
    assert (result.wins_a, result.wins_b, result.ties, result.share_b) == (30, 70, 50, 0.7)
    assert result.pvalue is not None and result.pvalue < 0.001
    assert result.ci_lower is not None and result.ci_lower > 0.5
    assert interleaving_preference([None, None]).share_b is None


def test_without_a_pre_period_the_metrics_are_analysed_unadjusted() -> None:
    # a fresh service: no user has a pre-period, every covariate is 0; CUPED would divide by a zero variance
    rng = np.random.default_rng(11)
    n = 4000
    arm = np.where(np.arange(n) % 2 == 0, "control", "treat")
    impressions = rng.poisson(30, n) + 1
    clicks = rng.binomial(impressions, np.where(arm == "treat", 0.12, 0.10))
    users = pd.DataFrame({"arm": arm, "requests": impressions // 10 + 1, "impressions": impressions, "clicks": clicks})
    users["purchases"] = rng.binomial(clicks, 0.2)
    users["gmv"] = users["purchases"] * 20.0
    for column in ("requests", "impressions", "clicks", "purchases", "gmv"):
        users[f"{column}_pre"] = 0
    result = analyse(users, "exp", {"control": 0.5, "treat": 0.5})
    ctr = result.metric("treat", "ctr")
    assert np.isfinite([ctr.rel_effect, ctr.rel_ci_lower, ctr.rel_ci_upper, ctr.pvalue]).all()
    assert ctr.significant and ctr.rel_ci_lower < 0.2 < ctr.rel_ci_upper  # the true lift is +20%
    assert result.comparisons[0].cuped == []
