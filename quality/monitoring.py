"""Daily monitoring, reported not enforced: feature drift, score drift of the champion, and online metrics from the
service's request logs. Each function writes ``<home>/monitoring/<run_date>/<name>.json`` and returns a summary;
the shoprank_monitor DAG runs one task per function. (The blocking drift gate is the daily DAG's check_drift.)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprank.exposure import gini
from shoprank.settings import Settings

log = logging.getLogger(__name__)

# Rows of the champion's holdout scored at a time (score drift's reference).
HOLDOUT_BATCH_ROWS = 100_000


def _write(settings: Settings, run_date: date, name: str, report: dict[str, Any]) -> Path:
    path = settings.home_dir / "monitoring" / run_date.isoformat() / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str))
    return path


def _status(value: float, settings: Settings) -> str:
    quality = settings.quality
    return "block" if value >= quality.drift_block_psi else "warn" if value >= quality.drift_warn_psi else "ok"


def feature_drift(settings: Settings, run_date: date) -> dict[str, Any]:
    """PSI of every model feature, run's day vs the training window (the gate's report, without the gate)."""
    from quality.drift import drift_report

    report = drift_report(settings, run_date)
    flagged = {name: f["psi"] for name, f in report["features"].items() if f["status"] != "ok"}
    path = _write(settings, run_date, "feature_drift", report)
    log.info("feature drift on %s: %d features flagged %s", run_date, len(flagged), flagged)
    return {"report": str(path), "flagged": flagged, "features": len(report["features"])}


def score_drift(settings: Settings, run_date: date) -> dict[str, Any]:
    """PSI of the champion's scores: its own training holdout (reference) vs the run day's impressions."""
    from quality.drift import feature_rows, psi
    from shoprank.model_bundle import load_champion

    champion = load_champion(settings)
    current = feature_rows(settings, run_date, days=[run_date])
    if current.empty:
        raise ValueError(f"no impressions on {run_date} to score")
    # the served score (the bundle's objective), as the gate judged it
    reference_scores = pd.Series(holdout_scores(champion.metadata["holdout_path"], champion.score))
    current_scores = pd.Series(champion.score(current))
    value = round(psi(reference_scores, current_scores, settings.quality.drift_bins), 4)
    report = {
        "model_version": champion.tag,
        "psi": value,
        "status": _status(value, settings),
        "reference": {"rows": len(reference_scores), "mean": float(reference_scores.mean())},
        "current": {"rows": len(current), "mean": float(current_scores.mean())},
    }
    report["report"] = str(_write(settings, run_date, "score_drift", report))
    log.info("score drift of %s on %s: PSI %.4f (%s)", champion.tag, run_date, value, report["status"])
    return report


def holdout_scores(
    path: str | Path, score: Callable[[pd.DataFrame], np.ndarray], batch_rows: int = HOLDOUT_BATCH_ROWS
) -> np.ndarray:
    """``score`` of every row of the holdout file, scored batch by batch: the scores (a float a row) are kept, the
    holdout's hundred-odd feature columns never all at once (the PSI's quantile edges need every score)."""
    import pyarrow.parquet as pq

    parts = [np.zeros(0)]
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        parts.append(np.asarray(score(batch.to_pandas()), dtype=float))
    return np.concatenate(parts)


def online_metrics(settings: Settings, run_date: date) -> dict[str, Any]:
    """What the service did on the run's day, from its request and impression logs."""
    partition = f"dt={run_date.isoformat()}"
    requests_dir = settings.serving_logs_dir / "requests" / partition
    events_dir = settings.serving_logs_dir / "events" / partition
    if not requests_dir.exists():
        report: dict[str, Any] = {"requests": 0, "note": f"no request log under {requests_dir}"}
        report["report"] = str(_write(settings, run_date, "online_metrics", report))
        return report
    requests = pd.read_parquet(requests_dir)
    impressions = pd.read_parquet(events_dir) if events_dir.exists() else pd.DataFrame(columns=["item_id"])
    items = pd.read_parquet(
        settings.marts_export_dir / "item_features.parquet", columns=["item_id", "item_seller_id", "item_is_new"]
    ).drop_duplicates("item_id", keep="last")
    shown = impressions.merge(items, on="item_id", how="left")
    latency = requests["latency_ms"].astype(float)
    report = {
        "requests": len(requests),
        "degraded_share": round(float(requests["degraded"].mean()), 4),
        "latency_ms": {"p50": float(latency.quantile(0.5)), "p95": float(latency.quantile(0.95))},
        "model_versions": sorted(requests["model_version"].dropna().unique().tolist()),
        "impressions": len(shown),
        "distinct_items": int(shown["item_id"].nunique()),
        "new_item_share": round(float(shown["item_is_new"].fillna(0).mean()), 4) if len(shown) else 0.0,
        "seller_exposure_gini": round(gini(shown.groupby("item_seller_id").size().to_numpy()), 4),
    }
    report["report"] = str(_write(settings, run_date, "online_metrics", report))
    log.info("online metrics on %s: %s", run_date, report)
    return report
