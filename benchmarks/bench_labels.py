"""Relevance-labelling figures on a simulated home: `make bench-labels` (plans and results: docs/labelling.md).

The home (SHOPRANK_HOME, default var/bench-labels) is simulated once at the default sizes if it has no raw events.
Simulated labellers (labelling/labellers.py) answer in process here: thousands of labels per experiment; the daily
flow sends the same labellers through Label Studio's API (tests/labelling/test_studio_roundtrip.py). Prints:

1. label accuracy against the hidden truth, majority vote vs weighted MV, Dawid-Skene, GLAD, MACE, at 1, 3 and 5
   labels per task with 20% careless labellers; adaptive overlap (labels per task, accuracy, careless flagged);
2. labels per simulated labeller-hour without and with pre-labels, and the accuracy cost of anchoring;
3. routing hard-looking tasks to the most reliable labellers vs random assignment;
4. labels needed by active vs random sampling to reach the same relevance-model AUC;
5. search NDCG@10 on human-judged pairs and click NDCG@10, rankers without and with the relevance feature;
6. the same for the served feature services, ranker_v3 vs ranker_v3_relevance, trained and evaluated by the training
   step on the warehouse's marts with a relevance model version per labelling day (benchmarks/bench_labels_served.py).

    .venv/bin/python -m benchmarks.bench_labels [--seeds 3] [--judged-requests 150] [--budget 300] [--skip-served]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import line

HOME = Path(__file__).resolve().parents[1] / "var" / "bench-labels"


def _settings():
    os.environ.setdefault("SHOPRANK_HOME", str(HOME))
    from shoprank.settings import get_settings

    get_settings.cache_clear()
    return get_settings()


def _ensure_data(settings) -> None:
    if any((settings.raw_dir / "events").glob("dt=*/*.parquet")):
        return
    from producers.simulator import simulate

    started = time.perf_counter()
    summary = simulate(settings, settings.default_run_date)
    line("simulated", f"{summary['rows']['events']:,} events in {time.perf_counter() - started:.0f} s")


def _table(frame: pd.DataFrame) -> None:
    print(frame.to_string(float_format=lambda v: f"{v:.3f}"))


def _crowd_grades(pairs: pd.DataFrame, seed: int, initial: int, maximum: int) -> pd.Series:
    """Aggregated (weighted MV, gold-based weights) grades of ``pairs`` from a crowd with 20% careless labellers."""
    from labelling.aggregation import aggregate, labeller_quality
    from labelling.crowd import Session
    from labelling.experiments import CARELESS_GOLD_ACCURACY
    from labelling.labellers import make_crowd

    rng = np.random.default_rng(seed)
    gold = pairs.iloc[rng.choice(len(pairs), min(30, len(pairs)), replace=False)]
    gold_grades = gold.set_index("pair_id")["true_grade"]
    session = Session(make_crowd(20, 0.2, seed), seed, CARELESS_GOLD_ACCURACY)
    labels = session.run(pairs, gold_grades, initial, maximum)
    quality = labeller_quality(labels, gold_grades, CARELESS_GOLD_ACCURACY)
    # Gold pairs are judged pairs too (their grade is the crowd's, like any other).
    return aggregate(labels, "wmv", quality["weight"])


def search_ndcg(settings, pairs: pd.DataFrame, judged_requests: int, seed: int) -> pd.DataFrame:
    """NDCG@10 of the logged order and of search rankers without / with the relevance feature."""
    from labelling.relevance import RelevanceModel, features
    from labelling.sampling import daily_sample
    from labelling.search_eval import BASE_FEATURES, add_features, score, search_rows, train_ranker
    from training.evaluate import ndcg_at_k

    frames = []
    for path in sorted((settings.raw_dir / "events").glob("dt=*/*.parquet")):
        cols = ["event_type", "request_id", "item_id", "position", "surface", "query"]
        frames.append(pd.read_parquet(path, columns=cols).assign(day=path.parent.name.removeprefix("dt=")))
    events = pd.concat(frames, ignore_index=True)
    items = pairs.drop_duplicates("item_id").set_index("item_id")[["title", "category_id", "price"]]
    rows = search_rows(events, items)
    days = sorted(rows["day"].unique())
    train_day, test_day = days[-2], days[-1]
    history_for_train = rows[rows["day"] < train_day]
    history_for_test = rows[rows["day"] < test_day]
    train = add_features(rows[rows["day"] == train_day], history_for_train)
    test = add_features(rows[rows["day"] == test_day], history_for_test)

    # The relevance model: trained on crowd grades of pairs sampled from the days before the holdout.
    earlier = pairs[pairs["request_id"].str[1:9] < test_day.replace("-", "")]
    log_pairs = earlier
    cfg = settings.labelling.model_copy(update={"daily_budget": 600, "gold_share": 0.0, "active_share": 0.0})
    to_label = daily_sample(earlier, cfg, seed)
    crowd = _crowd_grades(to_label, seed, 1, 5)
    labelled = to_label.set_index("pair_id").loc[crowd.index].rename_axis("pair_id").reset_index()
    model = RelevanceModel.fit(features(labelled, log_pairs), crowd.to_numpy(), seed=seed)
    for frame in (train, test):
        frame["relevance_score"] = model.predict(features(frame, log_pairs))

    with_rel = [*BASE_FEATURES, "relevance_score"]
    test["logged_order"] = -test["position"].astype(float)
    test["without_relevance"] = score(train_ranker(train, list(BASE_FEATURES), seed), test, list(BASE_FEATURES))
    test["with_relevance"] = score(train_ranker(train, with_rel, seed), test, with_rel)

    # Human judgments: every shown pair of a sample of holdout requests, graded by the crowd.
    rng = np.random.default_rng(seed)
    requests = test["request_id"].unique()
    judged = test[test["request_id"].isin(rng.choice(requests, min(judged_requests, len(requests)), replace=False))]
    judged = judged.assign(pair_id=judged["query"] + "|" + judged["item_id"])
    truth = pairs.set_index("pair_id")[["true_grade", "difficulty"]]
    to_judge = judged.drop_duplicates("pair_id")[["pair_id", "query", "title"]].join(truth, on="pair_id")
    human = _crowd_grades(to_judge, seed + 1, 3, 5)
    judged = judged.assign(
        human_grade=judged["pair_id"].map(human), true_grade=judged["pair_id"].map(truth["true_grade"])
    )

    arms = ("logged_order", "without_relevance", "with_relevance")
    result = pd.DataFrame(
        {
            "click NDCG@10": [ndcg_at_k(test, arm, 10, label_column="clicked") for arm in arms],
            "human NDCG@10": [ndcg_at_k(judged, arm, 10, label_column="human_grade") for arm in arms],
            "true-grade NDCG@10": [ndcg_at_k(judged, arm, 10, label_column="true_grade") for arm in arms],
        },
        index=list(arms),
    )
    line("relevance model", f"trained on {len(crowd)} crowd-graded pairs from days before {test_day}")
    agree = (judged["human_grade"] == judged["true_grade"]).mean()
    line(
        "holdout",
        f"{test['request_id'].nunique()} search requests on {test_day}; {judged['request_id'].nunique()} judged"
        f" ({len(human)} pairs, human grade = true grade on {agree:.1%})",
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds of the active-vs-random experiment")
    parser.add_argument("--judged-requests", type=int, default=150, help="holdout search requests judged by people")
    parser.add_argument("--budget", type=int, default=300, help="section 6: pairs graded per labelling day")
    parser.add_argument("--skip-served", action="store_true", help="skip section 6 (dbt build + two trainings)")
    args = parser.parse_args()
    settings = _settings()
    _ensure_data(settings)
    from labelling import experiments as ex
    from labelling.search_log import search_pairs, with_truth

    started = time.perf_counter()
    pairs = with_truth(settings, search_pairs(settings))
    line(
        "search pairs",
        f"{len(pairs):,} (query, item) pairs; true grades {pairs['true_grade'].value_counts().sort_index().to_dict()}",
    )

    print("\n== 1. label accuracy vs the hidden truth (400 tasks, 20 labellers, 20% careless) ==")
    _table(ex.accuracy_by_overlap(pairs))
    adaptive = ex.adaptive_overlap(pairs)
    line(
        "adaptive overlap (2 -> max 5)",
        f"{adaptive['labels_per_task']:.2f} labels/task, weighted MV accuracy "
        f"{adaptive['wmv_accuracy']:.3f}, Dawid-Skene {adaptive['ds_accuracy']:.3f}; careless flagged "
        f"{adaptive['careless_flagged']}/{adaptive['careless_total']}, careful flagged {adaptive['careful_flagged']}",
    )

    print("\n== 2. pre-labels: labels per simulated labeller-hour and the anchoring cost ==")
    _table(ex.prelabel_speed(pairs))

    print("\n== 3. routing hard-looking tasks (top 30% by observable difficulty) to reliable labellers ==")
    _table(ex.routing(pairs))

    print("\n== 4. active vs random sampling: labels until the relevance model's AUC first reaches a target ==")
    runs = ex.active_vs_random(pairs, seeds=tuple(range(args.seeds)))
    _table(runs)
    for column in [c for c in runs.columns if c.startswith("labels_to_auc_")]:
        for arm, part in runs.groupby("arm"):
            reached = part[column].dropna()
            line(
                f"{arm}: {column}",
                f"reached in {len(reached)}/{len(part)} seeds; median {reached.median():.0f} labels"
                if len(reached)
                else f"not reached in {len(part)} seeds (cap 600 labels)",
            )

    print("\n== 5. search NDCG@10: human-judged pairs and clicks, without / with the relevance feature ==")
    _table(search_ndcg(settings, pairs, args.judged_requests, seed=0))
    if not args.skip_served:
        from benchmarks.bench_labels_served import served_section

        print("\n== 6. the served search ranker: ranker_v3 vs ranker_v3_relevance, click and human-judged NDCG@10 ==")
        _table(served_section(settings, args.budget, args.judged_requests))
    line("bench-labels wall time", f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
