"""`make bench-serving BENCH_ARGS=--funnel`: POST /rank with the service's own retrieval, today's path against the
funnel, each on its own `shoprank serve` of the bench home.

- today: ``recall.prerank`` off, ``serving.default_candidate_count`` retrieved, all ranked by the final ranker;
- funnel: ``recall.prerank_candidates`` retrieved (capped by the catalogue), the pre-ranker keeps
  ``recall.prerank_keep`` for the final ranker.
Feed requests (k=20, rules on) cycling over the home's users; p50/p95/p99 over HTTP, the server's CPU time per request
(user + system of its process tree: steadier than wall times on a shared machine), and each stage's mean time and
candidate count as the service's /metrics report them. The pre-ranker is trained first if the home has none.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx

from benchmarks.bench_serving_arms import _cpu_seconds, _server
from benchmarks.common import fmt_quantiles, line, quantiles_ms, time_calls


def _ensure_preranker(settings: Any) -> None:
    from shoprank.prerank import current_version

    if current_version(settings.preranker_dir) is None:
        from training.preranker import train_preranker

        print("bench home has no pre-ranker: training it", flush=True)
        train_preranker(settings, settings.default_run_date)


def _stages(metrics: str) -> dict[str, tuple[float, float]]:
    """Per stage: (mean ms per request, mean candidates per request) from the service's /metrics."""
    out = {}
    for stage in ("retrieve", "prerank", "rank"):
        total = _sample(metrics, "shoprank_funnel_stage_seconds_sum", stage)
        count = _sample(metrics, "shoprank_funnel_stage_seconds_count", stage)
        if total and count and float(count.group(1)):
            out[stage] = (float(total.group(1)) / float(count.group(1)) * 1000, float(count.group(1)))
    return out


def _sample(metrics: str, name: str, stage: str) -> re.Match[str] | None:
    return re.search(rf'^{name}\{{[^}}]*stage="{stage}"[^}}]*\}} (\S+)$', metrics, re.M)


def _candidates(metrics: str, stage: str) -> float:
    found = _sample(metrics, "shoprank_funnel_candidates_total", stage)
    return float(found.group(1)) if found else 0.0


def _caller(client: httpx.Client, users: list[str]) -> Callable[[], None]:
    """A feed /rank call for the next user in turn."""
    turn = iter(range(10**9))

    def call() -> None:
        user = users[next(turn) % len(users)]
        client.post("/rank", json={"user_id": user, "k": 20}).raise_for_status()

    return call


def bench_funnel(settings: Any, users: list[str], n: int) -> dict[str, dict[str, Any]]:
    _ensure_preranker(settings)
    cfg = settings.recall
    modes = {
        "today": {"SHOPRANK_RECALL__PRERANK": "false"},
        "funnel": {
            "SHOPRANK_RECALL__PRERANK": "true",
            "SHOPRANK_RECALL__PRERANK_CANDIDATES": str(cfg.prerank_candidates),
            "SHOPRANK_RECALL__PRERANK_KEEP": str(cfg.prerank_keep),
        },
    }
    results: dict[str, dict[str, Any]] = {}
    for mode, env in modes.items():
        with (
            _server(settings, env={**env, "SHOPRANK_SERVING__CACHE_REFRESH_SECONDS": "0"}) as (base, server),
            httpx.Client(base_url=base, timeout=30) as client,
        ):
            call = _caller(client, users)
            for _ in range(20):  # warm the server's code paths
                call()
            cpu = _cpu_seconds(server)
            timings = time_calls(call, n)
            cpu = _cpu_seconds(server) - cpu
            metrics = client.get("/metrics").text
        calls = n + 21
        results[mode] = {
            "timings": timings,
            "cpu_ms": cpu / (n + 1) * 1000,  # the server's process tree, per timed call (+ time_calls' warm-up)
            "stages": _stages(metrics),
            "retrieved": _candidates(metrics, "retrieved") / calls,
            "ranked": _candidates(metrics, "ranked") / calls,
        }
    return results


def print_funnel(results: dict[str, dict[str, Any]], settings: Any) -> None:
    cfg = settings.recall
    print(
        f"funnel: today {settings.serving.default_candidate_count} retrieved vs {cfg.prerank_candidates} retrieved "
        f"-> pre-ranked to {cfg.prerank_keep} (feed, k=20, rules on)",
        flush=True,
    )
    for mode, result in results.items():
        line(
            f"POST /rank {mode}: {result['retrieved']:.0f} retrieved, {result['ranked']:.0f} ranked (p50/p95/p99)",
            fmt_quantiles(result["timings"]),
        )
        stages = ", ".join(f"{stage} {ms:.2f} ms" for stage, (ms, _) in result["stages"].items())
        line("  mean time per stage (service /metrics)", stages)
        line("  server CPU per request (its process tree)", f"{result['cpu_ms']:.1f} CPU-ms")
        target = 25 if mode == "funnel" else 20
        p99 = quantiles_ms(result["timings"])[2]
        line(f"  target: p99 < {target} ms", "met" if p99 < target else "NOT met")
