"""Run the mart suites and keep their results.

The marts are read from the parquet files dbt exported (the exact bytes Feast and training read), through an
ephemeral GX context: nothing is written into the repository; results go to ``settings.quality_dir``.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from shoprank.quality.suites import MART_SUITES
from shoprank.settings import Settings, apply_runtime_env

log = logging.getLogger(__name__)


class DataQualityError(RuntimeError):
    """A suite failed; ``failures`` holds one dict per failed expectation (suite, table, expectation, sample)."""

    def __init__(self, message: str, failures: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.failures = failures


def read_mart(settings: Settings, name: str) -> pd.DataFrame:
    path = settings.marts_export_dir / f"{name}.parquet"
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


def validate_marts(settings: Settings, run_date: date) -> dict[str, Any]:
    """Validate the marts of ``run_date``'s build; write results to ``quality_dir/marts-<run_date>.json``.

    Raises :class:`DataQualityError` naming the suite, table, failed expectations and sample values when any
    expectation fails (the results file is written first either way). Returns a summary.
    """
    apply_runtime_env(settings)
    frames = {name: read_mart(settings, name) for name in MART_SUITES}
    results, failures = validate_frames(frames)
    settings.quality_dir.mkdir(parents=True, exist_ok=True)
    out: Path = settings.quality_dir / f"marts-{run_date.isoformat()}.json"
    payload = {"run_date": run_date.isoformat(), "success": not failures, "failures": failures, "results": results}
    out.write_text(json.dumps(payload, indent=2, default=str))
    summary = {
        "run_date": run_date.isoformat(),
        "success": not failures,
        "results_path": str(out),
        "tables": {
            table: {
                "rows": len(frames[table]),
                "expectations": len(result["results"]),
                "failed": sum(1 for f in failures if f["table"] == table),
            }
            for table, result in results.items()
        },
    }
    if failures:
        lines = [
            f"  {f['suite']} on {f['table']}: {f['expectation']}({f['kwargs']})"
            f" unexpected={f['unexpected_count']} sample={f['sample']}"
            for f in failures
        ]
        raise DataQualityError(
            f"{len(failures)} expectation(s) failed on the marts of {run_date} (results: {out}):\n" + "\n".join(lines),
            failures,
        )
    log.info("mart suites passed for %s: %s", run_date, summary["tables"])
    return summary
