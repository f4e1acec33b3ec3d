"""`make bench-serving BENCH_ARGS=--arms`: POST /rank latency at 500 candidates with an experiment's arms loaded.

Two services in turn, each with one experiment (serving/experiments.yaml format, in the bench home):
- A/B: control (the champion) vs an arm serving a second model, loaded beside it;
- interleaving: control vs an arm that team-drafts the champion's and the second model's lists (two scorings).
The second model is another model of the store, or the champion's candidate registered again under its own tag
(same size, so the same cost; a distinct bundle in memory). Users are picked per arm with the service's own
bucketing, and every answer is checked to come from the expected arm. Printed, never asserted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import yaml  # type: ignore[import-untyped]

from benchmarks.common import fmt_quantiles, line, quantiles_ms, serving, time_calls
from serving.experiments.assignment import arm_for
from serving.experiments.config import ExperimentsConfig

USERS_PER_ARM = 20


def second_model(settings: Any) -> str:
    """A model tag other than the champion's (registering the champion's candidate again if the store has none)."""
    import bentoml

    from shoprank.model_bundle import champion_tag
    from training.registry import register_candidate
    from training.train import candidate_dir

    champion = champion_tag(settings)
    others = [str(m.tag) for m in bentoml.models.list(settings.training.model_name) if str(m.tag) != champion]
    if others:
        return others[-1]
    return str(register_candidate(settings, candidate_dir(settings, settings.default_run_date))["tag"])


def _experiment(name: str, treatment: dict[str, Any]) -> dict[str, Any]:
    arms = [{"name": "control", "share": 0.5}, {"name": "treatment", "share": 0.5, **treatment}]
    return {"version": "bench", "experiments": [{"name": name, "layer": "model", "salt": f"{name}-salt", "arms": arms}]}


def _users_by_arm(declared: dict[str, Any], pool: list[str]) -> dict[str, list[str]]:
    experiment = ExperimentsConfig.model_validate(declared).experiments[0]
    by_arm: dict[str, list[str]] = {arm.name: [] for arm in experiment.arms}
    for user in pool:
        users = by_arm[arm_for(experiment, user).name]
        if len(users) < USERS_PER_ARM:
            users.append(user)
    return by_arm


def _time_arm(client: httpx.Client, users: list[str], arm: str, candidates: list[str], n: int) -> list[float]:
    bodies = [{"user_id": u, "candidate_ids": candidates, "k": 20} for u in users]
    for body in bodies:  # warm-up, and proof the user lands in the arm
        answer = client.post("/rank", json=body)
        answer.raise_for_status()
        if answer.json().get("arm") != arm:
            raise RuntimeError(f"user {body['user_id']} answered by arm {answer.json().get('arm')}, expected {arm}")
    calls = iter(range(n + 1))

    def call() -> None:
        client.post("/rank", json=bodies[next(calls) % len(bodies)]).raise_for_status()

    return time_calls(call, n)


def bench_arms(settings: Any, candidates: list[str], pool: list[str], n: int) -> dict[str, dict[str, list[float]]]:
    """/rank timings per arm, for the A/B and the interleaving experiment (two service starts)."""
    tag = second_model(settings)
    results = {}
    for name, treatment in (
        ("bench-ab", {"model_tag": tag}),
        ("bench-interleave", {"interleave": ["champion", tag]}),
    ):
        declared = _experiment(name, treatment)
        path = Path(settings.home_dir) / f"{name}.yaml"
        path.write_text(yaml.safe_dump(declared))
        by_arm = _users_by_arm(declared, pool)
        env = {"SHOPRANK_SERVING__EXPERIMENTS_PATH": str(path)}
        with serving(settings, env=env) as base, httpx.Client(base_url=base, timeout=30) as client:
            model = client.get("/model").json()
            if model.get("experiments_error"):
                raise RuntimeError(f"the service refused {path}: {model['experiments_error']}")
            results[name] = {arm: _time_arm(client, users, arm, candidates, n) for arm, users in by_arm.items()}
    return results


def print_arms(results: dict[str, dict[str, list[float]]], n_candidates: int) -> None:
    print(f"/rank with an experiment's arms loaded, {n_candidates} candidates given, k=20", flush=True)
    worst = 0.0
    for name, arms in results.items():
        for arm, timings in arms.items():
            line(f"{name}: {arm} (p50/p95/p99)", fmt_quantiles(timings))
            worst = max(worst, quantiles_ms(timings)[2])
    line("target: /rank p99 < 20 ms in every arm", "met" if worst < 20 else f"NOT met (worst p99 {worst:.1f} ms)")
