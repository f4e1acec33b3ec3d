"""`make bench-serving BENCH_ARGS=--arms`: POST /rank latency at 500 candidates with an experiment's arms loaded.

Three services in turn (serving/experiments.yaml format, in the bench home):
- one model: no experiment, the champion alone (the baseline);
- A/B: control (the champion) vs an arm serving a second model, loaded beside it;
- interleaving: control vs an arm that team-drafts the champion's and the second model's lists (one online read of
  both models' features, one retrieval, two scorings and rules).
The second model is another model of the store (e.g. the live bench's ranker_v1, another feature service), or the
champion's candidate registered again under its own tag. Users are picked per arm with the service's own
bucketing, and every answer is checked to come from the expected arm. Per arm: wall time over HTTP, the handler's
own time (the requests log's latency_ms), and the server's CPU time per request (its process tree's user + system
time over the timed calls: on a shared machine wall time waits for the cores, CPU time does not). Printed, never
asserted.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import psutil
import yaml  # type: ignore[import-untyped]

from benchmarks.common import fmt_quantiles, line, quantiles_ms, serving_process, time_calls
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


@contextlib.contextmanager
def _server(settings: Any, env: dict[str, str]) -> Iterator[tuple[str, psutil.Process]]:
    """`shoprank serve` on a free loopback port, with its process for CPU time."""
    with serving_process(settings, env) as (base, process):
        yield base, psutil.Process(process.pid)


def _cpu_seconds(root: psutil.Process) -> float:
    """User + system CPU seconds of the server's process tree (BentoML's supervisor and its worker)."""
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def _time_arm(
    client: httpx.Client, server: psutil.Process, users: list[str], arm: str | None, candidates: list[str], n: int
) -> dict[str, Any]:
    bodies = [{"user_id": u, "candidate_ids": candidates, "k": 20} for u in users]
    for body in bodies:  # warm-up, and proof the user lands in the arm
        answer = client.post("/rank", json=body)
        answer.raise_for_status()
        if answer.json().get("arm") != arm:
            raise RuntimeError(f"user {body['user_id']} answered by arm {answer.json().get('arm')}, expected {arm}")
    calls = iter(range(n + 1))

    def call() -> None:
        client.post("/rank", json=bodies[next(calls) % len(bodies)]).raise_for_status()

    started, cpu = datetime.now(UTC), _cpu_seconds(server)
    wall = time_calls(call, n)
    cpu_ms = (_cpu_seconds(server) - cpu) * 1000 / (n + 1)  # time_calls makes one more (warm-up) call
    return {"wall": wall, "cpu_ms": cpu_ms, "since": started, "until": datetime.now(UTC)}


def _handler_ms(settings: Any, since: datetime, until: datetime, n_candidates: int) -> list[float]:
    """The service's own time per /rank in a window (the requests log, flushed when the server stops)."""
    files = sorted((settings.serving_logs_dir / "requests").glob("dt=*/part-*.parquet"))
    if not files:
        return []
    log = pd.concat([pd.read_parquet(f, columns=["request_ts", "n_candidates", "latency_ms"]) for f in files])
    mine = log[(log["request_ts"] >= since) & (log["request_ts"] <= until) & (log["n_candidates"] == n_candidates)]
    return [float(v) for v in mine["latency_ms"]]


RUNS: list[tuple[str, dict[str, Any] | None]] = [("one model", None), ("bench-ab", {}), ("bench-interleave", {})]


def bench_arms(settings: Any, candidates: list[str], pool: list[str], n: int) -> dict[str, dict[str, dict[str, Any]]]:
    """/rank timings per arm: the champion alone, then the A/B and the interleaving experiment (three starts)."""
    tag = second_model(settings)
    print(f"arms bench: champion vs {tag}", flush=True)
    treatments: dict[str, dict[str, Any]] = {
        "bench-ab": {"model_tag": tag},
        "bench-interleave": {"interleave": ["champion", tag]},
    }
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for name in ("one model", *treatments):
        declared = (
            _experiment(name, treatments[name]) if name in treatments else {"version": "bench", "experiments": []}
        )
        path = Path(settings.home_dir) / f"{name.replace(' ', '-')}.yaml"
        path.write_text(yaml.safe_dump(declared))
        by_arm: dict[str | None, list[str]] = {None: pool[:USERS_PER_ARM]}
        if name in treatments:
            by_arm = {arm: users for arm, users in _users_by_arm(declared, pool).items()}
        env = {"SHOPRANK_SERVING__EXPERIMENTS_PATH": str(path)}
        with _server(settings, env) as (base, server), httpx.Client(base_url=base, timeout=30) as client:
            model = client.get("/model").json()
            if model.get("experiments_error"):
                raise RuntimeError(f"the service refused {path}: {model['experiments_error']}")
            timed = {
                str(arm or "-"): _time_arm(client, server, users, arm, candidates, n) for arm, users in by_arm.items()
            }
        for result in timed.values():
            result["handler"] = _handler_ms(settings, result["since"], result["until"], len(candidates))
        results[name] = timed
    return results


def print_arms(results: dict[str, dict[str, dict[str, Any]]], n_candidates: int) -> None:
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"/rank with an experiment's arms loaded, {n_candidates} candidates given, k=20 (load average {load})")
    worst = 0.0
    for name, arms in results.items():
        for arm, timed in arms.items():
            label = name if arm == "-" else f"{name}: {arm}"
            handler = fmt_quantiles(timed["handler"]) if len(timed["handler"]) > 1 else "n/a"
            line(f"{label} HTTP (p50/p95/p99)", fmt_quantiles(timed["wall"]))
            line("    handler (p50/p95/p99), server CPU/request", f"{handler}, {timed['cpu_ms']:.1f} ms")
            worst = max(worst, quantiles_ms(timed["wall"])[2])
    line("target: /rank p99 < 20 ms in every arm", "met" if worst < 20 else f"NOT met (worst p99 {worst:.1f} ms)")
