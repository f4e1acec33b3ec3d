"""`make bench-history`: build-warehouse on a long real history (years of daily data), printed, never asserted.

For each history length: a synthetic interactions parquet (ratings 0.5-10 in half steps, a fixed pool of users and
items with category labels, some missing) at --per-day rows a day, imported through the generic adapter
(producers.adapters.interactions) into its own home under var/bench-history/, then, each in its own process:
the first `shoprank build-warehouse` (all history, up to the day before the last), the next day's incremental
run (the daily cost) and a re-run of that day; after each of the first two, the build is published (gates skipped)
and `shoprank materialize` timed: into an empty online store, then the next day's. Wall and CPU seconds (CPU: the
load-free figure on a shared box).

    python -m benchmarks.bench_history --years 10 --per-day 3000
    python -m benchmarks.bench_history --days 30 365 --per-day 3000   # how the daily run grows with history
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.bench_data import _timed
from benchmarks.common import line

ROOT = Path(__file__).resolve().parents[1]
LAST_DAY = date(2025, 12, 31)
CATEGORIES = [f"cat-{c}" for c in "abcdefghij"]  # ten labels + the explicit unknown: 11 categories
MAPPING = {
    "user": "visitor",
    "item": "sku",
    "timestamp": {"column": "ts_ms", "unit": "ms"},
    "rating": {"column": "score", "click_at": 7, "purchase_at": 9.5, "scale": [0.5, 10]},
    "items": {"category": "category", "price": "price"},
}


# The bench's stand-in for the gates + publish + feast-apply steps before `materialize` (argv[1]: the run's day).
_PUBLISH_AND_APPLY = """
import sys
from datetime import date
from shoprank.settings import apply_runtime_env, get_settings
from warehouse.publish import publish_snapshot
from feature_repo.materialize import apply_feature_repo
settings = get_settings(); apply_runtime_env(settings)
publish_snapshot(settings, date.fromisoformat(sys.argv[1]), gates={})
apply_feature_repo(settings)
"""


def synthetic(days: int, per_day: int, users: int, items: int, seed: int = 0) -> pd.DataFrame:
    """``days`` days ending at LAST_DAY, ``per_day`` ratings a day; item quality shifts the score."""
    rng = np.random.default_rng(seed)
    n = days * per_day
    first = (LAST_DAY - timedelta(days=days - 1) - date(1970, 1, 1)).days
    day = first + np.repeat(np.arange(days), per_day)
    ms = day.astype(np.int64) * 86_400_000 + rng.integers(0, 86_400_000, n)
    item = rng.zipf(1.3, n) % items
    quality = rng.normal(0, 1.5, items)
    score = np.clip(np.round((rng.normal(5.5, 2.0, n) + quality[item]) * 2) / 2, 0.5, 10)
    category = np.array(CATEGORIES, dtype=object)[np.arange(items) % len(CATEGORIES)]
    category[rng.random(items) < 0.02] = None  # missing labels: the unknown category
    return pd.DataFrame(
        {
            "visitor": rng.integers(0, users, n),
            "sku": item,
            "ts_ms": ms,
            "score": score,
            "category": category[item],
            "price": np.round(5 + quality[item] ** 2 * 10, 2)[item],
        }
    )


def bench(
    base: Path, days: int, per_day: int, users: int, items: int, build: bool = True, materialize: bool = True
) -> None:
    from producers.adapters.interactions import import_interactions
    from producers.adapters.mapping import InteractionMapping
    from shoprank.settings import Settings, SimulatorSettings

    home = base / f"days-{days}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    frame = synthetic(days, per_day, users, items)
    source = home / "interactions.parquet"
    frame.to_parquet(source)
    settings = Settings(home=home, simulator=SimulatorSettings(categories=len(CATEGORIES) + 1))
    started = time.perf_counter()
    summary = import_interactions(settings, source, InteractionMapping.model_validate(MAPPING))
    imported = time.perf_counter() - started
    print(f"{days:,} days x {per_day:,} ratings ({len(frame):,} rows), home {home}", flush=True)
    line("import (adapter, in process)", f"{imported:7.1f} s wall; {summary['rows']['events']:,} events")
    if not build:
        return
    env = {**os.environ, "SHOPRANK_HOME": str(home), "SHOPRANK_SIMULATOR__CATEGORIES": str(len(CATEGORIES) + 1)}
    last = date.fromisoformat(summary["last_day"])
    for label, day in (
        ("first build (all history)", last - timedelta(days=1)),
        ("next day (incremental)", last),
        ("re-run of that day", last),
    ):
        cmd = [sys.executable, "-m", "orchestration.cli", "build-warehouse", "--run-date", day.isoformat()]
        elapsed, cpu, peak = _timed(cmd, env)
        line(label, f"{elapsed:7.1f} s wall, {cpu:7.1f} s CPU, peak RSS {peak:,.0f} MiB")
        if label == "re-run of that day" or not materialize:
            continue
        # Publish the build (gates skipped: not what is timed) and apply the Feast repo, then time `materialize`:
        # after the first build into an empty online store, after the next day's build into the loaded one.
        _timed([sys.executable, "-c", _PUBLISH_AND_APPLY, day.isoformat()], env)
        cmd = [sys.executable, "-m", "orchestration.cli", "materialize", "--run-date", day.isoformat()]
        elapsed, cpu, peak = _timed(cmd, env)
        line(f"  materialize {day}", f"{elapsed:7.1f} s wall, {cpu:7.1f} s CPU, peak RSS {peak:,.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--years", type=float, default=10, help="history length (ignored with --days)")
    parser.add_argument("--days", type=int, nargs="*", help="history lengths in days, e.g. 30 365 3650")
    parser.add_argument("--per-day", type=int, default=3000, help="ratings per day")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--import-only", action="store_true", help="time the import, skip the dbt builds")
    parser.add_argument("--no-materialize", action="store_true", help="skip publishing and Feast materialize")
    parser.add_argument("--base", type=Path, default=ROOT / "var" / "bench-history")
    args = parser.parse_args()
    for days in args.days or [round(args.years * 365)]:
        bench(
            args.base,
            days,
            args.per_day,
            args.users,
            args.items,
            build=not args.import_only,
            materialize=not args.no_materialize,
        )


if __name__ == "__main__":
    main()
