"""The labelling experiments (plans and results in docs/labelling.md), run with simulated labellers in process.

Each function takes search pairs with their hidden truth (labelling.search_log.with_truth) and returns plain
figures; `make bench-labels` prints them. Labels here are drawn in process (thousands of them per experiment);
the same labellers answer through Label Studio's API in the daily flow (labelling.workflow).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from labelling.aggregation import METHODS, aggregate, labeller_quality
from labelling.crowd import Session, observable_difficulty
from labelling.labellers import make_crowd
from labelling.relevance import RelevanceModel, auc, features
from labelling.sampling import active_picks, gold_questions

CARELESS_GOLD_ACCURACY = 0.45


def _gold(pairs: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    pool = pairs.assign(gold_grade=pairs["true_grade"])
    return gold_questions(pool, n, rng)


def _accuracy(estimate: pd.Series, truth: pd.Series) -> float:
    common = estimate.index.intersection(truth.index)
    return float((estimate.loc[common] == truth.loc[common]).mean())


def accuracy_by_overlap(
    pairs: pd.DataFrame,
    n_tasks: int = 400,
    overlaps: tuple[int, ...] = (1, 3, 5),
    careless_share: float = 0.2,
    n_labellers: int = 20,
    seed: int = 0,
) -> pd.DataFrame:
    """Accuracy against the true grade of each aggregation method at fixed overlaps (20% careless labellers)."""
    rng = np.random.default_rng(seed)
    tasks = pairs.sample(n_tasks, random_state=seed)
    gold = _gold(pairs.drop(index=tasks.index), 20, rng)
    truth = tasks.set_index("pair_id")["true_grade"]
    rows = []
    for overlap in overlaps:
        crowd = make_crowd(n_labellers, careless_share, seed)
        session = Session(crowd, seed + overlap, CARELESS_GOLD_ACCURACY)
        gold_grades = gold.set_index("pair_id")["gold_grade"]
        labels = session.run(pd.concat([tasks, gold]), gold_grades, overlap, overlap)
        quality = labeller_quality(labels, gold_grades, CARELESS_GOLD_ACCURACY)
        real = labels[~labels["task"].isin(gold_grades.index)]
        row: dict[str, float] = {"overlap": overlap}
        for method in METHODS:
            row[method] = _accuracy(aggregate(real, method, quality["weight"]), truth)
        rows.append(row)
    return pd.DataFrame(rows).set_index("overlap")


def adaptive_overlap(pairs: pd.DataFrame, n_tasks: int = 400, seed: int = 0, careless_share: float = 0.2) -> dict:
    """Adaptive overlap (1 label, more only on disagreement, up to 5): labels per task and accuracy."""
    rng = np.random.default_rng(seed)
    tasks = pairs.sample(n_tasks, random_state=seed)
    gold = _gold(pairs.drop(index=tasks.index), 20, rng).set_index("pair_id")
    gold_frame = gold.reset_index()
    session = Session(make_crowd(20, careless_share, seed), seed, CARELESS_GOLD_ACCURACY)
    labels = session.run(pd.concat([tasks, gold_frame]), gold["gold_grade"], 2, 5)
    quality = labeller_quality(labels, gold["gold_grade"], CARELESS_GOLD_ACCURACY)
    real = labels[~labels["task"].isin(gold.index)]
    truth = tasks.set_index("pair_id")["true_grade"]
    careless = {lab.labeller_id for lab in session.crowd if lab.careless}
    flagged = set(quality.index[quality["careless"]])
    return {
        "labels_per_task": len(real) / n_tasks,
        "wmv_accuracy": _accuracy(aggregate(real, "wmv", quality["weight"]), truth),
        "ds_accuracy": _accuracy(aggregate(real, "ds"), truth),
        "careless_flagged": len(careless & flagged),
        "careless_total": len(careless),
        "careful_flagged": len(flagged - careless),
    }


def crowd_model(pairs: pd.DataFrame, n: int, seed: int) -> tuple[RelevanceModel, pd.DataFrame]:
    """A relevance model trained on ``n`` random pairs graded by a crowd (20% careless, adaptive overlap 1-3,
    weighted MV with gold-based weights), as the daily flow would have it; returns it and the pairs used."""
    rng = np.random.default_rng(seed)
    train = pairs.sample(n, random_state=seed + 100)
    gold = _gold(pairs.drop(index=train.index), 20, rng).set_index("pair_id")
    session = Session(make_crowd(20, 0.2, seed), seed, CARELESS_GOLD_ACCURACY)
    labels = session.run(pd.concat([train, gold.reset_index()]), gold["gold_grade"], 1, 3)
    quality = labeller_quality(labels, gold["gold_grade"], CARELESS_GOLD_ACCURACY)
    grades = aggregate(labels[~labels["task"].isin(gold.index)], "wmv", quality["weight"])
    train = train.set_index("pair_id").loc[grades.index].rename_axis("pair_id").reset_index()
    return RelevanceModel.fit(features(train, pairs), grades.to_numpy(), seed=seed), train


def prelabel_speed(pairs: pd.DataFrame, n_tasks: int = 400, n_train: int = 300, seed: int = 0) -> pd.DataFrame:
    """Labels per simulated labeller-hour and single-label accuracy, without and with model pre-labels (the model
    trained on crowd grades); the anchoring cost shows on tasks whose suggestion is wrong."""
    model, train = crowd_model(pairs, n_train, seed)
    tasks = pairs[~pairs["pair_id"].isin(train["pair_id"])].sample(n_tasks, random_state=seed)
    suggested = dict(zip(tasks["pair_id"], model.suggest(features(tasks, pairs)), strict=True))
    truth = tasks.set_index("pair_id")["true_grade"]
    rows = []
    for name, suggestions in (("without pre-labels", None), ("with pre-labels", suggested)):
        session = Session(make_crowd(20, 0.0, seed), seed, CARELESS_GOLD_ACCURACY)
        labels = session.run(tasks, pd.Series(dtype=int), 1, 1, suggestions=suggestions)
        hours = labels["seconds"].sum() / 3600.0
        by_task = labels.set_index("task")["label"]
        wrong = [p for p, g in suggested.items() if g != truth.loc[p]]  # where an anchored labeller goes wrong
        rows.append(
            {
                "arm": name,
                "labels_per_hour": len(labels) / hours,
                "label_accuracy": _accuracy(by_task, truth),
                "accuracy_where_suggestion_wrong": _accuracy(by_task.loc[wrong], truth),
                "suggestion_accuracy": _accuracy(pd.Series(suggested), truth) if suggestions else float("nan"),
            }
        )
    return pd.DataFrame(rows).set_index("arm")


def routing(pairs: pd.DataFrame, n_tasks: int = 400, seed: int = 0, overlap: int = 3) -> pd.DataFrame:
    """Accuracy on hard and all tasks when hard-looking tasks go to the most reliable labellers vs at random."""
    rng = np.random.default_rng(seed)
    model, train = crowd_model(pairs, 200, seed)
    tasks = pairs[~pairs["pair_id"].isin(train["pair_id"])].sample(n_tasks, random_state=seed)
    look = observable_difficulty(tasks, model.predict(features(tasks, pairs)))
    hard = set(tasks.loc[look >= np.quantile(look, 0.7), "pair_id"])
    gold = _gold(pairs.drop(index=tasks.index), 20, rng).set_index("pair_id")["gold_grade"]
    gold_frame = gold.rename("true_grade").reset_index().merge(pairs[["pair_id", "difficulty"]], on="pair_id")
    truth = tasks.set_index("pair_id")["true_grade"]
    rows = []
    for name, route in (("random assignment", False), ("hard to reliable", True)):
        session = Session(make_crowd(20, 0.2, seed), seed, CARELESS_GOLD_ACCURACY)
        labels = session.run(pd.concat([tasks, gold_frame]), gold, overlap, overlap, hard=hard, route_hard=route)
        quality = labeller_quality(labels, gold, CARELESS_GOLD_ACCURACY)
        real = labels[~labels["task"].isin(gold.index)]
        estimate = aggregate(real, "wmv", quality["weight"])
        rows.append(
            {
                "arm": name,
                "accuracy_all": _accuracy(estimate, truth),
                "accuracy_hard": _accuracy(estimate.loc[list(hard & set(estimate.index))], truth),
            }
        )
    return pd.DataFrame(rows).set_index("arm")


def active_vs_random(
    pairs: pd.DataFrame,
    targets: tuple[float, ...] = (0.95, 0.97),
    batch: int = 20,
    max_labels: int = 600,
    seeds: tuple[int, ...] = (0, 1, 2),
) -> pd.DataFrame:
    """Labels (one label per pair, a crowd with 20% careless labellers) needed until the relevance model first
    reaches each AUC in ``targets`` against the true relevance on held-out pairs, sampling at random vs by active
    learning; NaN where a run did not reach it within ``max_labels``."""
    rows = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        test = pairs.sample(min(3000, len(pairs) // 3), random_state=seed)
        pool = pairs.drop(index=test.index).reset_index(drop=True)
        x_pool, x_test = features(pool, pairs), features(test, pairs)
        for arm in ("random", "active"):
            session = Session(make_crowd(20, 0.2, seed), seed, CARELESS_GOLD_ACCURACY)
            labelled: list[int] = []
            curve: list[tuple[int, float]] = []
            model: RelevanceModel | None = None
            while len(labelled) < max_labels:
                rest = pool.drop(index=labelled)
                if arm == "active" and model is not None:
                    picks = active_picks(rest, model.predict(x_pool.loc[rest.index]), batch).index
                else:
                    picks = rest.index[rng.choice(len(rest), batch, replace=False)]
                session.run(pool.loc[picks], pd.Series(dtype=int), 1, 1)
                labelled.extend(int(i) for i in picks)
                got = session.labels.drop_duplicates("task").set_index("task")["label"]
                y = got.reindex(pool.loc[labelled, "pair_id"]).to_numpy()
                model = RelevanceModel.fit(x_pool.loc[labelled], y, seed=seed)
                curve.append((len(labelled), auc(model, x_test, test["true_grade"].to_numpy())))
            row: dict[str, object] = {"seed": seed, "arm": arm, "final_auc": curve[-1][1]}
            for target in targets:
                reached = [n for n, score in curve if score >= target]
                row[f"labels_to_auc_{target}"] = reached[0] if reached else float("nan")
            rows.append(row)
    return pd.DataFrame(rows)
