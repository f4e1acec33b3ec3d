"""The three XGBoost models of a run, fitted with early stopping on the validation split.

- the LambdaMART ranker (grouped by request, graded relevance): the default served score;
- a CTR model (impression -> click) and a CVR model (click -> purchase), so the score can target expected GMV
  (pCTR x pCVR x price) and so the evaluation has calibrated probabilities to check.

Every hyperparameter comes from settings.training. Early stopping picks the number of trees on the validation days,
never fewer than ``min_trees`` (a small validation day peaks on noise after a tree or two); with
``refit_on_validation`` the final model is refit with that many trees on every training day (validation included),
so the newest day still teaches the model.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from shoprank.ranking_features import model_matrix
from shoprank.settings import TrainingSettings

log = logging.getLogger(__name__)


def tree_params(cfg: TrainingSettings) -> dict[str, Any]:
    return {
        "max_depth": cfg.max_depth,
        "learning_rate": cfg.learning_rate,
        "min_child_weight": cfg.min_child_weight,
        "subsample": cfg.subsample,
        "colsample_bytree": cfg.colsample_bytree,
        "reg_lambda": cfg.reg_lambda,
        "tree_method": "hist",
        "random_state": cfg.seed,
        "n_jobs": 2,
    }


def with_positive_groups(frame: pd.DataFrame) -> pd.DataFrame:
    """Requests with no click carry no ranking signal for LambdaMART; dropping them only saves time."""
    has_positive = frame.groupby("request_id")["relevance"].transform("max") > 0
    return frame[has_positive].reset_index(drop=True)


def _best_trees(model: Any, fallback: int) -> int:
    best = getattr(model, "best_iteration", None)
    return fallback if best is None else int(best) + 1


def with_tree_floor(picked: int, floor: int, most: int) -> int:
    """``picked`` (early stopping's choice) raised to ``floor``, which is itself capped by ``most`` trees."""
    floor = min(floor, most)
    if picked < floor:
        log.warning("early stopping picked %d trees: using the floor of %d (training.min_trees)", picked, floor)
    return max(picked, floor)


def fit_ranker(
    cfg: TrainingSettings, fit: pd.DataFrame, validation: pd.DataFrame, feature_columns: list[str]
) -> tuple[Any, dict[str, Any]]:
    """LambdaMART (rank:ndcg) grouped by request; returns the model and how it was fitted."""
    from xgboost import XGBRanker

    fit, validation = with_positive_groups(fit), with_positive_groups(validation)
    if fit.empty:
        raise ValueError("no training request has a click: nothing to learn from")
    params = {"objective": "rank:ndcg", **tree_params(cfg)}
    n_trees = cfg.n_estimators
    if not validation.empty:
        probe = XGBRanker(
            **params,
            n_estimators=cfg.n_estimators,
            early_stopping_rounds=cfg.early_stopping_rounds,
            eval_metric=f"ndcg@{cfg.ndcg_k}",
        )
        probe.fit(
            model_matrix(fit, feature_columns),
            fit["relevance"].to_numpy(),
            qid=pd.factorize(fit["request_id"])[0],
            eval_set=[(model_matrix(validation, feature_columns), validation["relevance"].to_numpy())],
            eval_qid=[pd.factorize(validation["request_id"])[0]],
            verbose=False,
        )
        picked = _best_trees(probe, cfg.n_estimators)
        n_trees = with_tree_floor(picked, cfg.min_trees, cfg.n_estimators)
        if not cfg.refit_on_validation and n_trees == picked:
            return probe, {**params, "n_estimators": n_trees, "early_stopped": True}
    # XGBoost wants each query's rows contiguous, with qid ascending. Without refit_on_validation the validation
    # days stay out (we get here then only when the tree floor overrode early stopping).
    parts = [fit, validation] if cfg.refit_on_validation else [fit]
    data = pd.concat(parts, ignore_index=True).sort_values("request_id", kind="mergesort")
    ranker = XGBRanker(**params, n_estimators=n_trees)
    ranker.fit(
        model_matrix(data, feature_columns), data["relevance"].to_numpy(), qid=pd.factorize(data["request_id"])[0]
    )
    log.info("ranker: %d trees (early stopping on %d validation rows)", n_trees, len(validation))
    return ranker, {**params, "n_estimators": n_trees, "early_stopped": not validation.empty}


def fit_classifier(
    cfg: TrainingSettings, fit: pd.DataFrame, validation: pd.DataFrame, feature_columns: list[str], label: str
) -> tuple[Any, dict[str, Any]]:
    """A binary:logistic model of ``label``; None when the label has a single class (nothing to learn)."""
    from xgboost import XGBClassifier

    data = pd.concat([fit, validation], ignore_index=True)
    if data[label].nunique() < 2:
        return None, {"skipped": f"{label} has a single class"}
    params = {"objective": "binary:logistic", **tree_params(cfg)}
    n_trees = cfg.classifier_n_estimators
    if not validation.empty and fit[label].nunique() == 2 and validation[label].nunique() == 2:
        probe = XGBClassifier(
            **params, n_estimators=n_trees, early_stopping_rounds=cfg.early_stopping_rounds, eval_metric="logloss"
        )
        probe.fit(
            model_matrix(fit, feature_columns),
            fit[label].to_numpy(),
            eval_set=[(model_matrix(validation, feature_columns), validation[label].to_numpy())],
            verbose=False,
        )
        n_trees = with_tree_floor(_best_trees(probe, n_trees), cfg.min_trees, n_trees)
    model = XGBClassifier(**params, n_estimators=n_trees)
    model.fit(model_matrix(data, feature_columns), data[label].to_numpy())
    return model, {**params, "n_estimators": n_trees}
