"""ranker_v3 vs ranker_v4 (session features) on a built home: holdout NDCG@10 overall / feed / search, oracle ratio.

Needs a home run through `feast-apply` (simulate, validate-raw, build-warehouse, validate-marts, check-drift, publish,
feast-apply). Builds the v4 training frame once (v3's columns are a subset), then trains each ranker on it with
training's own `train_on_frame`, for each session gap given (SHOPRANK_SESSION__GAP_SECONDS is the default one).
``--ablate`` also trains v4 with the category-standing columns added in session 5 blanked (NaN: no split can use
them), i.e. session 4's v4 on the same frame. Prints figures; asserts nothing. Example:

    SHOPRANK_HOME=var/bench .venv/bin/python -m benchmarks.bench_session --gaps 1800 14400 --ablate
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import pyarrow.dataset as ds

from benchmarks.common import bench_settings, line
from shoprank.feature_contract import COMPUTED
from training.dataset import add_slice_flags, build_training_frame
from training.evaluate import ndcg_at_k
from training.session_dataset import add_session_features
from training.train import HOLDOUT_FILE, candidate_dir, train_on_frame

SESSION_COLUMNS = [*COMPUTED["session_user"].columns, *COMPUTED["session_candidate"].columns]
# The candidate's category against the session's other categories (recency rank, most clicked, shown / CTR).
STANDING_COLUMNS = ["session_cat_recency_rank", "session_cat_is_top", "session_cat_impressions", "session_cat_ctr"]


def surfaces(settings) -> pd.Series:  # type: ignore[no-untyped-def]
    """request_id -> surface (feed / search), from the raw events."""
    events = ds.dataset(settings.raw_dir / "events", format="parquet", partitioning="hive")
    table = events.to_table(columns=["request_id", "surface"], filter=ds.field("event_type") == "impression")
    return table.to_pandas().drop_duplicates("request_id").set_index("request_id")["surface"]


def holdout_figures(settings, run_date, surface: pd.Series) -> dict[str, float]:  # type: ignore[no-untyped-def]
    scored = pd.read_parquet(candidate_dir(settings, run_date) / HOLDOUT_FILE)
    scored["surface"] = scored["request_id"].map(surface)
    out = {}
    for name, rows in (("all", scored), *scored.groupby("surface")):
        out[f"model {name}"] = ndcg_at_k(rows, "model_score", 10)
        out[f"oracle {name}"] = ndcg_at_k(rows, "oracle_score", 10)
    out["ratio"] = out["model all"] / out["oracle all"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaps", type=float, nargs="*", help="session gaps (seconds) to train v4 with")
    parser.add_argument("--ablate", action="store_true", help="also v4 without the category-standing columns")
    parser.add_argument("--skip-v3", action="store_true", help="v4 only (v3's figures known from an earlier run)")
    args = parser.parse_args()
    settings = bench_settings()
    run_date = settings.default_run_date
    surface = surfaces(settings)
    started = time.perf_counter()
    frame = add_slice_flags(settings, build_training_frame(settings, run_date, "ranker_v4"))
    line("v4 training frame", f"{len(frame):,} rows in {time.perf_counter() - started:.1f} s")

    runs: list[tuple[str, float | None]] = [] if args.skip_v3 else [("ranker_v3", None)]
    if args.ablate:
        runs.append(("ranker_v4 -standing", None))
    runs += [("ranker_v4", gap) for gap in (args.gaps or [settings.session.gap_seconds])]
    print(f"home {settings.home_dir}, seed {settings.simulator.seed}, run date {run_date}")
    print(f"{'ranker':<22} {'NDCG@10':>8} {'feed':>7} {'search':>7} {'ratio':>7}   oracle all/feed/search")
    for label_service, gap in runs:
        service = label_service.split()[0]
        run_settings = settings.model_copy(
            update={"training": settings.training.model_copy(update={"feature_service": service})}
        )
        run_frame = frame if label_service == service else frame.assign(**dict.fromkeys(STANDING_COLUMNS, float("nan")))
        if gap is not None and gap != settings.session.gap_seconds:
            run_settings = run_settings.model_copy(
                update={"session": settings.session.model_copy(update={"gap_seconds": gap})}
            )
            started = time.perf_counter()
            run_frame = add_session_features(run_settings, frame.drop(columns=SESSION_COLUMNS), service)
            line(f"session replay, gap {gap:.0f} s", f"{time.perf_counter() - started:.1f} s")
        train_on_frame(run_settings, run_date, run_frame)
        f = holdout_figures(run_settings, run_date, surface)
        label = label_service if gap is None else f"{service} gap {gap:.0f}s"
        print(
            f"{label:<22} {f['model all']:>8.3f} {f['model feed']:>7.3f} {f['model search']:>7.3f} "
            f"{f['ratio']:>7.3f}   {f['oracle all']:.3f}/{f['oracle feed']:.3f}/{f['oracle search']:.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
