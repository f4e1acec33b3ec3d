"""`make bench-experiments BENCH_EXPERIMENTS_ARGS="--live 1500"`: ranker_v1 vs ranker_v3 through the live service.

In the bench home (var/bench; the pipeline runs first when it has no model): the champion is the daily pipeline's
ranker_v3 model; a ranker_v1 model is trained on the same day and registered beside it (once). One experiment with
three arms runs in `shoprank serve`: ``v1`` (the control), ``v3`` (the champion), ``tdi`` (team-draft interleaving
of v1 and v3). orchestration/experiment_replay.py drives simulated users through /rank and reports their simulated
clicks and purchases to POST /events; the experiments analysis reads what the service logged (dbt's views when
built, else the logs). Printed: (b) v3 vs v1 per metric (direction), (c) the requests an A/B test and interleaving
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
    from orchestration.experiment_replay import replay_experiments
    from shoprank.model_bundle import champion_tag

    settings = bench_settings()
    if not has_model(settings):
        from producers.simulator import simulate

        simulate(settings, settings.default_run_date)
        run_pipeline(settings)
    v1, v3 = _v1_model(settings), champion_tag(settings)
    path = Path(settings.home_dir) / "bench-live-experiments.yaml"
    arms = [
        {"name": "v1", "share": 0.34, "model_tag": v1},
        {"name": "v3", "share": 0.33, "model_tag": "champion"},
        {"name": "tdi", "share": 0.33, "interleave": [v1, "champion"]},
    ]
    experiment = {"name": f"bench-live-{seed}", "layer": "model", "salt": f"bench-live-{seed}", "arms": arms}
    path.write_text(yaml.safe_dump({"version": "bench-live", "experiments": [experiment]}))
    settings.serving.experiments_path = path
    env = {"SHOPRANK_SERVING__EXPERIMENTS_PATH": str(path), "SHOPRANK_SERVING__LOG_FLUSH_SECONDS": "1"}
    settings.serving.log_flush_seconds = 1.0
    with serving(settings, env=env) as url:
        result = replay_experiments(settings, url, n_requests=n_requests, k=20, seed=seed)
    report = json.loads(Path(result["report"]).with_suffix(".json").read_text())
    mine = next(e for e in report["experiments"] if e["name"] == experiment["name"])
    return {"v1": v1, "v3": v3, "result": result, "report": mine, "exposures_from": report.get("exposures_from")}


def print_live(out: dict[str, Any], n_requests: int) -> None:
    report, analysis = out["report"], out["report"]["analysis"]
    print(f"\nLIVE (through `shoprank serve`, {n_requests} requests; exposures from {out['exposures_from']}):")
    print(f"    models: v1 {out['v1']}, v3 {out['v3']} (champion); users per arm {analysis['arms']}")
    comparison = next(c for c in analysis["comparisons"] if c["treatment"] == "v3")
    print(f"(b) v3 vs v1, A/B arms (SRM p = {analysis['srm_pvalue']:.2f}):")
    for m in comparison["metrics"]:
        print(
            f"    {m['metric']:<22} v1 {m['control']:8.4f}  v3 {m['treatment']:8.4f}  {m['rel_effect']:+7.1%} "
            f"[{m['rel_ci_lower']:+.1%}, {m['rel_ci_upper']:+.1%}]  p={m['pvalue']:.2g}"
        )
    z = norm.ppf(0.975) + norm.ppf(0.8)
    ctr = next(m for m in comparison["metrics"] if m["metric"] == "ctr")
    requests_ab = sum(row["requests"] for row in report["guardrails"] if row["arm"] in ("v1", "v3"))
    se = (ctr["rel_ci_upper"] - ctr["rel_ci_lower"]) / (2 * norm.ppf(0.975))
    ab_needed = requests_ab * (z * se / ctr["rel_effect"]) ** 2 if ctr["rel_effect"] > 0 else float("inf")
    tdi = report["interleaving"]
    print("(c) requests for 80% power, from this pilot:")
    print(f"    A/B: CTR {ctr['rel_effect']:+.1%} (se {se:.1%}) on {requests_ab} requests: ~{ab_needed:,.0f} requests")
    if not tdi or tdi["share_b"] is None:
        print("    interleaving: no decided request (no click credited to either team)")
        return
    decided = (tdi["wins_a"] + tdi["wins_b"]) / tdi["requests"]
    p = tdi["share_b"]
    n_decided = (
        ((norm.ppf(0.975) * 0.5 + norm.ppf(0.8) * np.sqrt(p * (1 - p))) / (p - 0.5)) ** 2 if p != 0.5 else np.inf
    )
    tdi_needed = n_decided / decided if p > 0.5 else float("inf")
    print(
        f"    interleaving: v3 preferred in {p:.1%} of {tdi['wins_a'] + tdi['wins_b']} decided requests "
        f"({decided:.0%} of {tdi['requests']} decided, p={tdi['pvalue']:.2g}): ~{tdi_needed:,.0f} requests"
    )
    if np.isfinite(ab_needed) and np.isfinite(tdi_needed):
        print(f"    interleaving needs {ab_needed / tdi_needed:.1f}x fewer requests (live)")
    else:
        print("    ratio undefined: v3 not ahead on this pilot (direction not detected)")
