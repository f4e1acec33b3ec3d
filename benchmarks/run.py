"""`make bench`: figures, printed, never asserted. Runs in its own home (var/bench by default).

- simulator: events per second and peak memory at the configured sizes;
- pipeline: wall time of each step (only when the bench home has no model yet, or with --rebuild);
- serving: /rank latency over HTTP on loopback with 500 candidates (p50/p95/p99), and throughput under a bounded
  concurrent load (`make bench-serving` goes further: naive path, model-only time, overhead ratio).
"""

from __future__ import annotations

import argparse
import resource
import time

import httpx

from benchmarks.common import (
    bench_settings,
    fmt_quantiles,
    has_model,
    line,
    rank_throughput,
    run_pipeline,
    serving,
    time_calls,
)


def bench_simulator(settings) -> None:
    from producers.simulator import simulate

    started = time.perf_counter()
    summary = simulate(settings, settings.default_run_date)
    elapsed = time.perf_counter() - started
    events = sum(summary["events"].values())
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("simulator", flush=True)
    line("events", f"{events:,}")
    line("wall time", f"{elapsed:.2f} s ({events / elapsed:,.0f} events/s)")
    line("peak RSS of this process so far", f"{peak_mib:,.0f} MiB")


def bench_pipeline(settings) -> None:
    print("pipeline steps (after simulate)", flush=True)
    for name, seconds in run_pipeline(settings).items():
        line(name, f"{seconds:.1f} s")


def bench_serving(settings, requests: int, concurrency: int, seconds: float) -> None:
    import pandas as pd

    items = pd.read_parquet(settings.marts_export_dir / "item_features.parquet", columns=["item_id"])
    candidates = sorted(items["item_id"].unique())[:500]
    with serving(settings) as base:
        body = {"user_id": "u000001", "candidate_ids": candidates, "k": 20}
        with httpx.Client(base_url=base, timeout=30) as client:
            timings = time_calls(lambda: client.post("/rank", json=body).raise_for_status(), requests)
        print(f"serving: POST /rank, {len(candidates)} candidates, k=20, {requests} sequential requests", flush=True)
        line("p50 / p95 / p99", fmt_quantiles(timings))
        throughput = rank_throughput(base, body, concurrency, seconds)
        line(f"throughput, {concurrency} clients for {seconds:.0f} s", f"{throughput:.1f} requests/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rebuild", action="store_true", help="re-run the pipeline even if a model exists")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    settings = bench_settings()
    print(f"bench home: {settings.home_dir}  (sizes: {settings.simulator.model_dump()})", flush=True)
    bench_simulator(settings)
    if args.rebuild or not has_model(settings):
        bench_pipeline(settings)
    bench_serving(settings, args.requests, args.concurrency, args.seconds)


if __name__ == "__main__":
    main()
