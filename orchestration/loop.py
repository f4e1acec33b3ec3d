"""The closed-loop marketplace: `shoprank loop --days 28 --policy NAME` (thin: the parts live in their stages).

1. Warm-up: the logging simulator writes the history window ending at ``settings.default_run_date`` and the daily
   pipeline runs on it (the same step functions as production: gates, dbt, Feast, training, the champion gate).
2. Each served day D after it: the simulated users' requests go to the policy (orchestration/loop_policies.py;
   for the service's policies, the RankingService's own /rank path in process), their clicks and purchases on the
   served slates become D's raw partitions (producers/served_day.py), and the daily pipeline runs on D: every step
   of ``pipeline.STEPS`` except ``simulate`` (the served day replaced it) and ``deploy`` (the in-process service
   reloads instead of being called over HTTP); ``train-cold-start-prior`` trains daily when the policy's rules use
   the prior. ``feast-apply`` runs at the warm-up only (the feature repo does not change within a run). train,
   train-preranker, register and promote run every ``loop.retrain_every_days`` days (production: every day;
   ``--retrain-every 0``: never, the warm-up's champion serves the whole run); on the other days the champion keeps
   serving while features, stock and the catalogue refresh daily.
3. Metrics per day and over the run (orchestration/loop_metrics.py) go to ``<home>/loop/<policy>/``.

The seed and sizes are the simulator's settings: two policies run in two homes face the same users, requests,
arrivals and restocks; only what they serve (and so what sells out and what the models learn) differs. The oracle
serves from the hidden truth and needs no pipeline.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from orchestration import pipeline
from orchestration.loop_metrics import day_items, summarize
from orchestration.loop_policies import POLICIES, SERVICE_POLICIES, oracle_server, service_server, write_policy_rules
from shoprank.settings import Settings, apply_runtime_env, get_settings

log = logging.getLogger(__name__)

RETRAIN_STEPS = ("train", "train-preranker", "register", "promote")
WARM_UP_ONLY = ("feast-apply",)
NOT_IN_LOOP = ("simulate", "deploy")


def configure(home: Path | None, rules_path: Path | None) -> Settings:
    """The process's settings for a loop: its home and rules file, no request logs (the simulator writes the raw
    events) and no background cache refresh (the loop reloads the service after each day's pipeline)."""
    if home is not None:
        os.environ["SHOPRANK_HOME"] = str(home)
    if rules_path is not None:
        os.environ["SHOPRANK_SERVING__RULES_PATH"] = str(rules_path)
    os.environ["SHOPRANK_SERVING__LOG_REQUESTS"] = "false"
    os.environ["SHOPRANK_SERVING__CACHE_REFRESH_SECONDS"] = "0"
    get_settings.cache_clear()
    settings = get_settings()
    settings.ensure_dirs()
    apply_runtime_env(settings)
    return settings


def daily_steps(day: date, retrain: bool, warm_up: bool, results: dict[str, Any] | None = None) -> dict[str, float]:
    """Run the day's pipeline steps (see the module docstring); returns seconds per step (and, into ``results``
    when given, each step's own result by name)."""
    timings: dict[str, float] = {}
    for name, step in pipeline.STEPS.items():
        if name in NOT_IN_LOOP or (name in WARM_UP_ONLY and not warm_up) or (name in RETRAIN_STEPS and not retrain):
            continue
        started = time.perf_counter()
        result = step(day)
        timings[name] = round(time.perf_counter() - started, 1)
        if results is not None:
            results[name] = result
    return timings


def retrains_on(day_number: int, retrain_every: int) -> bool:
    """Whether served day ``day_number`` (1-based) retrains: every ``retrain_every`` days; 0 never (the warm-up's
    champion serves the whole run)."""
    return retrain_every > 0 and day_number % retrain_every == 0


def cadence(retrain_every: int, days: int) -> str:
    """The run's retraining cadence in words, for its first log line and the bench's output. No pipeline runs after
    the last served day, so a cadence of ``days`` or more never retrains either: it says so."""
    if retrain_every == 0 or retrain_every >= days:
        why = "--retrain-every 0" if retrain_every == 0 else f"every {retrain_every} days >= {days} served days"
        return f"pipeline daily, no retraining ({why}: the warm-up's champion serves every day)"
    return f"pipeline daily, retraining every {retrain_every} day(s) (production: 1)"


def gate_line(decision: dict[str, Any] | None) -> str:
    """The champion gate's decision on a retraining day, for the day's log line: promoted or kept, and the
    challenger's and champion's holdout NDCG (the headline metric of training/gate.py)."""
    if not decision:
        return "gate: no decision"
    verdict = "PROMOTE" if decision.get("promoted") else "KEEP"
    metrics = decision.get("metrics") or {}
    headline = [k for k in metrics if k.startswith("challenger_") and "ndcg@" in k and not k.startswith("slice_")]
    parts = [f"gate {verdict} {decision.get('challenger')}"]
    key = min(headline, default=None)
    if key is not None:
        baseline = "champion" if decision.get("champion") else "popularity"
        other = metrics.get(key.replace("challenger_", f"{baseline}_", 1))
        mine = metrics.get(key)
        if mine is not None and other is not None:
            parts.append(f"holdout {key[len('challenger_') :]} {mine:.4f} vs {baseline} {other:.4f}")
    if decision.get("refusal"):
        parts.append(f"refused: {decision['refusal']}")
    elif not decision.get("promoted") and decision.get("reasons"):
        failed = [r for r in decision["reasons"] if "FAIL" in r]
        parts.append("; ".join(failed or decision["reasons"][:1]))
    return ", ".join(parts)


def run_loop(
    policy: str,
    days: int | None = None,
    retrain_every: int | None = None,
    home: Path | None = None,
    rules_overrides: dict | None = None,
    echo: Callable[[str], None] = print,
    name: str | None = None,
    warm_home: Path | None = None,
) -> dict[str, Any]:
    """Run ``policy`` for ``days`` served days after the warm-up; returns the run's summary (also written).

    ``rules_overrides`` ({section: {key: value}}) adjust the policy's rules file; ``name`` (default: the policy)
    names the run's output directory and its row in the comparison, for such a variant. ``warm_home``: start
    from a copy of the warm-up built there (orchestration/loop_home.py) instead of building it."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    started = time.perf_counter()
    settings = configure(home, None)
    days = days or settings.loop.days
    retrain_every = settings.loop.retrain_every_days if retrain_every is None else retrain_every
    if retrain_every < 0:
        raise ValueError(f"retrain_every is a number of days >= 0 (0: never), got {retrain_every}")
    name = name or policy
    out_dir = settings.loop_dir / name
    out_dir.mkdir(parents=True, exist_ok=True)
    if policy in SERVICE_POLICIES:
        rules_path = write_policy_rules(settings, policy, out_dir / "rules.yaml", rules_overrides)
        settings = configure(None, rules_path)
    warm = settings.default_run_date
    echo(f"loop {name} ({policy}): {days} served days after {warm}; {cadence(retrain_every, days)}")
    if warm_home is not None:
        from orchestration.loop_home import copy_warm_up

        copied = copy_warm_up(warm_home, settings.home_dir, service=policy in SERVICE_POLICIES)
        # Feast's registry names the warm home's marts: apply the repo again so materialize reads this home's.
        line = f"warm-up {warm}: copied from {warm_home} (built there in {copied['seconds']:.0f} s)"
        if policy in SERVICE_POLICIES:
            started_apply = time.perf_counter()
            pipeline.STEPS["feast-apply"](warm)
            line += f", feast-apply again {time.perf_counter() - started_apply:.0f} s"
        echo(line)
    else:
        pipeline.simulate(warm)
        if policy in SERVICE_POLICIES:
            timings = daily_steps(warm, retrain=True, warm_up=True)
            echo(f"warm-up {warm}: pipeline {sum(timings.values()):.0f} s")

    from producers.served_day import simulate_served_day

    service = None
    if policy in SERVICE_POLICIES:
        from serving.service import RankingService

        service = RankingService()
    k = settings.simulator.slate_size
    frames = []
    for n in range(1, days + 1):
        day = warm + timedelta(days=n)
        day_started = time.perf_counter()
        if service is not None:
            server = service_server(service, apply_rules=policy != "model-only", k=k)
        else:
            server = _oracle_for(settings, day, k)
        result = simulate_served_day(settings, day, server)
        served_s = time.perf_counter() - day_started
        frames.append(day_items(settings, day))
        purchases = result["events"]["purchase"]
        line = f"day {n:>2} {day}: ctr {result['ctr']:.4f}, purchases {purchases}, served {served_s:.0f} s"
        if service is not None and n < days:  # after the last served day no policy serves again: no pipeline
            retrain = retrains_on(n, retrain_every)
            results: dict[str, Any] = {}
            timings = daily_steps(day, retrain=retrain, warm_up=False, results=results)
            service.reload()
            line += f", pipeline {sum(timings.values()):.0f} s" + (" (retrained)" if retrain else "")
            line += " [" + ", ".join(f"{k} {v:.0f}" for k, v in timings.items() if v >= 1) + "]"
            if retrain:
                line += "; " + gate_line(results.get("promote"))
        echo(line)
        write_summary(settings, name, warm, n, retrain_every, None, pd.concat(frames))  # so far: a cut run counts
    rules_version = service.state.rules.version if service is not None and service.state.rules else None
    summary = write_summary(settings, name, warm, days, retrain_every, rules_version, pd.concat(frames))
    summary["wall_seconds"] = round(time.perf_counter() - started, 1)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    echo(f"loop {name}: cumulative GMV {summary['cumulative_gmv']:.0f} in {summary['wall_seconds']:.0f} s")
    return summary


def write_summary(
    settings: Settings,
    name: str,
    warm: date,
    days: int,
    retrain_every: int,
    rules_version: str | None,
    items: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The run's summary and per-day item rows, written under ``<home>/loop/<name>/``; without ``items`` they are
    read back from the served days' raw partitions (a run stopped early is summarized over the days it served)."""
    from producers.simulator import build_world

    if items is None:
        items = pd.concat([day_items(settings, warm + timedelta(days=n)) for n in range(1, days + 1)])
    out_dir = settings.loop_dir / name
    out_dir.mkdir(parents=True, exist_ok=True)
    items = items.reset_index(drop=True)
    items.to_parquet(out_dir / "items_by_day.parquet", index=False)
    last = warm + timedelta(days=days)
    summary = {
        "policy": name,
        "served_days": days,
        "first_day": (warm + timedelta(days=1)).isoformat(),
        "retrain_every_days": retrain_every,
        "rules_version": rules_version,
        **summarize(settings, build_world(settings, last), items, warm + timedelta(days=1), last),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _oracle_for(settings: Settings, day: date, k: int) -> Callable[[pd.DataFrame], list[list[str]]]:
    """The oracle reads the day's stock after restocking, so it is built when the day's inventory is written."""
    from producers.simulator import build_world

    world = build_world(settings, day)

    def serve(requests: pd.DataFrame) -> list[list[str]]:
        return oracle_server(settings, world, day, k)(requests)

    return serve


def parse_rule_settings(settings: list[str]) -> dict[str, dict[str, Any]]:
    """``["pacing.max_boost=0.3", ...]`` -> ``{"pacing": {"max_boost": 0.3}}`` (values read as YAML scalars)."""
    import yaml  # type: ignore[import-untyped]

    out: dict[str, dict[str, Any]] = {}
    for item in settings:
        key, sep, value = item.partition("=")
        section, dot, field = key.partition(".")
        if not sep or not dot or not section or not field:
            raise ValueError(f"a rules setting is SECTION.KEY=VALUE, got {item!r}")
        out.setdefault(section, {})[field] = yaml.safe_load(value)
    return out
