"""The daily labelling flow, one function per step (the CLI `shoprank labels ...` and the shoprank_labelling DAG
call these): sample -> import (into Label Studio) -> simulate (labellers answer through its API) -> export ->
aggregate (QC, grades, the relevance model retrained on every grade so far).

Files under ``settings.labels_dir``: ``tasks/dt=D/tasks.parquet`` (the day's sample), ``studio_tasks.parquet``
(pair id -> Label Studio task id, every day), ``judgements/dt=D/judgements.parquet`` (the checked export),
``grades.parquet`` (aggregated grades, every day), ``quality/dt=D/quality.json`` and ``model/relevance.json`` (the
labelling aids' model); the served ranker's relevance model goes to ``<home>/models/relevance/<day>/`` as one version
per labelled day (shoprank/query_relevance.py).
Gold questions carry a known grade (an expert's; here the simulator's hidden truth).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from labelling.aggregation import aggregate, krippendorff_alpha, labeller_quality
from labelling.crowd import Session
from labelling.labellers import Labeller, make_crowd
from labelling.relevance import RelevanceModel, features
from labelling.sampling import daily_sample
from labelling.search_log import search_pairs, with_truth
from labelling.studio import connection
from labelling.studio_client import StudioClient
from shoprank import query_relevance
from shoprank.settings import Settings

SHOWN = ("pair_id", "query", "title", "category", "price")
CROWD_SIZE = 12
CARELESS_SHARE = 0.2


def _day_file(settings: Settings, kind: str, run_date: date, name: str) -> Path:
    return settings.labels_dir / kind / f"dt={run_date.isoformat()}" / name


def model_path(settings: Settings) -> Path:
    return settings.labels_dir / "model" / "relevance.json"


def grades_path(settings: Settings) -> Path:
    return query_relevance.grades_path(settings)


def _seed(settings: Settings, run_date: date) -> int:
    return settings.labelling.seed * 100_000 + run_date.toordinal() % 100_000


def load_model(settings: Settings) -> RelevanceModel | None:
    path = model_path(settings)
    return RelevanceModel.load(path) if path.exists() else None


def sample(settings: Settings, run_date: date) -> dict[str, Any]:
    """The day's tasks from the day's search log, within the budget; written to tasks/dt=D/tasks.parquet."""
    pairs = search_pairs(settings, [run_date])
    model = load_model(settings)
    scores = model.predict(features(pairs)) if model is not None else None
    labelled = set(pd.read_parquet(grades_path(settings))["pair_id"]) if grades_path(settings).exists() else set()
    gold_pool = with_truth(settings, pairs)
    gold_pool = gold_pool.assign(gold_grade=gold_pool["true_grade"]).drop(columns=["true_grade", "difficulty"])
    tasks = daily_sample(pairs, settings.labelling, _seed(settings, run_date), scores, gold_pool, labelled)
    out = _day_file(settings, "tasks", run_date, "tasks.parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    tasks.to_parquet(out, index=False)
    return {"tasks": len(tasks), "by_stratum": tasks["stratum"].value_counts().to_dict(), "path": str(out)}


def _tasks(settings: Settings, run_date: date) -> pd.DataFrame:
    path = _day_file(settings, "tasks", run_date, "tasks.parquet")
    if not path.exists():
        raise FileNotFoundError(f"no tasks for {run_date}: run `shoprank labels sample --run-date {run_date}`")
    return pd.read_parquet(path)


def _client(settings: Settings) -> StudioClient:
    conn = connection(settings)
    return StudioClient(conn.url, conn.token)


def _project(client: StudioClient, settings: Settings) -> int:
    title = settings.labelling.project_title
    return client.find_project(title) or client.create_project(title)


def _task_ids(settings: Settings) -> pd.DataFrame:
    path = settings.labels_dir / "studio_tasks.parquet"
    if path.exists():
        return pd.read_parquet(path)
    return pd.DataFrame({"pair_id": pd.Series(dtype=str), "task_id": pd.Series(dtype=int), "day": pd.Series(dtype=str)})


def import_tasks(settings: Settings, run_date: date, prelabels: bool = True) -> dict[str, Any]:
    """Import the day's tasks into the relevance project (created on first use), with the model's suggested grade
    as a pre-label when a relevance model exists."""
    tasks = _tasks(settings, run_date)
    known = _task_ids(settings)
    fresh = tasks[~tasks["pair_id"].isin(known.loc[known["day"] == run_date.isoformat(), "pair_id"])]
    shown = fresh.assign(category=fresh["category_id"].astype(str), price=fresh["price"].map("{:.2f}".format))
    with _client(settings) as client:
        project_id = _project(client, settings)
        ids = client.import_tasks(project_id, shown[list(SHOWN)].to_dict("records")) if len(shown) else {}
        model = load_model(settings) if prelabels else None
        suggestable = shown[shown["gold_grade"].isna()] if "gold_grade" in shown else shown
        if model is not None and len(suggestable):  # never on gold: it would measure the model, not the labeller
            x = features(suggestable)
            for pair_id, grade, score in zip(suggestable["pair_id"], model.suggest(x), model.predict(x), strict=True):
                client.add_prediction(ids[pair_id], int(grade), float(score), "relevance-model")
    added = pd.DataFrame({"pair_id": list(ids), "task_id": list(ids.values()), "day": run_date.isoformat()})
    all_ids = pd.concat([known, added], ignore_index=True)
    (settings.labels_dir / "studio_tasks.parquet").parent.mkdir(parents=True, exist_ok=True)
    all_ids.to_parquet(settings.labels_dir / "studio_tasks.parquet", index=False)
    return {"project_id": project_id, "imported": len(ids), "prelabelled": model is not None}


def _labeller_email(labeller: Labeller) -> str:
    return f"{labeller.labeller_id}@labellers.shoprank.local"


def simulate_labellers(settings: Settings, run_date: date) -> dict[str, Any]:
    """Simulated labellers (20% careless) answer the day's tasks through Label Studio's API, each as their own
    user, with adaptive overlap; gold questions go to everyone."""
    cfg = settings.labelling
    tasks = with_truth(settings, _tasks(settings, run_date))
    ids = _task_ids(settings)
    ids = ids[ids["day"] == run_date.isoformat()].set_index("pair_id")["task_id"]
    if ids.empty:
        raise FileNotFoundError(f"no imported tasks for {run_date}: run `shoprank labels import` first")
    gold = tasks.dropna(subset=["gold_grade"]).set_index("pair_id")["gold_grade"].astype(int)
    crowd = make_crowd(CROWD_SIZE, CARELESS_SHARE, cfg.seed)
    with _client(settings) as client:
        user_ids = {lab.labeller_id: client.ensure_user(_labeller_email(lab)) for lab in crowd}

        def post(pair_id: str, labeller: Labeller, grade: int, seconds: float) -> None:
            client.annotate(int(ids[pair_id]), grade, user_ids[labeller.labeller_id], seconds)

        session = Session(crowd, _seed(settings, run_date), cfg.careless_gold_accuracy, post=post)
        labels = session.run(tasks, gold, cfg.initial_overlap, cfg.max_overlap)
    return {"annotations": len(labels), "labellers": len(crowd), "tasks": len(tasks)}


def export(settings: Settings, run_date: date) -> dict[str, Any]:
    """Export the project's annotations, checked, and keep the day's as judgements/dt=D/judgements.parquet."""
    ids = _task_ids(settings)
    with _client(settings) as client:
        project_id = _project(client, settings)
        judgements = client.export(project_id, set(ids["task_id"].astype(int)))
        emails = client.users()
    frame = pd.DataFrame([j.__dict__ for j in judgements])
    day_pairs = set(ids.loc[ids["day"] == run_date.isoformat(), "pair_id"])
    frame = frame[frame["pair_id"].isin(day_pairs)] if len(frame) else frame
    if len(frame):
        frame["labeller"] = frame["labeller"].map(lambda who: emails.get(int(who), who) if who.isdigit() else who)
    out = _day_file(settings, "judgements", run_date, "judgements.parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    return {"judgements": len(frame), "path": str(out)}


def aggregate_day(settings: Settings, run_date: date) -> dict[str, Any]:
    """QC and grades of the day's judgements (weighted majority vote with gold-based weights, Dawid-Skene beside
    it), appended to grades.parquet; the relevance model retrained on every grade so far."""
    cfg = settings.labelling
    path = _day_file(settings, "judgements", run_date, "judgements.parquet")
    if not path.exists():
        raise FileNotFoundError(f"no judgements for {run_date}: run `shoprank labels export` first")
    judgements = pd.read_parquet(path)
    tasks = _tasks(settings, run_date)
    labels = judgements.rename(columns={"pair_id": "task", "labeller": "worker", "grade": "label"})
    gold = tasks.dropna(subset=["gold_grade"]).set_index("pair_id")["gold_grade"].astype(int)
    quality = labeller_quality(labels, gold, cfg.careless_gold_accuracy)
    real = labels[~labels["task"].isin(gold.index)]
    wmv = aggregate(real, "wmv", quality["weight"])
    ds = aggregate(real, "ds")
    n_labels = real.groupby("task").size()
    day_grades = pd.DataFrame(
        {
            "pair_id": wmv.index,
            "grade": wmv.to_numpy(),
            "grade_ds": ds.reindex(wmv.index).to_numpy(),
            "n_labels": n_labels.reindex(wmv.index).to_numpy(),
            "day": run_date.isoformat(),
        }
    )
    day_grades = day_grades.merge(tasks.drop(columns=["gold_grade"], errors="ignore"), on="pair_id", how="left")
    previous = pd.read_parquet(grades_path(settings)) if grades_path(settings).exists() else None
    if previous is not None:
        previous = previous[previous["day"] != run_date.isoformat()]
    grades = pd.concat([previous, day_grades], ignore_index=True) if previous is not None else day_grades
    grades.to_parquet(grades_path(settings), index=False)
    try:
        alpha = krippendorff_alpha(labels)
    except ValueError:
        alpha = float("nan")
    x = features(grades, search_pairs(settings))  # the query's category shares from the whole search log
    model = RelevanceModel.fit(x, grades["grade"].to_numpy(), seed=cfg.seed)
    saved = model.booster is not None
    if saved:
        model.save(model_path(settings))
    served_version = train_served_model(settings, grades, run_date)
    report = {
        "run_date": run_date.isoformat(),
        "tasks": int(len(wmv)),
        "labels": int(len(labels)),
        "labels_per_task": float(n_labels.mean()) if len(n_labels) else 0.0,
        "krippendorff_alpha": alpha,
        "wmv_vs_ds_agreement": float((wmv == ds.reindex(wmv.index)).mean()),
        "careless_flagged": sorted(quality.index[quality["careless"]].tolist()),
        "labellers": json.loads(quality.reset_index().to_json(orient="records")),
        "relevance_model_saved": saved,
        "served_relevance_version": served_version,
        "grades_so_far": int(len(grades)),
    }
    out = _day_file(settings, "quality", run_date, "quality.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=float))
    return {k: v for k, v in report.items() if k != "labellers"}


def train_served_model(settings: Settings, grades: pd.DataFrame, run_date: date) -> str | None:
    """The served ranker's relevance model on the grades of days up to ``run_date`` (served features only), saved
    as version ``run_date``: training rows of later days and serving use it. None when the grades hold one grade
    only (nothing to learn)."""
    known = grades[pd.to_datetime(grades["day"]).dt.date <= run_date]
    if known.empty:
        return None
    x = query_relevance.pair_frame(known)
    model = query_relevance.RelevanceModel.fit(x, known["grade"].to_numpy(), seed=settings.labelling.seed)
    if model.booster is None:
        return None
    y = known["grade"].to_numpy() >= query_relevance.RELEVANT_GRADE
    card = {
        "labels_through": run_date.isoformat(),
        "labels_from": str(known["day"].min()),
        "trained_on_pairs": int(len(known)),
        "grade_counts": {str(g): int(n) for g, n in known["grade"].value_counts().sort_index().items()},
        # in-sample, a sanity figure only (bench-labels measures the model on held-out pairs)
        "train_auc": float(roc_auc_score(y, model.predict(x))) if 0 < y.sum() < len(y) else None,
    }
    query_relevance.save_version(settings, model, run_date, card)
    return run_date.isoformat()


def relevance_scores(settings: Settings, pairs: pd.DataFrame, log_pairs: pd.DataFrame | None = None) -> np.ndarray:
    """The search-ranking feature ``relevance_score`` of (query, item) pairs; NaN without a trained model."""
    model = load_model(settings)
    if model is None:
        return np.full(len(pairs), np.nan)
    return model.predict(features(pairs, log_pairs))
