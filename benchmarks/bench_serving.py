"""`make bench-serving`: the ranking service's latency, throughput and overhead above the model. Printed, never
asserted. Runs in the bench home (var/bench; the pipeline is run there first when it has no model or retrieval
marts yet).

In one run, with 500 candidates per request:
- POST /rank over HTTP on loopback: p50/p95/p99 with the candidates in the request, and with the service's own
  retrieval (no candidates: default_candidate_count items retrieved), rules on;
- throughput with a bounded number of concurrent clients;
- the naive path, in process: Feast ``get_online_features`` for the user and all candidates, the feature frame in
  pandas, then predict (what the service did before the item cache);
- the model alone: ``predict`` on a ready 500-row matrix (one thread, as the service runs it);
- ratios: /rank p50 over the model-only p50 (the overhead), naive p99 over /rank p99 (the speed-up).
With ``--funnel`` (or ``--only-funnel``), also /rank with retrieval, today's path vs the funnel's pre-ranker
(benchmarks/bench_serving_funnel.py).
With ``--arms`` (or ``--only-arms``), also /rank per arm with an experiment's two models loaded, A/B and
interleaved (benchmarks/bench_serving_arms.py).
"""

from __future__ import annotations

import argparse

import httpx
import numpy as np

from benchmarks.common import (
    bench_settings,
    fmt_quantiles,
    has_model,
    line,
    quantiles_ms,
    rank_throughput,
    run_pipeline,
    serving,
    time_calls,
)

N_CANDIDATES = 500
SEARCH_QUERY = "smart lamp"


def _ensure_pipeline_output(settings) -> None:
    retrieval = settings.marts_export_dir / "retrieval_covisitation.parquet"
    if has_model(settings) and retrieval.exists():
        return
    from producers.simulator import simulate

    print("bench home has no model or retrieval marts: running the pipeline once", flush=True)
    simulate(settings, settings.default_run_date)
    for name, seconds in run_pipeline(settings).items():
        line(name, f"{seconds:.1f} s")


def bench_http(base: str, user_id: str, candidates: list[str], n: int, concurrency: int, seconds: float) -> dict:
    explicit = {"user_id": user_id, "candidate_ids": candidates, "k": 20}
    retrieved = {"user_id": user_id, "k": 20}
    # a search: with a recall index (build-retrieval) its query's text matches come first
    searched = {"user_id": user_id, "k": 20, "surface": "search", "query": SEARCH_QUERY}
    with httpx.Client(base_url=base, timeout=30) as client:
        for _ in range(20):  # warm the server's code paths
            client.post("/rank", json=explicit).raise_for_status()
        rank_ms = time_calls(lambda: client.post("/rank", json=explicit).raise_for_status(), n)
        retrieval_ms = time_calls(lambda: client.post("/rank", json=retrieved).raise_for_status(), n)
        search_ms = time_calls(lambda: client.post("/rank", json=searched).raise_for_status(), n)
    return {
        "rank": rank_ms,
        "retrieval": retrieval_ms,
        "search": search_ms,
        "throughput": rank_throughput(base, explicit, concurrency, seconds),
    }


def bench_in_process(settings, user_id: str, candidates: list[str], n: int) -> dict:
    """The naive Feast path and the model alone, in this process, on the same champion."""
    from serving.online_features import OnlineFeatureReader
    from serving.ranking import build_feature_frame
    from shoprank.feature_store import get_feature_store
    from shoprank.model_bundle import load_champion
    from shoprank.ranking_features import QUERY_FEATURES, model_matrix
    from shoprank.session import SESSION_CANDIDATE_COLUMNS, SESSION_USER_COLUMNS

    champion = load_champion(settings)
    champion.model.set_params(n_jobs=1)
    reader = OnlineFeatureReader(get_feature_store(settings), champion.feature_service, champion.n_categories)
    # a feed request from a user without a session: the query (ranker_v3) and session (ranker_v4) features are NaN
    per_row = {
        name: [float("nan")] * len(candidates)
        for name in [*QUERY_FEATURES, *SESSION_USER_COLUMNS, *SESSION_CANDIDATE_COLUMNS]
    }

    def naive() -> None:
        user = reader.user_features(user_id)
        items = reader.item_features(candidates)
        frame = build_feature_frame(user, items, candidates, champion.n_categories, per_row)
        champion.model.predict(model_matrix(frame, champion.feature_columns))

    frame = build_feature_frame(
        reader.user_features(user_id), reader.item_features(candidates), candidates, champion.n_categories, per_row
    )
    matrix = model_matrix(frame, champion.feature_columns)
    return {
        "naive": time_calls(naive, n),
        "model": time_calls(lambda: champion.model.predict(matrix), n),
        "model_tag": champion.tag,
        "rows": int(np.asarray(matrix).shape[0]),
    }


def _handler_times(settings, since) -> list[float]:
    """The service's own time per /rank with 500 given candidates (the requests log, flushed at shutdown)."""
    import pandas as pd

    folder = settings.serving_logs_dir / "requests"
    files = sorted(folder.glob("dt=*/part-*.parquet")) if folder.exists() else []
    if not files:
        return []
    log = pd.concat([pd.read_parquet(f) for f in files])
    mine = log[(log["request_ts"] >= since) & (log["n_candidates"] == N_CANDIDATES) & log["apply_rules"]]
    return mine["latency_ms"].tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per measurement")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--arms", action="store_true", help="also time /rank with two experiment arms loaded")
    parser.add_argument("--only-arms", action="store_true", help="time only /rank with two experiment arms loaded")
    parser.add_argument("--funnel", action="store_true", help="also time /rank today vs the funnel (pre-ranker)")
    parser.add_argument("--only-funnel", action="store_true", help="time only /rank today vs the funnel")
    args = parser.parse_args()

    settings = bench_settings()
    print(f"bench home: {settings.home_dir}", flush=True)
    _ensure_pipeline_output(settings)
    import pandas as pd

    from shoprank.mart_files import read_mart

    items = pd.read_parquet(settings.marts_export_dir / "item_features.parquet", columns=["item_id"])
    candidates = sorted(items["item_id"].unique())[:N_CANDIDATES]
    user_id = "u000001"
    if args.funnel or args.only_funnel:
        from benchmarks.bench_serving_funnel import bench_funnel, print_funnel

        user_frame = read_mart(settings.marts_export_dir, "user_features", ["user_id"])
        print_funnel(bench_funnel(settings, sorted(user_frame["user_id"].unique()), args.requests), settings)
        if args.only_funnel:
            return
    if args.arms or args.only_arms:
        from benchmarks.bench_serving_arms import bench_arms, print_arms

        users = sorted(read_mart(settings.marts_export_dir, "user_features", ["user_id"])["user_id"].unique())
        print_arms(bench_arms(settings, candidates, users, args.requests), len(candidates))
        if args.only_arms:
            return

    local = bench_in_process(settings, user_id, candidates, args.requests)
    started = pd.Timestamp.now(tz="UTC")
    with serving(settings) as base:
        http = bench_http(base, user_id, candidates, args.requests, args.concurrency, args.seconds)
    handler = _handler_times(settings, started)

    print(f"serving benchmark: model {local['model_tag']}, {len(candidates)} candidates, k=20", flush=True)
    line("POST /rank, candidates given (p50/p95/p99)", fmt_quantiles(http["rank"]))
    line(
        f"POST /rank, {settings.serving.default_candidate_count} retrieved (p50/p95/p99)",
        fmt_quantiles(http["retrieval"]),
    )
    line(
        f"POST /rank, search {SEARCH_QUERY!r}, {settings.serving.default_candidate_count} retrieved (p50/p95/p99)",
        fmt_quantiles(http["search"]),
    )
    line(f"throughput, {args.concurrency} clients x {args.seconds:.0f} s", f"{http['throughput']:.1f} requests/s")
    if handler:
        line("  in the handler, all /rank calls (request log)", fmt_quantiles(handler))
    line("naive path in process: Feast + pandas + predict", fmt_quantiles(local["naive"]))
    line(f"model only: predict on {local['rows']} rows", fmt_quantiles(local["model"]))
    rank_p50, _, rank_p99 = quantiles_ms(http["rank"])
    naive_p50, _, naive_p99 = quantiles_ms(local["naive"])
    model_p50 = quantiles_ms(local["model"])[0]
    line("overhead: /rank p50 / model-only p50", f"{rank_p50 / model_p50:.2f}x")
    line("speed-up: naive p50 / /rank p50 (over HTTP)", f"{naive_p50 / rank_p50:.1f}x")
    line("speed-up: naive p99 / /rank p99 (over HTTP)", f"{naive_p99 / rank_p99:.1f}x")
    line("target: /rank p99 < 20 ms", "met" if rank_p99 < 20 else "NOT met")
    from benchmarks.bench_session_read import print_session_read

    print_session_read(settings, candidates)  # what a v4 champion's session columns add to each /rank


if __name__ == "__main__":
    main()
