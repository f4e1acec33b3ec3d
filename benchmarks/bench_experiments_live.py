"""`make bench-experiments BENCH_EXPERIMENTS_ARGS="--live 6000"`: champion vs popularity and ranker_v1 vs ranker_v3
through the live service.

In the bench home (var/bench; the pipeline runs first when it has no model): the champion is the daily pipeline's
ranker_v3 model; a ranker_v1 model is trained on the same day and registered beside it (once). One experiment with
four arms runs in `shoprank serve`: ``v3`` (the champion, the control), ``v1``, ``pop`` (``model_tag: popularity``:
the popularity order served as a model) and ``tdi`` (team-draft interleaving of v1 as A and v3 as B).
orchestration/experiment_replay.py drives simulated users through /rank and reports their simulated clicks and
purchases to POST /events; the experiments analysis reads what the service logged (dbt's views when built, else the
logs). Printed: per arm the clicks the simulator's truth expects (no draw noise: do the rankers differ at all?),
(b) popularity vs the champion and v1 vs v3 per metric (direction), (c) the requests an A/B test and interleaving
need for 80% power, from this live pilot. Bounded by the request count. Printed, never asserted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml  # type: ignore[import-untyped]
from scipy.stats import norm

from benchmarks.common import bench_settings, has_model, run_pipeline, serving


def _v1_model(settings: Any) -> str:
    """A ranker_v1 model of the bench day (trained and registered once; its tag is kept in the bench home)."""
    kept = Path(settings.home_dir) / "bench-ranker-v1.json"
    if kept.exists():
        return str(json.loads(kept.read_text())["tag"])
    from training.registry import register_candidate
    from training.train import candidate_dir, train_ranker

    v1 = settings.model_copy(deep=True)
    v1.training.feature_service = "ranker_v1"
    train_ranker(v1, v1.default_run_date)
    tag = str(register_candidate(v1, candidate_dir(v1, v1.default_run_date))["tag"])
    kept.write_text(json.dumps({"tag": tag}))
    return tag


def live(n_requests: int, seed: int = 0) -> dict[str, Any]:
    from shoprank.model_bundle import champion_tag

    settings = bench_settings()
    if not has_model(settings):
        from producers.simulator import simulate

        simulate(settings, settings.default_run_date)
        run_pipeline(settings)
    v1, v3 = _v1_model(settings), champion_tag(settings)
    arms = [
        {"name": "v3", "share": 0.25, "model_tag": "champion"},
        {"name": "v1", "share": 0.25, "model_tag": v1},
        {"name": "pop", "share": 0.25, "model_tag": "popularity"},
        {"name": "tdi", "share": 0.25, "interleave": [v1, "champion"]},
    ]
    result, mine, source = _run(settings, f"bench-live-{seed}", arms, n_requests, seed)
    out = {"v1": v1, "v3": v3, "result": result, "report": mine, "exposures_from": source}
    # interleaving popularity (A) with the champion (B), a known large difference: a second service start (the
    # analysis reads one interleaving per experiment), its own request ids (seed + 1000)
    arms = [
        {"name": "v3", "share": 0.5, "model_tag": "champion"},
        {"name": "tdi-pop", "share": 0.5, "interleave": ["popularity", "champion"]},
    ]
    _, out["pop_report"], _ = _run(settings, f"bench-live-pop-{seed}", arms, n_requests // 4, seed + 1000)
    # kept beside the report: the figures can be printed again without replaying
    (Path(settings.home_dir) / f"bench-live-{seed}.json").write_text(json.dumps(out, indent=1, default=str))
    return out


def _run(
    settings: Any, name: str, arms: list[dict[str, Any]], n_requests: int, seed: int
) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """One experiment in `shoprank serve`, simulated users replayed through it, analysed from the service's logs."""
    from orchestration.experiment_replay import replay_experiments

    path = Path(settings.home_dir) / "bench-live-experiments.yaml"
    experiment = {"name": name, "layer": "model", "salt": name, "arms": arms}
    path.write_text(yaml.safe_dump({"version": "bench-live", "experiments": [experiment]}))
    settings.serving.experiments_path = path
    env = {"SHOPRANK_SERVING__EXPERIMENTS_PATH": str(path), "SHOPRANK_SERVING__LOG_FLUSH_SECONDS": "1"}
    settings.serving.log_flush_seconds = 1.0
    with serving(settings, env=env) as url:
        result = replay_experiments(settings, url, n_requests=n_requests, k=20, seed=seed)
    report = json.loads(Path(result["report"]).with_suffix(".json").read_text())
    mine = next(e for e in report["experiments"] if e["name"] == name)
    return result, mine, report.get("exposures_from")


def _metric_lines(comparison: dict[str, Any], control: str, treatment: str) -> None:
    for m in comparison["metrics"]:
        print(
            f"    {m['metric']:<22} {control} {m['control']:8.4f}  {treatment} {m['treatment']:8.4f}  "
            f"{m['rel_effect']:+7.1%} [{m['rel_ci_lower']:+.1%}, {m['rel_ci_upper']:+.1%}]  p={m['pvalue']:.2g}"
        )


def _truth(driven: dict[str, Any]) -> None:
    """What the simulator's truth expects per arm and per interleaving team (no draw noise)."""
    print("    truth, expected clicks per request (no draw noise):")
    for arm, t in sorted(driven["per_arm"].items()):
        print(
            f"      {arm:<5} {t.get('expected_clicks', 0) / t['requests']:.4f} expected, "
            f"{t.get('clicks', 0) / t['requests']:.4f} drawn ({t['requests']} requests)"
        )
    t = driven["per_arm"].get("tdi")
    if t and t.get("team_A_items") and t.get("team_B_items"):
        a, b = t["team_A_expected_clicks"], t["team_B_expected_clicks"]
        drawn = t.get("team_A_clicks", 0) + t.get("team_B_clicks", 0)
        print(
            f"      tdi teams: v1 (A) {t['team_A_items']:.0f} items, click probability "
            f"{t['team_A_click_probability'] / t['team_A_items']:.4f}; v3 (B) {t['team_B_items']:.0f} items, "
            f"{t['team_B_click_probability'] / t['team_B_items']:.4f}; v3's share of credited clicks: expected "
            f"{b / (a + b):.1%}, drawn {t.get('team_B_clicks', 0) / drawn if drawn else float('nan'):.1%}"
        )


def print_live(out: dict[str, Any], n_requests: int) -> None:
    report, analysis = out["report"], out["report"]["analysis"]
    print(f"\nLIVE (through `shoprank serve`, {n_requests} requests; exposures from {out['exposures_from']}):")
    print(f"    models: v3 {out['v3']} (champion, control), v1 {out['v1']}; users per arm {analysis['arms']}")
    _truth(out["result"]["driven"])
    comparisons = {c["treatment"]: c for c in analysis["comparisons"]}
    print(f"(b) A/B arms vs the champion (SRM p = {analysis['srm_pvalue']:.2f}); popularity vs v3:")
    _metric_lines(comparisons["pop"], "v3", "pop")
    print("    v1 vs v3:")
    _metric_lines(comparisons["v1"], "v3", "v1")
    # (c) two-sided: the requests each test needs to detect, at 80% power, the difference it measured (whichever
    # direction), and for the A/B test also the truth's own CTR difference (expected clicks, no draw noise)
    z = norm.ppf(0.975) + norm.ppf(0.8)
    ctr = next(m for m in comparisons["v1"]["metrics"] if m["metric"] == "ctr")
    requests_ab = sum(row["requests"] for row in report["guardrails"] if row["arm"] in ("v1", "v3"))
    se = (ctr["rel_ci_upper"] - ctr["rel_ci_lower"]) / (2 * norm.ppf(0.975))
    ab_needed = requests_ab * (z * se / ctr["rel_effect"]) ** 2 if ctr["rel_effect"] else float("inf")
    arms = out["result"]["driven"]["per_arm"]
    truth = {a: arms[a]["expected_clicks"] / arms[a]["impressions"] for a in ("v1", "v3")}
    truth_effect = truth["v1"] / truth["v3"] - 1
    ab_truth = requests_ab * (z * se / truth_effect) ** 2 if truth_effect else float("inf")
    tdi = report["interleaving"]
    print("(c) requests for 80% power to tell v1 from v3 (two-sided), from this pilot:")
    print(
        f"    A/B: v1 CTR {ctr['rel_effect']:+.1%} vs v3 (se {se:.1%}) on {requests_ab} requests: ~{ab_needed:,.0f}; "
        f"at the truth's CTR difference ({truth_effect:+.2%}): ~{ab_truth:,.0f}"
    )
    if not tdi or tdi["share_b"] is None:
        print("    interleaving: no decided request (no click credited to either team)")
        return
    decided = (tdi["wins_a"] + tdi["wins_b"]) / tdi["requests"]
    p = tdi["share_b"]
    n_decided = (
        ((norm.ppf(0.975) * 0.5 + norm.ppf(0.8) * np.sqrt(p * (1 - p))) / (p - 0.5)) ** 2 if p != 0.5 else np.inf
    )
    tdi_needed = n_decided / decided
    print(
        f"    interleaving: v3 preferred in {p:.1%} of {tdi['wins_a'] + tdi['wins_b']} decided requests "
        f"({decided:.0%} of {tdi['requests']} decided, p={tdi['pvalue']:.2g}, "
        f"{'v3' if p > 0.5 else 'v1'} ahead): ~{tdi_needed:,.0f} requests"
    )
    if np.isfinite(ab_needed) and np.isfinite(tdi_needed):
        agree = (ctr["rel_effect"] < 0) == (p > 0.5)
        print(
            f"    interleaving needs {ab_needed / tdi_needed:,.0f}x fewer requests (live; the two tests "
            f"{'agree' if agree else 'disagree'} on the direction)"
        )
    _popularity_power(out, z)


def _interleaving_needed(tdi: dict[str, Any]) -> tuple[float, float, float]:
    """(share of B among decided requests, decided share, requests for 80% power of the two-sided binomial test)."""
    decided = (tdi["wins_a"] + tdi["wins_b"]) / tdi["requests"]
    p = tdi["share_b"]
    if p == 0.5:
        return p, decided, float("inf")
    n_decided = ((norm.ppf(0.975) * 0.5 + norm.ppf(0.8) * np.sqrt(p * (1 - p))) / (p - 0.5)) ** 2
    return p, decided, n_decided / decided


def _popularity_power(out: dict[str, Any], z: float) -> None:
    """(c) for a known large difference: the champion vs popularity, A/B (the main run's arms) vs interleaving."""
    tdi = (out.get("pop_report") or {}).get("interleaving")
    if not tdi or tdi["share_b"] is None:
        return
    comparison = next(c for c in out["report"]["analysis"]["comparisons"] if c["treatment"] == "pop")
    ctr = next(m for m in comparison["metrics"] if m["metric"] == "ctr")
    requests_ab = sum(row["requests"] for row in out["report"]["guardrails"] if row["arm"] in ("pop", "v3"))
    se = (ctr["rel_ci_upper"] - ctr["rel_ci_lower"]) / (2 * norm.ppf(0.975))
    ab_needed = requests_ab * (z * se / ctr["rel_effect"]) ** 2
    p, decided, tdi_needed = _interleaving_needed(tdi)
    print("(c) champion vs popularity, a known large difference, requests for 80% power:")
    print(f"    A/B: pop CTR {ctr['rel_effect']:+.1%} vs v3 (se {se:.1%}) on {requests_ab} requests: ~{ab_needed:,.0f}")
    print(
        f"    interleaving (second run, popularity A vs champion B): v3 preferred in {p:.1%} of "
        f"{tdi['wins_a'] + tdi['wins_b']} decided requests ({decided:.0%} of {tdi['requests']} decided, "
        f"p={tdi['pvalue']:.2g}): ~{tdi_needed:,.1f} requests"
    )
    print(f"    interleaving needs {ab_needed / tdi_needed:.1f}x fewer requests (live)")
