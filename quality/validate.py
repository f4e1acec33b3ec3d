"""Run the mart suites and keep their results.

The marts are read from the parquet files dbt exported to the build area (``settings.marts_build_dir``: the
candidate, which only ``publish`` hands to Feast, training and serving, and only once every gate passed) and
validated through the file-backed GX context of quality.runner: results and Data Docs go to
``settings.quality_dir``, with the fingerprint of the build judged (publish checks it).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from quality.runner import DataQualityError
from quality.suites import MART_SUITES
from shoprank.gate_records import marts_results_path
from shoprank.settings import Settings, apply_runtime_env

log = logging.getLogger(__name__)

__all__ = ["DataQualityError", "read_mart", "validate_frames", "validate_marts"]


def read_mart(settings: Settings, name: str) -> pd.DataFrame:
    """A mart of the current build (the candidate the gates judge)."""
    path = settings.marts_build_dir / f"{name}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"mart {name!r} not found at {path}: build the warehouse first")
    return pd.read_parquet(path)


def _failures(suite_name: str, table: str, result: Any) -> list[dict[str, Any]]:
    failed = []
    for r in result.results:
        if r.success:
            continue
        config = r.expectation_config
        details = r.result or {}
        sample = details.get("partial_unexpected_list") or details.get("observed_value")
        failed.append(
            {
                "suite": suite_name,
                "table": table,
                "expectation": config.type,
                "kwargs": {k: v for k, v in config.kwargs.items() if k != "batch_id"},
                "unexpected_count": details.get("unexpected_count"),
                "sample": sample[:5] if isinstance(sample, list) else sample,
                "exception": (r.exception_info or {}).get("exception_message")
                if isinstance(r.exception_info, dict)
                else None,
            }
        )
    return failed


def validate_frames(frames: dict[str, pd.DataFrame]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Validate ``{mart name: frame}`` with the matching suites; returns (JSON-able results, failures)."""
    import great_expectations as gx  # heavy import (~4 s): only when validating
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # no tqdm noise in task logs
    source = context.data_sources.add_pandas(name="marts")
    results: dict[str, Any] = {}
    failures: list[dict[str, Any]] = []
    for table, frame in frames.items():
        suite = context.suites.add(MART_SUITES[table]())
        batch = source.add_dataframe_asset(name=table).add_batch_definition_whole_dataframe(f"{table}_all")
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{table}_validation", data=batch, suite=suite)
        )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=f"{table}_checkpoint",
                validation_definitions=[definition],
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5},
            )
        )
        checkpoint_result = checkpoint.run(batch_parameters={"dataframe": frame})
        for suite_result in checkpoint_result.run_results.values():
            results[table] = suite_result.to_json_dict()
            failures.extend(_failures(suite.name, table, suite_result))
    return results, failures


def raw_impressions(settings: Settings, run_date: date) -> pd.DataFrame:
    """Timestamps of the raw impressions in the partitions up to the run's day (what the marts were built from)."""
    frames = []
    for folder in sorted((settings.raw_dir / "events").glob("dt=*")):
        if folder.name.removeprefix("dt=") > run_date.isoformat():
            continue
        for path in sorted(folder.glob("*.parquet")):
            table = pq.read_table(path, columns=["event_type", "event_ts"])
            frames.append(table.to_pandas())
    if not frames:
        return pd.DataFrame({"event_ts": pd.Series([], dtype="datetime64[us, UTC]")})
    events = pd.concat(frames, ignore_index=True)
    return events.loc[events["event_type"] == "impression", ["event_ts"]]


def point_in_time_frame(frames: dict[str, pd.DataFrame], impressions: pd.DataFrame) -> pd.DataFrame:
    """One row per (mart, snapshot): impressions the snapshot counts, and raw impressions strictly before it."""
    times = np.sort(impressions["event_ts"].to_numpy(dtype="datetime64[us]"))
    rows = []
    for mart, column in (("user_features", "user_impressions_30d"), ("item_features", "item_impressions_7d")):
        per_snapshot = frames[mart].groupby("feature_ts")[column].sum()
        for feature_ts, counted in per_snapshot.items():
            cutoff = pd.Timestamp(feature_ts).tz_convert("UTC").tz_localize(None).to_datetime64()
            before = int(np.searchsorted(times, cutoff, side="left"))
            rows.append(
                {
                    "mart": mart,
                    "feature_ts": feature_ts,
                    "feature_impressions": int(counted),
                    "raw_impressions_before": before,
                }
            )
    return pd.DataFrame(rows, columns=["mart", "feature_ts", "feature_impressions", "raw_impressions_before"])


def results_path(settings: Settings, run_date: date) -> Path:
    return marts_results_path(settings, run_date)


def validate_marts(settings: Settings, run_date: date) -> dict[str, Any]:
    """Validate the marts of ``run_date``'s build; write results to ``quality_dir/marts-<run_date>.json``.

    Every mart Feast reads gets its suite (keys, ranges, freshness, row count against raw) and the snapshots get
    the point-in-time suite (no label leakage). Raises :class:`DataQualityError` naming the suite, table, failed
    expectations and sample values when any expectation fails (the results file and Data Docs are written first
    either way). Returns a summary.
    """
    from quality.runner import Batch, failure_lines, run_batches
    from quality.suites import DERIVED_MART_SUITES, MartContext, point_in_time_suite
    from shoprank.gate_records import build_fingerprint

    started = time.perf_counter()
    apply_runtime_env(settings)
    judged = build_fingerprint(settings)  # before reading: a build changed after this point is not publishable
    frames = {name: read_mart(settings, name) for name in MART_SUITES}
    impressions = raw_impressions(settings, run_date)
    ctx = MartContext(run_date=run_date, raw_impressions=len(impressions))
    batches = [Batch(name, frame, partial(MART_SUITES[name], ctx)) for name, frame in frames.items()]
    batches.append(Batch("point_in_time", point_in_time_frame(frames, impressions), point_in_time_suite))
    batches += [Batch(name, derive(frames), suite) for name, (derive, suite) in DERIVED_MART_SUITES.items()]
    results, failures = run_batches(settings, "marts", run_date.isoformat(), batches)
    elapsed = round(time.perf_counter() - started, 2)
    settings.quality_dir.mkdir(parents=True, exist_ok=True)
    out = results_path(settings, run_date)
    by_table = {result["table"]: result for result in results.values()}
    payload = {
        "run_date": run_date.isoformat(),
        "success": not failures,
        "elapsed_s": elapsed,
        "build_fingerprint": judged,
        "raw_impressions": ctx.raw_impressions,
        "failures": failures,
        "results": by_table,
    }
    out.write_text(json.dumps(payload, indent=2, default=str))
    summary = {
        "run_date": run_date.isoformat(),
        "success": not failures,
        "elapsed_s": elapsed,
        "results_path": str(out),
        "tables": {
            table: {
                "rows": result["rows"],
                "expectations": len(result["results"]),
                "failed": sum(1 for f in failures if f["table"] == table),
            }
            for table, result in by_table.items()
        },
    }
    if failures:
        raise DataQualityError(
            f"mart gate: {len(failures)} expectation(s) failed on the marts of {run_date} (results: {out}):\n"
            + "\n".join(failure_lines(failures)),
            failures,
        )
    log.info("mart suites passed for %s in %.1f s: %s", run_date, elapsed, summary["tables"])
    return summary
