"""bench-labels section 6: the SERVED search ranker with and without the human-judged relevance feature.

What it runs (the platform's own steps, in process, on the bench home):
1. the warehouse (dbt build + publish) for the last simulated day, unless a published snapshot exists;
2. the daily labelling flow's grades, one labelling day at a time: each day's stratified sample (``--budget`` pairs)
   graded by the simulated crowd (20% careless, adaptive 1-5 labels, weighted MV), appended to
   ``<home>/labels/grades.parquet``, then labelling.workflow.train_served_model saves that day's relevance model
   version, exactly as `shoprank labels aggregate` does (in process instead of through Label Studio's API). On the
   last day the crowd also judges every shown pair of ``--judged-requests`` search requests, so the holdout has
   judged requests to measure on;
3. training.train.train_ranker for ranker_v3 and for ranker_v3_relevance: the served feature service's columns, the
   relevance feature computed with the function serving calls (shoprank.query_relevance.score_pairs), each day's
   rows from the version trained on earlier days' labels; the card's click NDCG@10 and human-judged NDCG@10 (the
   evaluation report's) are printed, plus click NDCG@10 on the holdout's search requests alone.

Not measured here: HTTP. The service computes the same column per request (tests/serving/test_relevance_feature.py
checks the served value equals the model's on the request's pair).

    .venv/bin/python -m benchmarks.bench_labels_served [--budget 300] [--judged-requests 150] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date

import numpy as np
import pandas as pd

from benchmarks.common import line
from shoprank.mart_files import mart_exists, read_mart

RANKERS = ("ranker_v3", "ranker_v3_relevance")


def _days(settings) -> list[date]:
    return sorted(date.fromisoformat(p.name.removeprefix("dt=")) for p in (settings.raw_dir / "events").glob("dt=*"))


def ensure_marts(settings, run_date: date) -> None:
    if mart_exists(settings.marts_export_dir, "training_examples"):
        return
    from warehouse.build import build_warehouse
    from warehouse.publish import publish_snapshot

    started = time.perf_counter()
    build_warehouse(settings, run_date)
    publish_snapshot(settings, run_date, gates={"bench-labels": "no gates: a benchmark home"})
    line("warehouse", f"dbt build + publish through {run_date} in {time.perf_counter() - started:.0f} s")


def label_days(settings, days: list[date], budget: int, judged_requests: int, seed: int) -> pd.DataFrame:
    """Grades of every labelling day (the daily flow's sample, graded by the crowd) and a version per day."""
    from benchmarks.bench_labels import _crowd_grades
    from labelling.sampling import daily_sample
    from labelling.search_log import search_pairs, with_truth
    from labelling.workflow import train_served_model
    from shoprank.query_relevance import grades_path

    cfg = settings.labelling.model_copy(update={"daily_budget": budget, "gold_share": 0.0, "active_share": 0.0})
    graded: list[pd.DataFrame] = []
    for n, day in enumerate(days):
        day_pairs = with_truth(settings, search_pairs(settings, [day]))
        done = set(pd.concat(graded)["pair_id"]) if graded else set()
        tasks = daily_sample(day_pairs, cfg, seed + n, already_labelled=done)
        if day == days[-1]:  # every shown pair of a sample of the holdout day's search requests
            rng = np.random.default_rng(seed)
            events = pd.read_parquet(
                settings.raw_dir / "events" / f"dt={day.isoformat()}",
                columns=["event_type", "request_id", "item_id", "surface", "query"],
            )
            shown = events[(events["surface"] == "search") & (events["event_type"] == "impression")]
            requests = shown["request_id"].unique()
            picked = shown[
                shown["request_id"].isin(rng.choice(requests, min(judged_requests, len(requests)), replace=False))
            ]
            judged = set(picked["query"] + "|" + picked["item_id"])
            tasks = pd.concat([tasks, day_pairs[day_pairs["pair_id"].isin(judged - set(tasks["pair_id"]))]])
        grades = _crowd_grades(tasks, seed + n, 1 if day != days[-1] else 3, 5)
        day_grades = tasks.set_index("pair_id").loc[grades.index].rename_axis("pair_id").reset_index()
        graded.append(day_grades.assign(grade=grades.to_numpy(), day=day.isoformat()))
        every = pd.concat(graded, ignore_index=True)
        path = grades_path(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        every.drop(columns=["true_grade", "difficulty", "relevant", "intent_category"], errors="ignore").to_parquet(
            path, index=False
        )
        train_served_model(settings, every, day)
    return pd.concat(graded, ignore_index=True)


def _search_click_ndcg(settings, holdout_path, k: int) -> float:
    from training.evaluate import ndcg_at_k

    holdout = pd.read_parquet(
        holdout_path, columns=["impression_id", "request_id", "item_id", "relevance", "model_score"]
    )
    search = read_mart(settings.marts_export_dir, "query_item_match", ["impression_id"])
    return ndcg_at_k(holdout[holdout["impression_id"].isin(search["impression_id"])], "model_score", k)


def train_both(settings, run_date: date) -> pd.DataFrame:
    from training.train import CARD_FILE, candidate_dir, train_ranker

    k = settings.training.ndcg_k
    rows = {}
    for ranker in RANKERS:
        started = time.perf_counter()
        arm = settings.model_copy(update={"training": settings.training.model_copy(update={"feature_service": ranker})})
        train_ranker(arm, run_date)
        card = json.loads((candidate_dir(arm, run_date) / CARD_FILE).read_text())
        metrics = card["metrics"]
        rows[ranker] = {
            f"click NDCG@{k} (all)": metrics[f"model_ndcg@{k}"],
            f"click NDCG@{k} (search)": _search_click_ndcg(arm, card["holdout_path"], k),
            f"human NDCG@{k}": metrics.get(f"judged_model_ndcg@{k}"),
            "judged requests": metrics.get("judged_requests"),
            "relevance gain rank": (
                list(card["feature_importance"]).index("query_item_relevance") + 1
                if "query_item_relevance" in card["feature_importance"]
                else None
            ),
            "train s": time.perf_counter() - started,
        }
        for baseline in ("popularity", "oracle"):
            if f"judged_{baseline}_ndcg@{k}" in metrics:
                rows[baseline] = {
                    f"click NDCG@{k} (all)": metrics.get(f"{baseline}_ndcg@{k}"),
                    f"human NDCG@{k}": metrics[f"judged_{baseline}_ndcg@{k}"],
                }
    return pd.DataFrame(rows).T


def served_section(settings, budget: int, judged_requests: int, seed: int = 0) -> pd.DataFrame:
    days = _days(settings)
    run_date = days[-1]
    ensure_marts(settings, run_date)
    started = time.perf_counter()
    grades = label_days(settings, days, budget, judged_requests, seed)
    agree = (grades["grade"] == grades["true_grade"]).mean()
    line(
        "labels",
        f"{len(grades):,} crowd-graded pairs over {len(days)} days (grade = true grade on {agree:.1%}), a relevance "
        f"model version per day, in {time.perf_counter() - started:.0f} s",
    )
    return train_both(settings, run_date)


def main() -> None:
    from benchmarks.bench_labels import _ensure_data, _settings, _table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=300, help="pairs graded per labelling day")
    parser.add_argument("--judged-requests", type=int, default=150, help="holdout search requests judged in full")
    parser.add_argument("--seed", type=int, default=0, help="seed of the labelling days' samples and crowds")
    args = parser.parse_args()
    settings = _settings()
    _ensure_data(settings)
    print("\n== 6. the served search ranker: ranker_v3 vs ranker_v3_relevance, click and human-judged NDCG@10 ==")
    _table(served_section(settings, args.budget, args.judged_requests, args.seed))


if __name__ == "__main__":
    main()
