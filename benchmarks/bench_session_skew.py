"""The session columns a live replay served vs the ones training saw: per column, the share of requests in a session
and the p10 / p50 / p90 among them, so a train/serve skew (a clock, a doubled count) shows as two distributions.

Training: the home's raw events of the run date, each request's row strictly before its first impression
(training/session_dataset.py). Served: the same replay over the service's own events log (``<home>/serving_logs``:
the impressions /rank fed, the events the replay reported), restricted to the replay's tested arm (request ids
``fb-<run>-<visit>-<request>-0``); tests/serving/test_events_http.py checks that this replay of the log equals what
the service served. User-level columns only (the candidate ones follow from the same row). Prints; asserts nothing.

    SHOPRANK_HOME=<home> .venv/bin/python -m benchmarks.bench_session_skew [--run fb-<run>]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from benchmarks.common import bench_settings, line
from serving.sessions import load_item_categories
from shoprank.session import SESSION_USER_COLUMNS, session_user_features
from training.session_dataset import dedup_ids, read_events, request_instants, session_snapshots


def user_columns(events: pd.DataFrame, settings) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """The session_user columns of every request of ``events`` at its instant (its first impression)."""
    requests = request_instants(events)
    rows = session_snapshots(events, requests, settings.session, settings.simulator.categories)
    values = {c: rows[c].to_numpy() for c in rows.columns if c != "request_id"}
    now = requests["request_ts"].to_numpy(dtype=float)
    return pd.DataFrame(session_user_features(values, now, settings.session, n_rows=len(rows)))


def served_events(settings, run: str | None) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    log = pd.read_parquet(settings.serving_logs_dir / "events")
    tested = log["request_id"].fillna("").str.match(r"fb-.*-0$")
    if run:
        tested &= log["request_id"].fillna("").str.startswith(run)
    events = log[tested].reset_index(drop=True)
    categories = load_item_categories(settings.marts_export_dir)
    events["category_id"] = events["item_id"].map(categories).astype(float)
    events["event_id"] = dedup_ids(events)
    return events


def summary(columns: pd.DataFrame) -> dict[str, str]:
    active = columns["session_age_seconds"].notna()
    out = {"requests in a session": f"{active.mean():.2f} of {len(columns)}"}
    for name in SESSION_USER_COLUMNS:
        values = columns.loc[active, name].dropna()
        if len(values):
            p10, p50, p90 = np.quantile(values, [0.1, 0.5, 0.9])
            out[name] = f"{p10:8.1f} {p50:8.1f} {p90:8.1f}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="only this replay's requests (request id prefix fb-<run>)")
    args = parser.parse_args()
    settings = bench_settings()
    day = settings.default_run_date
    trained = summary(user_columns(read_events(settings, day, day), settings))
    served = summary(user_columns(served_events(settings, args.run), settings))
    print("session columns, p10 / p50 / p90 among requests in a session: training (raw day) | served (replay)")
    for name in trained:
        line(name, f"{trained[name]:>28} | {served.get(name, '-'):>28}")


if __name__ == "__main__":
    main()
