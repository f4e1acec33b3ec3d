"""Train the rankers on a point-in-time training set and write them as a candidate.

The candidate (models, holdout rows, card, report) lands in ``<home>/models/candidates/<run_date>/``; registering
it in the model store (training.registry) and promoting it (training.gate) are separate steps, so a failed
training never touches what is serving.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from shoprank.model_bundle import ModelBundle
from shoprank.ranking_features import feature_columns_for
from shoprank.settings import Settings
from training.budget import chunk_rows
from training.chunks import Chunk, ChunkedSet, frame_to_chunks, read_chunk, split_days
from training.dask_fit import fit_engine
from training.holdout_eval import evaluate_holdout_chunks
from training.human_eval import human_judged_metrics
from training.pit_dataset import build_chunked_training_set
from training.reliability import ConstantTracker, summary_warnings
from training.streaming import fit_classifier_chunks, fit_ranker_chunks

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
    # Share of non-clicked fit impressions the CTR model saw (weighted 1/rate); 1.0: no down-sampling. Below
    # training.negative_sample_rate when training.max_fit_negatives capped it.
    negative_sample_rate: float = 1.0
    # Share of the fit days' requests the ranker learned from (training.max_ranker_rows); 1.0: all.
    ranker_sample_rate: float = 1.0
    # Who fitted the models: "xgboost" in this process, or "xgboost.dask" on the scheduler
    # training.dask_scheduler_address names, with that many workers.
    engine: str = "xgboost"
    dask_scheduler: str = ""
    dask_workers: int = 0


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


def json_safe(metrics: dict[str, float]) -> dict[str, float | None]:
    """An undefined metric (NaN, e.g. AUC of a holdout with one class) becomes None: strict JSON and BentoML
    metadata reject NaN and infinities."""
    return {k: (float(v) if v is not None and math.isfinite(v) else None) for k, v in metrics.items()}


def _importance(ranker: Any, feature_columns: list[str]) -> dict[str, float]:
    gains = ranker.get_booster().get_score(importance_type="gain")
    named = {feature_columns[int(key[1:])]: float(v) for key, v in gains.items() if key[1:].isdigit()}
    return dict(sorted(named.items(), key=lambda kv: -kv[1]))


def training_scratch_dir(settings: Settings, run_date: date) -> Path:
    """Where the run's training set chunks and scratch files go (deleted once the candidate is written)."""
    return settings.home_dir / "tmp" / "training" / run_date.isoformat()


def train_ranker(settings: Settings, run_date: date) -> dict:
    """Build the point-in-time training set in chunks (DuckDB over the published marts), fit ranker + CTR + CVR
    models with early stopping from the chunks, evaluate on the holdout next to the baselines and the oracle, and
    write the candidate with its card and HTML report."""
    scratch = training_scratch_dir(settings, run_date)
    try:
        chunked = build_chunked_training_set(settings, run_date, settings.training.feature_service, scratch / "set")
        return train_on_chunks(settings, run_date, chunked, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def train_on_frame(settings: Settings, run_date: date, frame: pd.DataFrame, rows_per_chunk: int | None = None) -> dict:
    """``train_ranker`` from a built training frame (one row per impression, features, labels, ``dt``): the frame
    is written as chunks (``rows_per_chunk`` rows, else sized by the memory budget) and trained on like any run."""
    scratch = training_scratch_dir(settings, run_date)
    try:
        rows = rows_per_chunk or chunk_rows(settings, len(frame.columns))
        return train_on_chunks(settings, run_date, frame_to_chunks(frame, scratch / "set", rows), scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _days(chunks: list[Chunk]) -> list[str]:
    days = sorted({chunk.day for chunk in chunks})
    return [str(days[0]), str(days[-1])] if days else []


def train_on_chunks(settings: Settings, run_date: date, chunked: ChunkedSet, scratch: Path) -> dict:
    """Fit and evaluate from a chunked training set, one chunk in memory at a time.

    A small or degenerate holdout never fails training: undefined metrics are None and the card's ``warnings``
    say why the figures are not reliable (training.reliability)."""
    cfg = settings.training
    fit_days, validation_days, holdout_days = split_days(
        chunked.days, cfg.holdout_days, cfg.burn_in_days, cfg.validation_days
    )
    fit, validation = chunked.on_days(fit_days), chunked.on_days(validation_days)
    holdout = chunked.on_days(holdout_days)
    feature_columns = feature_columns_for(cfg.feature_service, settings.simulator.categories)
    missing = [c for c in feature_columns if c not in chunked.columns]
    if missing:
        raise KeyError(f"feature columns missing from the training set: {missing}")

    with fit_engine(cfg) as engine:
        ranker, ranker_params = fit_ranker_chunks(cfg, fit, validation, feature_columns, engine)
        ctr, ctr_params = fit_classifier_chunks(cfg, fit, validation, feature_columns, "label_click", engine=engine)
        cvr, cvr_params = fit_classifier_chunks(
            cfg, fit, validation, feature_columns, "label_purchase", clicks_only=True, engine=engine
        )
        engine_card = engine.card()
    if cfg.objective == "gmv" and (ctr is None or cvr is None):
        raise ValueError("objective=gmv needs clicks and purchases in the training days to fit CTR and CVR models")
    bundle = ModelBundle(ranker=ranker, feature_columns=feature_columns, objective=cfg.objective, ctr=ctr, cvr=cvr)
    log.info(
        "fitted: ranker %s trees, CTR %s, CVR %s",
        *(p.get("n_estimators") for p in (ranker_params, ctr_params, cvr_params)),
    )

    out = candidate_dir(settings, run_date)
    out.mkdir(parents=True, exist_ok=True)
    evaluation = evaluate_holdout_chunks(settings, bundle, holdout, out / HOLDOUT_FILE, scratch / "truth")
    metrics, score_columns = evaluation.metrics, evaluation.score_columns
    # next to the click metrics: the same rankings judged by people (labelling's grades known on run_date)
    metrics.update(human_judged_metrics(settings, out / HOLDOUT_FILE, score_columns, run_date))
    k = cfg.ndcg_k
    log.info("holdout metrics: %s", {key: round(v, 4) for key, v in metrics.items() if "slice" not in key})
    constant = ConstantTracker(feature_columns)
    for chunk in [*fit, *validation]:
        constant.add(read_chunk(chunk, feature_columns))
    min_clicked = cfg.gate.min_holdout_requests_with_click
    warnings = summary_warnings(
        evaluation.summary, metrics, constant.constant(set(chunked.columns)), feature_columns, min_clicked
    )
    for warning in warnings:
        log.warning("candidate %s: %s", run_date, warning)

    ranker.save_model(out / MODEL_FILE)
    for model, name in ((ctr, CTR_MODEL_FILE), (cvr, CVR_MODEL_FILE)):
        (out / name).unlink(missing_ok=True)
        if model is not None:
            model.save_model(out / name)
    card = CandidateCard(
        run_date=run_date.isoformat(),
        feature_service=cfg.feature_service,
        feature_columns=feature_columns,
        n_categories=settings.simulator.categories,
        metrics=json_safe(metrics),
        train_rows=sum(chunk.rows for chunk in [*fit, *validation]),
        holdout_rows=evaluation.summary.rows,
        train_window=_days([*fit, *validation]),
        holdout_window=_days(holdout),
        validation_window=_days(validation),
        params={"ranker": ranker_params, "ctr": ctr_params, "cvr": cvr_params},
        objective=cfg.objective,
        code_version=code_version(settings.project_root),
        holdout_path=str(out / HOLDOUT_FILE),
        report_path=str(out / REPORT_FILE),
        feature_importance=_importance(ranker, feature_columns),
        calibration=evaluation.calibration,
        holdout_requests=evaluation.summary.requests,
        holdout_requests_with_click=evaluation.summary.requests_with_click,
        warnings=warnings,
        negative_sample_rate=ctr_params.get("negative_sample_rate", 1.0),
        ranker_sample_rate=ranker_params.get("request_sample_rate", 1.0),
        **engine_card,
    )
    from training.report import write_report

    write_report(out / REPORT_FILE, asdict(card), evaluation.sample, score_columns)
    (out / CARD_FILE).write_text(json.dumps(asdict(card), indent=2))
    headline = {key: metrics[key] for key in metrics if key.endswith(f"_ndcg@{k}") and not key.startswith("slice_")}
    return {"candidate_dir": str(out), "report": str(out / REPORT_FILE), **json_safe(headline), "warnings": warnings}
