"""Run GX suites through one file-backed context, so every run lands in Data Docs: over in-memory frames with GX's
pandas engine (the raw partitions of a day), or over DuckDB relations with quality.sql_expectations (the marts).

The context lives in ``settings.quality_dir / "gx"`` (generated, never in the repository). Suites, batch
definitions and checkpoints are re-declared with ``add_or_update`` on every run: the code is the source of truth,
the files are only GX's bookkeeping and the Data Docs site.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoprank.settings import Settings

if TYPE_CHECKING:
    import duckdb
    import great_expectations as gx
    import pandas as pd

log = logging.getLogger(__name__)


class DataQualityError(RuntimeError):
    """A suite failed; ``failures`` holds one dict per failed expectation (suite, table, expectation, sample)."""

    def __init__(self, message: str, failures: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.failures = failures


@dataclass
class Batch:
    """One frame to validate with one suite; ``partition`` names where the rows came from (for the log).

    The suite comes as a factory: GX binds a suite to the context that is current when it is built.
    """

    table: str
    frame: pd.DataFrame
    make_suite: Callable[[], gx.ExpectationSuite]
    partition: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SqlBatch:
    """One DuckDB relation (a view or table name, or a parenthesised query) to validate with one suite."""

    table: str
    relation: str
    make_suite: Callable[[], gx.ExpectationSuite]
    partition: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def gx_root(settings: Settings) -> Path:
    return settings.quality_dir / "gx"


def get_context(settings: Settings) -> Any:
    import great_expectations as gx  # heavy import (~4 s): only when validating
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its INFO lines drown the task log
    root = gx_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(root))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # no tqdm noise in task logs
    return context


def _jsonable(value: Any) -> Any:
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def failures_of(suite_name: str, table: str, partition: str, result: Any, sample_size: int) -> list[dict[str, Any]]:
    """One dict per failed expectation of a suite result, with a sample of the offending values."""
    failed = []
    for r in result.results:
        if r.success:
            continue
        config = r.expectation_config
        details = r.result or {}
        sample = details.get("partial_unexpected_list") or details.get("observed_value")
        exception = r.exception_info if isinstance(r.exception_info, dict) else {}
        failed.append(
            {
                "suite": suite_name,
                "table": table,
                "partition": partition,
                "expectation": config.type,
                "kwargs": _jsonable({k: v for k, v in config.kwargs.items() if k != "batch_id"}),
                "unexpected_count": details.get("unexpected_count"),
                "sample": _jsonable(sample[:sample_size] if isinstance(sample, list) else sample),
                "exception": exception.get("exception_message"),
            }
        )
    return failed


def run_batches(
    settings: Settings, stage: str, run_name: str, batches: list[Batch]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Validate every batch with its suite in one checkpoint run; returns (results by suite, failures).

    Data Docs are rebuilt at the end when ``settings.quality.build_data_docs`` is on.
    """
    import great_expectations as gx

    context = get_context(settings)
    source = context.data_sources.add_or_update_pandas(name=stage)
    definitions = []
    suites = []
    for batch in batches:
        suite = context.suites.add_or_update(batch.make_suite())
        suites.append(suite)
        asset_name = suite.name
        try:
            asset = source.get_asset(asset_name)
        except LookupError:
            asset = source.add_dataframe_asset(name=asset_name)
        try:
            batch_definition = asset.get_batch_definition("whole_frame")
        except KeyError:
            batch_definition = asset.add_batch_definition_whole_dataframe("whole_frame")
        definitions.append(
            context.validation_definitions.add_or_update(
                gx.ValidationDefinition(name=asset_name, data=batch_definition, suite=suite)
            )
        )

    results: dict[str, Any] = {}
    failures: list[dict[str, Any]] = []
    run_id = gx.RunIdentifier(run_name=run_name)
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": max(settings.quality.sample_size, 5)}
    for batch, suite, definition in zip(batches, suites, definitions, strict=True):
        suite_result = definition.run(
            batch_parameters={"dataframe": batch.frame}, result_format=result_format, run_id=run_id
        )
        results[suite.name] = {
            "table": batch.table,
            "partition": batch.partition,
            "rows": len(batch.frame),
            **batch.extra,
            "success": bool(suite_result.success),
            "statistics": _jsonable(suite_result.statistics),
            "results": [_jsonable(r.to_json_dict()) for r in suite_result.results],
        }
        failures.extend(
            failures_of(suite.name, batch.table, batch.partition, suite_result, settings.quality.sample_size)
        )
    if settings.quality.build_data_docs:
        context.build_data_docs()
    return results, failures


def run_sql_batches(
    settings: Settings, stage: str, run_name: str, con: duckdb.DuckDBPyConnection, batches: list[SqlBatch]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Validate every relation with its suite in DuckDB (quality.sql_expectations); the same results and failures
    as :func:`run_batches`. The suite results are stored in the GX context like a checkpoint's, so Data Docs show
    them."""
    import great_expectations as gx
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    from quality.sql_expectations import evaluate

    context = get_context(settings)
    run_id = gx.RunIdentifier(run_name=run_name)
    sample_size = max(settings.quality.sample_size, 5)
    results: dict[str, Any] = {}
    failures: list[dict[str, Any]] = []
    for batch in batches:
        suite = context.suites.add_or_update(batch.make_suite())
        ((rows,),) = con.execute(f"select count(*) from {batch.relation}").fetchall()
        outcomes = [evaluate(con, batch.relation, expectation, sample_size) for expectation in suite.expectations]
        passed = sum(1 for r in outcomes if r.success)
        statistics = {
            "evaluated_expectations": len(outcomes),
            "successful_expectations": passed,
            "unsuccessful_expectations": len(outcomes) - passed,
            "success_percent": 100.0 * passed / len(outcomes) if outcomes else None,
        }
        batch_id = f"{stage}-{suite.name}"
        suite_result = ExpectationSuiteValidationResult(
            success=passed == len(outcomes),
            results=outcomes,
            suite_name=suite.name,
            statistics=statistics,
            batch_id=batch_id,
            meta={
                "great_expectations_version": gx.__version__,
                "expectation_suite_name": suite.name,
                "run_id": run_id.to_json_dict(),
                "validation_time": run_id.run_time.isoformat(),
                "active_batch_definition": {
                    "datasource_name": f"{stage} (duckdb)",
                    "data_connector_name": "quality.sql_expectations",
                    "data_asset_name": suite.name,
                    "batch_identifiers": {"partition": batch.partition or "all"},
                },
                "batch_spec": {"relation": batch.relation[:500]},
                "batch_markers": {},
                "batch_parameters": None,
            },
        )
        context.validation_results_store.store_validation_results(
            suite_validation_result=suite_result,
            suite_validation_result_identifier=ValidationResultIdentifier(
                expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite.name),
                run_id=run_id,
                batch_identifier=batch_id,
            ),
        )
        results[suite.name] = {
            "table": batch.table,
            "partition": batch.partition,
            "rows": rows,
            **batch.extra,
            "success": bool(suite_result.success),
            "statistics": _jsonable(statistics),
            "results": [_jsonable(r.to_json_dict()) for r in outcomes],
        }
        failures.extend(
            failures_of(suite.name, batch.table, batch.partition, suite_result, settings.quality.sample_size)
        )
    if settings.quality.build_data_docs:
        context.build_data_docs()
    return results, failures


def failure_lines(failures: list[dict[str, Any]]) -> list[str]:
    return [
        f"  {f['suite']} on {f['table']}{' ' + f['partition'] if f['partition'] else ''}: "
        f"{f['expectation']}({f['kwargs']}) unexpected={f['unexpected_count']} sample={f['sample']}"
        + (f" error={f['exception']}" if f["exception"] else "")
        for f in failures
    ]
