"""Recall of today's retrieval vs the new one (text + learned recall) on a simulated home: `make bench-retrieval`.

The home (SHOPRANK_HOME, default var/bench-retrieval) is built once if missing: `simulate`, `validate-raw`,
`build-warehouse`, `validate-marts`, `check-drift`, `publish` for the default run day D, then `simulate` for D+1,
whose events are the holdout (no mart or index has seen them). `build-retrieval` runs as its own process (wall
time, peak RSS). For every holdout request (user, surface, query), both retrievals return the default candidate
count from the published marts; recall@K = share of the request's clicked (purchased) items among the first K,
per surface, merged and per source (a hit counted for the source that brought the item). Prints; asserts nothing.

    .venv/bin/python -m benchmarks.bench_retrieval [--requests N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import line
from shoprank.mart_files import read_mart

HOME = Path(__file__).resolve().parents[1] / "var" / "bench-retrieval"
BUILD_STEPS = ("simulate", "validate-raw", "build-warehouse", "validate-marts", "check-drift", "publish")
# The funnel's part (benchmarks/bench_funnel.py) needs a champion and a pre-ranker on the same day.
MODEL_STEPS = ("feast-apply", "materialize", "train", "register", "promote")


def shoprank(step: str, day: str) -> tuple[float, float]:
    """Run `shoprank <step> --run-date day` as its own process; (wall seconds, peak RSS MiB of the children)."""
    started = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).with_name("shoprank")), step, "--run-date", day],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def holdout(settings, day: str) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """One row per holdout request: user_id, surface, query, clicked and purchased item sets."""
    events = pd.read_parquet(settings.raw_dir / "events" / f"dt={day}")
    requests = events[events["event_type"] == "impression"].drop_duplicates("request_id")
    requests = requests.set_index("request_id")[["user_id", "surface", "query"]]
    for kind, column in (("click", "clicked"), ("purchase", "purchased")):
        hits = events[events["event_type"] == kind].groupby("request_id")["item_id"].agg(lambda s: set(map(str, s)))
        requests[column] = hits.reindex(requests.index)
    return requests[requests["clicked"].notna()]


def latest_warm_users(settings) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """Each warm user's newest user_features row (the snapshot serving reads)."""
    users = read_mart(settings.marts_export_dir.resolve(), "user_features")
    latest = users.sort_values(["user_id", "feature_ts"]).drop_duplicates("user_id", keep="last")
    return latest[latest["user_is_cold_start"] != 1]


def user_shares(latest: pd.DataFrame) -> dict[str, list[float]]:
    columns = sorted(c for c in latest.columns if c.startswith("user_cat_share_"))
    return dict(zip(latest["user_id"].astype(str), latest[columns].to_numpy(dtype=float).tolist(), strict=True))


def user_clicks(latest: pd.DataFrame) -> dict[str, float]:
    """Per user (as user_shares), the clicks the shares are of (user_clicks_30d): the affinity source's counts."""
    return dict(zip(latest["user_id"].astype(str), latest["user_clicks_30d"].astype(float), strict=True))


def measure(requests: pd.DataFrame, retrieve, label: str) -> None:  # type: ignore[no-untyped-def]
    for surface, rows in [
        ("feed", requests[requests["surface"] == "feed"]),
        ("search", requests[requests["surface"] == "search"]),
    ]:
        for target in ("clicked", "purchased"):
            rows_t = rows[rows[target].notna()]
            total, hits100, hits500 = 0, 0, 0
            by_source: Counter[str] = Counter()
            for request in rows_t.itertuples():
                ids, sources = retrieve(request)
                top100 = set(ids[:100])
                ranked = set(ids)
                for item in request._asdict()[target]:
                    total += 1
                    hits100 += item in top100
                    if item in ranked:
                        hits500 += 1
                        by_source[sources[item]] += 1
            if not total:
                continue
            per_source = ", ".join(f"{s} {n / total:.3f}" for s, n in by_source.most_common())
            line(f"{label} {surface} {target} ({total})", f"R@100 {hits100 / total:.3f}  R@500 {hits500 / total:.3f}")
            line("", f"by source @500: {per_source}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=0, help="holdout requests to use (0: all)")
    parser.add_argument("--funnel-requests", type=int, default=300, help="holdout requests the funnel ranks (0: none)")
    parser.add_argument(
        "--prerank-quotas",
        action="append",
        default=[],
        metavar="JSON",
        help="a further funnel variant's recall.prerank_quotas, e.g. '{\"text\": 0.3}' (repeatable)",
    )
    args = parser.parse_args()
    os.environ.setdefault("SHOPRANK_HOME", str(HOME))
    # the funnel part hands the final ranker every retrieved candidate (5,000 by default) as the request's own
    os.environ.setdefault("SHOPRANK_SERVING__MAX_CANDIDATES", "20000")
    os.environ.setdefault("SHOPRANK_SERVING__CACHE_REFRESH_SECONDS", "0")
    from shoprank.settings import apply_runtime_env, get_settings

    settings = get_settings()
    settings.ensure_dirs()
    apply_runtime_env(settings)
    day = settings.default_run_date
    holdout_day = (day + timedelta(days=1)).isoformat()
    if not (settings.raw_dir / "events" / f"dt={holdout_day}").exists():
        for step in BUILD_STEPS:
            seconds, _ = shoprank(step, day.isoformat())
            line(f"home: {step}", f"{seconds:.1f} s")
        shoprank("simulate", holdout_day)
    seconds, rss = shoprank("build-retrieval", day.isoformat())
    print(f"home {settings.home_dir}, indexes of {day}, holdout {holdout_day}")
    line("build-retrieval (own process)", f"{seconds:.1f} s wall, peak RSS {rss:.0f} MiB")
    if args.funnel_requests:
        from shoprank.model_bundle import champion_tag

        if champion_tag(settings) is None:
            for step in MODEL_STEPS:
                seconds, _ = shoprank(step, day.isoformat())
                line(f"home: {step}", f"{seconds:.1f} s")
        seconds, rss = shoprank("train-preranker", day.isoformat())
        line("train-preranker (own process)", f"{seconds:.1f} s wall, peak RSS {rss:.0f} MiB")

    from serving.candidates import RetrievalIndex
    from serving.item_cache import ItemCache
    from shoprank.recall import load_recall_index

    marts = settings.marts_export_dir.resolve()
    started = time.perf_counter()
    recall = load_recall_index(settings.recall_dir)
    line("recall index load", f"{time.perf_counter() - started:.2f} s, version {recall.version}")

    manifest = json.loads((settings.recall_dir / str(recall.version) / "manifest.json").read_text())
    line("text index", f"{manifest['text']}")
    line("embeddings", f"{manifest['embeddings']}")
    if recall.embeddings is not None:
        line("embedding memory", f"{recall.embeddings.vectors.nbytes / 2**20:.2f} MiB vectors (+ the same in faiss)")
    items = ItemCache.from_marts(marts, 14.0, ())
    index = RetrievalIndex.build(items, marts)
    requests = holdout(settings, holdout_day)
    if args.requests:
        requests = requests.head(args.requests)
    latest = latest_warm_users(settings)
    shares, clicks = user_shares(latest), user_clicks(latest)
    n = settings.serving.default_candidate_count

    before = settings.recall.model_copy(update={"affinity_share": 0.0})  # issue 16's sources all off

    def today(request):  # type: ignore[no-untyped-def]
        return index.retrieve(request.user_id, shares.get(request.user_id), n, cfg=before)

    def new(request):  # type: ignore[no-untyped-def]
        query = request.query if isinstance(request.query, str) else None
        user = request.user_id
        return index.retrieve(user, shares.get(user), n, query, recall, settings.recall, clicks.get(user))

    def new_by_shares(request):  # type: ignore[no-untyped-def]
        """The new retrieval with the affinity source's lift from the shares alone (before the click counts)."""
        query = request.query if isinstance(request.query, str) else None
        return index.retrieve(request.user_id, shares.get(request.user_id), n, query, recall, settings.recall)

    print(f"{len(requests)} holdout requests with a click; {n} candidates; {len(items)} items")
    for label, fn in (("today", today), ("new, shares' lift", new_by_shares), ("new", new)):
        started = time.perf_counter()
        measure(requests, fn, label)
        line(f"{label}: retrieval time", f"{(time.perf_counter() - started) / len(requests) / 4 * 1000:.2f} ms/request")

    # each new source alone (its own first K), on the surface it serves
    def embedding_alone(request):  # type: ignore[no-untyped-def]
        emb = recall.embeddings
        vector = (
            None
            if emb is None
            else emb.user_vector(
                request.user_id, index.user_recent.get(request.user_id, []), shares.get(request.user_id)
            )
        )
        ids = [] if vector is None else emb.neighbours(vector, n)
        return ids, dict.fromkeys(ids, "embedding")

    def text_alone(request):  # type: ignore[no-untyped-def]
        ids = recall.text.search(request.query, n) if recall.text is not None and isinstance(request.query, str) else []
        return ids, dict.fromkeys(ids, "text")

    from benchmarks import bench_text

    bench_text.run(requests, n)
    if args.funnel_requests:
        from benchmarks import bench_funnel

        variants = {"funnel": dict(settings.recall.prerank_quotas)}
        variants |= {f"quotas {text}": json.loads(text) for text in args.prerank_quotas}
        bench_funnel.run(settings, requests, shares, args.funnel_requests, variants, clicks)
    measure(requests[requests["surface"] == "feed"], embedding_alone, "embedding alone")
    measure(requests[requests["surface"] == "search"], text_alone, "text alone")
    timings = []
    for request in requests.head(300).itertuples():
        started = time.perf_counter()
        new(request)
        timings.append(time.perf_counter() - started)
    line(
        "new retrieval p50 / p99",
        f"{np.percentile(timings, 50) * 1000:.2f} / {np.percentile(timings, 99) * 1000:.2f} ms",
    )


if __name__ == "__main__":
    main()
