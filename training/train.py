"""Train the XGBoost LambdaMART ranker on a point-in-time training set and write it as a candidate.

The candidate (model file + metrics) lands in ``<home>/models/candidates/<run_date>/``; registering it in the
model store is a separate step (training.registry), so a failed training never touches what is serving.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from shoprank.ranking_features import POPULARITY_FEATURE, model_feature_columns, model_matrix
from shoprank.settings import Settings
from training.dataset import build_training_frame, time_split
from training.evaluate import evaluate_scores

log = logging.getLogger(__name__)

MODEL_FILE = "model.json"
CARD_FILE = "candidate.json"


@dataclass
class CandidateCard:
    """Everything the registry records about a trained model."""

    run_date: str
    feature_service: str
    feature_columns: list[str]
    n_categories: int
    metrics: dict[str, float]
    train_rows: int
    holdout_rows: int
    train_window: list[str]
    holdout_window: list[str]
    params: dict[str, float | int | str]


def candidate_dir(settings: Settings, run_date: date) -> Path:
    return settings.home_dir / "models" / "candidates" / run_date.isoformat()


def _with_positive_groups(frame: pd.DataFrame) -> pd.DataFrame:
    """Requests with no click carry no ranking signal for LambdaMART; dropping them only saves time."""
    has_positive = frame.groupby("request_id")["relevance"].transform("max") > 0
    return frame[has_positive].reset_index(drop=True)


def train_ranker(settings: Settings, run_date: date) -> dict:
    """Build the training set, fit the ranker, evaluate it on the holdout next to the baselines, save a candidate."""
    from xgboost import XGBRanker

    cfg = settings.training
    frame = build_training_frame(settings, run_date, cfg.feature_service)
    train, holdout = time_split(frame, cfg.holdout_days, cfg.burn_in_days)
    train = _with_positive_groups(train)
    if train.empty:
        raise ValueError("no training request has a click: nothing to learn from")
    feature_columns = model_feature_columns()
    params: dict[str, float | int | str] = {
        "objective": "rank:ndcg",
        "n_estimators": cfg.n_estimators,
        "max_depth": cfg.max_depth,
        "learning_rate": cfg.learning_rate,
        "tree_method": "hist",
        "random_state": cfg.seed,
        "n_jobs": 2,
    }
    ranker = XGBRanker(**params)
    group_ids = pd.factorize(train["request_id"])[0]
    ranker.fit(model_matrix(train, feature_columns), train["relevance"].to_numpy(), qid=group_ids)

    scored = holdout.assign(
        model_score=ranker.predict(model_matrix(holdout, feature_columns)),
        random_score=np.random.default_rng(cfg.seed).random(len(holdout)),
    )
    metrics = evaluate_scores(
        scored,
        {"model": "model_score", "popularity": POPULARITY_FEATURE, "random": "random_score"},
        k=cfg.ndcg_k,
    )
    log.info("holdout metrics: %s", metrics)

    out = candidate_dir(settings, run_date)
    out.mkdir(parents=True, exist_ok=True)
    ranker.save_model(out / MODEL_FILE)
    card = CandidateCard(
        run_date=run_date.isoformat(),
        feature_service=cfg.feature_service,
        feature_columns=feature_columns,
        n_categories=settings.simulator.categories,
        metrics=metrics,
        train_rows=len(train),
        holdout_rows=len(holdout),
        train_window=[str(train["dt"].min()), str(train["dt"].max())],
        holdout_window=[str(holdout["dt"].min()), str(holdout["dt"].max())],
        params=params,
    )
    (out / CARD_FILE).write_text(json.dumps(asdict(card), indent=2))
    return {"candidate_dir": str(out), **metrics}
