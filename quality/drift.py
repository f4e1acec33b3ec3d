"""The drift gate: population stability index (PSI) of every model feature, the run's day vs the training window.

Feature rows are rebuilt from the marts exactly as training sees them: each impression of ``training_examples``
joined to the user and item snapshots of its day (the daily snapshot at 00:00 is what Feast's point-in-time join
returns for that day), then ``add_derived_features``. The reference is the training window (after the burn-in
days, before the run's day; its last ``drift_reference_days`` days unless 0); the current sample is the run's day.

PSI = sum over bins of (cur - ref) * ln(cur / ref), bins from the reference's quantiles (missing values are a bin
of their own). Below ``drift_warn_psi`` a feature is "ok", from it "warn", from ``drift_block_psi`` "block": any
blocking feature raises :class:`DataQualityError`. The per-feature report goes to
``quality_dir/drift-<run_date>.json`` either way. The gate judges the build (``settings.marts_build_dir``, before
``publish``) and records its fingerprint; monitoring reads the published marts.

:func:`drift_report` joins, bins and counts in DuckDB (quality.drift_sql) within the step's memory budget, so only
counts reach Python; :func:`feature_rows` and :func:`psi` are the pandas reference it equals (tests/data/
test_drift_sql.py) and what monitoring scores with.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quality.runner import DataQualityError
from shoprank.gate_records import drift_report_path
from shoprank.mart_files import mart_exists, read_mart
from shoprank.ranking_features import CATEGORY_KEY, QUERY_FEATURES, add_derived_features, model_feature_columns
from shoprank.settings import Settings

log = logging.getLogger(__name__)

# Marts joined on (keys, feature_ts) besides user_features and item_features.
WINDOW_MARTS = {
    "user_window_features": ["user_id", "feature_ts"],
    "item_window_features": ["item_id", "feature_ts"],
    "user_category_features": ["user_id", CATEGORY_KEY, "feature_ts"],
}
EPSILON = 1e-4  # floor for empty bins, so one empty bin does not make the index infinite


def _read_mart(marts: Path, name: str, days: Collection[date] | None, columns: list[str] | None = None) -> pd.DataFrame:
    """A mart's export (its file or day files: shoprank/mart_files.py); given ``days``, only the rows of those dt
    partitions, filtered while reading (dt is the impression's day or the feature day, so no other row could join):
    a day's rows, not the whole history."""
    if days is None:
        return read_mart(marts, name, columns)
    return read_mart(marts, name, columns, filters=[("dt", "in", sorted(set(days)))])


def feature_rows(
    settings: Settings, run_date: date, marts: Path | None = None, days: Collection[date] | None = None
) -> pd.DataFrame:
    """One row per impression up to the run's day (of ``days`` only, when given) with its model features as of the
    start of its day, from the marts in ``marts`` (default: the published ones)."""
    marts = marts or settings.marts_export_dir
    columns = ["impression_id", "user_id", "item_id", "event_ts"]
    examples = _read_mart(marts, "training_examples", days, columns)
    examples["feature_ts"] = examples["event_ts"].dt.floor("D")
    examples = examples[examples["feature_ts"].dt.date <= run_date]
    if days is not None:
        examples = examples[examples["feature_ts"].dt.date.isin(set(days))]
    users = _read_mart(marts, "user_features", days).drop(columns=["dt"], errors="ignore")
    items = _read_mart(marts, "item_features", days).drop(columns=["dt"], errors="ignore")
    frame = examples.merge(users, on=["user_id", "feature_ts"], how="left").merge(
        items, on=["item_id", "feature_ts"], how="left"
    )
    # ranker_v3's marts, when built: the champion's score drift needs every column it scores with.
    for mart, keys in WINDOW_MARTS.items():
        if mart_exists(marts, mart):
            rows = _read_mart(marts, mart, days).drop(columns=["dt"], errors="ignore")
            rows = rows.drop(columns=[c for c in rows.columns if c in frame.columns and c not in keys])
            if CATEGORY_KEY in keys:
                frame[CATEGORY_KEY] = pd.to_numeric(frame["item_category_id"], errors="coerce").astype("Int64")
            frame = frame.merge(rows, on=keys, how="left")
    if mart_exists(marts, "query_item_match"):
        matches = _read_mart(marts, "query_item_match", days, ["impression_id", *QUERY_FEATURES])
        frame = frame.merge(matches, on="impression_id", how="left")
    frame = add_derived_features(frame, settings.simulator.categories)
    frame["day"] = frame["feature_ts"].dt.date
    return frame


def reference_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges of non-missing reference ``values``: the order statistics at ranks ceil(n * i / bins) - 1,
    i = 0..bins (inverted-CDF quantiles, ranks in integers so float rounding never moves one; DuckDB picks the same
    ones in quality.drift_sql), deduplicated, less the outer two: the outer bins are open-ended, so values beyond the
    reference's range still land somewhere."""
    n = len(values)
    if not n:
        return np.array([])
    ranks = [max(0, -(-n * i // bins) - 1) for i in range(bins + 1)]
    return np.unique(np.sort(values)[ranks])[1:-1]


def bin_counts(values: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Counts per bin (a value equal to an edge goes below it, with the reference values equal to it), then the
    missing ones."""
    missing = np.isnan(values)
    counts = np.bincount(np.searchsorted(inner, values[~missing], side="left"), minlength=len(inner) + 1)
    return np.append(counts, missing.sum()).astype(float)


def psi_from_counts(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI of two count vectors over the same bins; empty bins floored at EPSILON of their window."""
    expected = np.maximum(reference / max(reference.sum(), 1), EPSILON)
    actual = np.maximum(current / max(current.sum(), 1), EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def psi(reference: pd.Series, current: pd.Series, bins: int) -> float:
    """Population stability index of ``current`` against ``reference`` (numeric; NaN is its own bin)."""
    ref = pd.to_numeric(reference, errors="coerce").to_numpy(dtype=float)
    cur = pd.to_numeric(current, errors="coerce").to_numpy(dtype=float)
    inner = reference_edges(ref[~np.isnan(ref)], bins)
    return psi_from_counts(bin_counts(ref, inner), bin_counts(cur, inner))


def reference_window(settings: Settings, days: list[date], run_date: date) -> list[date]:
    """The reference days among ``days`` (those with impressions): after the burn-in, before the run's day, the last
    ``drift_reference_days`` of them (all when 0)."""
    earlier = sorted(d for d in days if d < run_date)
    reference_days = earlier[settings.training.burn_in_days :] or earlier
    if settings.quality.drift_reference_days:
        reference_days = reference_days[-settings.quality.drift_reference_days :]
    return reference_days


def drift_report(settings: Settings, run_date: date, marts: Path | None = None) -> dict[str, Any]:
    """PSI per model feature with its status; the reference and current windows and their sizes. Counted in DuckDB
    within the step's memory budget (quality.drift_sql); :class:`shoprank.resources.MemoryBudgetError` if even
    spilling cannot keep it there."""
    from quality.drift_sql import FeatureCounts, count_bins, create_feature_rows, example_days
    from shoprank.resources import duckdb_connect, within_budget

    marts = marts or settings.marts_export_dir
    q = settings.quality
    columns = model_feature_columns()
    con = duckdb_connect(settings)
    try:
        with within_budget(settings, f"check-drift ({run_date})"):
            days = example_days(con, marts, run_date)
            reference_days = reference_window(settings, days, run_date)
            counted: dict[str, FeatureCounts] = {}
            rows = {"reference": 0, "current": 0}
            if reference_days:
                create_feature_rows(con, marts, reference_days, run_date, settings.simulator.categories, columns)
                counted, rows = count_bins(con, columns, q.drift_bins)
    finally:
        con.close()
    features: dict[str, dict[str, Any]] = {}
    for column in columns:
        if not rows["reference"] or not rows["current"]:
            break
        c = counted[column]
        value = round(psi_from_counts(c.reference, c.current), 4)
        status = "block" if value >= q.drift_block_psi else "warn" if value >= q.drift_warn_psi else "ok"
        features[column] = {
            "psi": value,
            "status": status,
            "reference_mean": _round(c.reference_mean),
            "current_mean": _round(c.current_mean),
        }
    return {
        "run_date": run_date.isoformat(),
        "reference_days": [d.isoformat() for d in reference_days],
        "reference_rows": rows["reference"],
        "current_rows": rows["current"],
        "thresholds": {"warn": q.drift_warn_psi, "block": q.drift_block_psi, "bins": q.drift_bins},
        "features": features,
    }


def _round(mean: float | None) -> float | None:
    return None if mean is None or np.isnan(mean) else round(mean, 4)


def report_path(settings: Settings, run_date: date) -> Path:
    return drift_report_path(settings, run_date)


def check_drift(settings: Settings, run_date: date) -> dict[str, Any]:
    """Write the drift report of the build; raise naming every blocking feature, log the warning ones; return a
    summary."""
    from shoprank.gate_records import build_fingerprint

    started = time.perf_counter()
    judged = build_fingerprint(settings)  # before reading: a build changed after this point is not publishable
    report = drift_report(settings, run_date, settings.marts_build_dir)
    report["build_fingerprint"] = judged
    report["elapsed_s"] = round(time.perf_counter() - started, 2)
    notes = []
    if not report["features"]:
        notes.append("no reference days or no rows on the run's day: drift not checked")
    blocked = {name: f for name, f in report["features"].items() if f["status"] == "block"}
    warned = {name: f for name, f in report["features"].items() if f["status"] == "warn"}
    report.update({"success": not blocked, "blocked": sorted(blocked), "warned": sorted(warned), "notes": notes})
    settings.quality_dir.mkdir(parents=True, exist_ok=True)
    out = report_path(settings, run_date)
    out.write_text(json.dumps(report, indent=2, default=str))
    for name, f in warned.items():
        log.warning(
            "drift warning on %s: PSI %.3f (mean %s -> %s)", name, f["psi"], f["reference_mean"], f["current_mean"]
        )
    if blocked:
        failures: list[dict[str, Any]] = [
            {
                "suite": "drift.psi",
                "table": "model_features",
                "partition": f"dt={run_date.isoformat()}",
                "expectation": "psi_below_block_threshold",
                "kwargs": {"feature": name, "block_psi": settings.quality.drift_block_psi},
                "unexpected_count": None,
                "sample": {"psi": f["psi"], "reference_mean": f["reference_mean"], "current_mean": f["current_mean"]},
                "exception": None,
            }
            for name, f in blocked.items()
        ]
        lines = [f"  {n}: PSI {f['psi']} mean {f['reference_mean']} -> {f['current_mean']}" for n, f in blocked.items()]
        raise DataQualityError(
            f"drift gate: {len(blocked)} feature(s) drifted beyond PSI {settings.quality.drift_block_psi} on"
            f" {run_date} vs {report['reference_days']} (report: {out}):\n" + "\n".join(lines),
            failures,
        )
    return {
        "run_date": run_date.isoformat(),
        "success": True,
        "elapsed_s": report["elapsed_s"],
        "report_path": str(out),
        "warned": report["warned"],
        "max_psi": max((f["psi"] for f in report["features"].values()), default=None),
        "notes": notes,
    }
