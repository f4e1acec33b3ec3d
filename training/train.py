"""Train the rankers on a point-in-time training set and write them as a candidate.

The candidate (models, holdout rows, card, report) lands in ``<home>/models/candidates/<run_date>/``; registering
it in the model store (training.registry) and promoting it (training.gate) are separate steps, so a failed
training never touches what is serving.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprank.model_bundle import ModelBundle
from shoprank.ranking_features import POPULARITY_FEATURE, feature_columns_for
from shoprank.settings import Settings
from training.dataset import add_slice_flags, build_training_frame, time_split, validation_split
from training.evaluate import auc, calibration_table, evaluate_holdout, expected_calibration_error
from training.models import fit_classifier, fit_ranker
from training.reliability import holdout_warnings, requests_with_click

log = logging.getLogger(__name__)

MODEL_FILE = "model.json"
CTR_MODEL_FILE = "ctr_model.json"
CVR_MODEL_FILE = "cvr_model.json"
CARD_FILE = "candidate.json"
HOLDOUT_FILE = "holdout.parquet"
REPORT_FILE = "report.html"


@dataclass
class CandidateCard:
    """Everything the registry records about a trained model (it becomes the BentoML model's metadata)."""

    run_date: str
    feature_service: str
    feature_columns: list[str]
    n_categories: int
    metrics: dict[str, float | None]
    train_rows: int
    holdout_rows: int
    train_window: list[str]
    holdout_window: list[str]
    params: dict[str, Any]
    objective: str = "ndcg"
    validation_window: list[str] = field(default_factory=list)
    code_version: str = "unknown"
    holdout_path: str = ""
    report_path: str = ""
    feature_importance: dict[str, float] = field(default_factory=dict)
    calibration: dict[str, list[float]] = field(default_factory=dict)
    # How much the holdout can say (the gate refuses below training.gate.min_holdout_requests_with_click), and
    # why its metrics may not be reliable (training.reliability).
    holdout_requests: int = 0
    holdout_requests_with_click: int = 0
    warnings: list[str] = field(default_factory=list)


def candidate_dir(settings: Settings, run_date: date) -> Path:
    return settings.home_dir / "models" / "candidates" / run_date.isoformat()


def code_version(project_root: Path) -> str:
    """The git commit of the code that trained (``-dirty`` with uncommitted changes); "unknown" outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=project_root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=project_root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def _window(frame: pd.DataFrame) -> list[str]:
    return [str(frame["dt"].min()), str(frame["dt"].max())] if len(frame) else []


def json_safe(metrics: dict[str, float]) -> dict[str, float | None]:
    """An undefined metric (NaN, e.g. AUC of a holdout with one class) becomes None: strict JSON and BentoML
    metadata reject NaN and infinities."""
    return {k: (float(v) if v is not None and math.isfinite(v) else None) for k, v in metrics.items()}


def add_oracle_scores(settings: Settings, scored: pd.DataFrame) -> pd.DataFrame:
    """The simulator's hidden truth as two more scores (evaluation only); unchanged when there is no truth."""
    if not (settings.truth_dir / "params.json").exists():
        log.info("no simulator truth under %s: oracle metrics skipped", settings.truth_dir)
        return scored
    from shoprank.truth import oracle_scores

    return scored.assign(
        oracle_score=oracle_scores(settings.truth_dir, scored, "p_click"),
        oracle_purchase_score=oracle_scores(settings.truth_dir, scored, "p_purchase"),
    )


def score_holdout(
    settings: Settings, bundle: ModelBundle, holdout: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The holdout with every score column evaluated next to each other, and their names."""
    scored = holdout.assign(
        model_score=bundle.score(holdout),
        ranker_score=bundle.ranker_scores(holdout),
        random_score=np.random.default_rng(settings.training.seed).random(len(holdout)),
    )
    columns = {"model": "model_score", "popularity": POPULARITY_FEATURE, "random": "random_score"}
    if bundle.objective != "ndcg":
        columns["ranker"] = "ranker_score"
    p_click = bundle.click_probability(holdout)
    if p_click is not None:
        scored["ctr_score"] = p_click
    p_purchase = bundle.purchase_probability(holdout)
    if p_purchase is not None:
        scored["purchase_score"] = p_purchase
    scored = add_oracle_scores(settings, scored)
    if "oracle_score" in scored.columns and scored["oracle_score"].notna().all():
        columns["oracle"] = "oracle_score"
        columns["oracle_purchase"] = "oracle_purchase_score"
    return scored, columns


def _importance(ranker: Any, feature_columns: list[str]) -> dict[str, float]:
    gains = ranker.get_booster().get_score(importance_type="gain")
    named = {feature_columns[int(key[1:])]: float(v) for key, v in gains.items() if key[1:].isdigit()}
    return dict(sorted(named.items(), key=lambda kv: -kv[1]))


def train_ranker(settings: Settings, run_date: date) -> dict:
    """Build the training set, fit ranker + CTR + CVR models with early stopping, evaluate on the holdout next to
    the baselines and the oracle, and write the candidate with its card and HTML report."""
    frame = build_training_frame(settings, run_date, settings.training.feature_service)
    return train_on_frame(settings, run_date, add_slice_flags(settings, frame))


def train_on_frame(settings: Settings, run_date: date, frame: pd.DataFrame) -> dict:
    """``train_ranker`` from a built training frame (one row per impression, features, labels, ``dt``).

    A small or degenerate holdout never fails training: undefined metrics are None and the card's ``warnings``
    say why the figures are not reliable (training.reliability)."""
    cfg = settings.training
    train, holdout = time_split(frame, cfg.holdout_days, cfg.burn_in_days)
    fit, validation = validation_split(train, cfg.validation_days)
    feature_columns = feature_columns_for(cfg.feature_service, settings.simulator.categories)

    ranker, ranker_params = fit_ranker(cfg, fit, validation, feature_columns)
    ctr, ctr_params = fit_classifier(cfg, fit, validation, feature_columns, "label_click")
    clicked = (fit[fit["label_click"] == 1], validation[validation["label_click"] == 1])
    cvr, cvr_params = fit_classifier(cfg, *clicked, feature_columns, "label_purchase")
    if cfg.objective == "gmv" and (ctr is None or cvr is None):
        raise ValueError("objective=gmv needs clicks and purchases in the training days to fit CTR and CVR models")
    bundle = ModelBundle(ranker=ranker, feature_columns=feature_columns, objective=cfg.objective, ctr=ctr, cvr=cvr)

    scored, score_columns = score_holdout(settings, bundle, holdout)
    metrics = evaluate_holdout(scored, score_columns, k=cfg.ndcg_k)
    k = cfg.ndcg_k
    if metrics.get(f"oracle_ndcg@{k}"):
        metrics[f"model_oracle_ratio@{k}"] = metrics[f"model_ndcg@{k}"] / metrics[f"oracle_ndcg@{k}"]
    calibration: dict[str, list[float]] = {}
    if "ctr_score" in scored.columns:
        table = calibration_table(scored["label_click"], scored["ctr_score"])
        metrics["ctr_ece"] = expected_calibration_error(table)
        metrics["ctr_auc_click"] = auc(scored["label_click"], scored["ctr_score"])
        if "purchase_score" in scored.columns:
            metrics["purchase_auc_purchase"] = auc(scored["label_purchase"], scored["purchase_score"])
        calibration = {"predicted": table["predicted"].tolist(), "observed": table["observed"].tolist()}
    log.info("holdout metrics: %s", {key: round(v, 4) for key, v in metrics.items() if "slice" not in key})
    min_clicked = cfg.gate.min_holdout_requests_with_click
    warnings = holdout_warnings(scored, score_columns, metrics, train, feature_columns, min_clicked)
    for warning in warnings:
        log.warning("candidate %s: %s", run_date, warning)

    out = candidate_dir(settings, run_date)
    out.mkdir(parents=True, exist_ok=True)
    ranker.save_model(out / MODEL_FILE)
    for model, name in ((ctr, CTR_MODEL_FILE), (cvr, CVR_MODEL_FILE)):
        (out / name).unlink(missing_ok=True)
        if model is not None:
            model.save_model(out / name)
    scored.to_parquet(out / HOLDOUT_FILE, index=False)
    card = CandidateCard(
        run_date=run_date.isoformat(),
        feature_service=cfg.feature_service,
        feature_columns=feature_columns,
        n_categories=settings.simulator.categories,
        metrics=json_safe(metrics),
        train_rows=len(train),
        holdout_rows=len(holdout),
        train_window=_window(train),
        holdout_window=_window(holdout),
        validation_window=_window(validation),
        params={"ranker": ranker_params, "ctr": ctr_params, "cvr": cvr_params},
        objective=cfg.objective,
        code_version=code_version(settings.project_root),
        holdout_path=str(out / HOLDOUT_FILE),
        report_path=str(out / REPORT_FILE),
        feature_importance=_importance(ranker, feature_columns),
        calibration=calibration,
        holdout_requests=int(holdout["request_id"].nunique()),
        holdout_requests_with_click=requests_with_click(holdout),
        warnings=warnings,
    )
    from training.report import write_report

    write_report(out / REPORT_FILE, asdict(card), scored, score_columns)
    (out / CARD_FILE).write_text(json.dumps(asdict(card), indent=2))
    headline = {key: metrics[key] for key in metrics if key.endswith(f"_ndcg@{k}") and not key.startswith("slice_")}
    return {"candidate_dir": str(out), "report": str(out / REPORT_FILE), **json_safe(headline), "warnings": warnings}
