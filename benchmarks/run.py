"""`make bench`: figures, printed, never asserted. Runs in its own home (var/bench by default).

- simulator: events per second and peak memory at the configured sizes;
- pipeline: wall time of each step (only when the bench home has no model yet, or with --rebuild);
- serving: /rank latency over HTTP on loopback with 500 candidates (p50/p95/p99), and throughput under a bounded
  concurrent load.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx


def _line(name: str, value: str) -> None:
    print(f"  {name:<38} {value}", flush=True)


def bench_simulator(settings) -> None:
    from shoprank.simulator import simulate

    started = time.perf_counter()
    summary = simulate(settings, settings.default_run_date)
    elapsed = time.perf_counter() - started
    events = sum(summary["events"].values())
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("simulator", flush=True)
    _line("events", f"{events:,}")
    _line("wall time", f"{elapsed:.2f} s ({events / elapsed:,.0f} events/s)")
    _line("peak RSS of this process so far", f"{peak_mib:,.0f} MiB")


def bench_pipeline(settings) -> None:
    from shoprank import pipeline

    print("pipeline steps (after simulate)", flush=True)
    for name, step in pipeline.STEPS.items():
        if name == "simulate":
            continue
        started = time.perf_counter()
        step(settings.default_run_date)
        _line(name, f"{time.perf_counter() - started:.1f} s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_serving(settings, requests: int, concurrency: int, seconds: float) -> None:
    import pandas as pd

    items = pd.read_parquet(settings.marts_export_dir / "item_features.parquet", columns=["item_id"])
    candidates = sorted(items["item_id"].unique())[:500]
    port = _free_port()
    log = (settings.home_dir / "bench-serve.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("shoprank")), "serve", "--port", str(port)],
        env={**os.environ, **settings.runtime_env()},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        body = {"user_id": "u000001", "candidate_ids": candidates, "k": 20}
        with httpx.Client(base_url=base, timeout=30) as client:
            client.post("/rank", json=body).raise_for_status()  # warm-up
            timings = []
            for _ in range(requests):
                started = time.perf_counter()
                client.post("/rank", json=body).raise_for_status()
                timings.append((time.perf_counter() - started) * 1000)
        quantiles = statistics.quantiles(timings, n=100)
        print(f"serving: POST /rank, {len(candidates)} candidates, k=20, {requests} sequential requests", flush=True)
        _line("p50 / p95 / p99", f"{quantiles[49]:.1f} / {quantiles[94]:.1f} / {quantiles[98]:.1f} ms")

        def worker(_: int) -> int:
            done = 0
            stop = time.monotonic() + seconds
            with httpx.Client(base_url=base, timeout=30) as client:
                while time.monotonic() < stop:
                    client.post("/rank", json=body).raise_for_status()
                    done += 1
            return done

        with ThreadPoolExecutor(concurrency) as pool:
            total = sum(pool.map(worker, range(concurrency)))
        _line(f"throughput, {concurrency} clients for {seconds:.0f} s", f"{total / seconds:.1f} requests/s")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rebuild", action="store_true", help="re-run the pipeline even if a model exists")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    os.environ.setdefault("SHOPRANK_HOME", str(Path(__file__).resolve().parents[1] / "var" / "bench"))
    from shoprank.settings import apply_runtime_env, get_settings

    settings = get_settings()
    settings.ensure_dirs()
    apply_runtime_env(settings)
    print(f"bench home: {settings.home_dir}  (sizes: {settings.simulator.model_dump()})", flush=True)
    bench_simulator(settings)
    has_model = any((settings.model_store_dir / "models" / settings.training.model_name).glob("*/model.yaml"))
    if args.rebuild or not has_model:
        bench_pipeline(settings)
    bench_serving(settings, args.requests, args.concurrency, args.seconds)


if __name__ == "__main__":
    main()
