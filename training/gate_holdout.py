"""What the gate needs of a challenger's holdout, read without loading it: facts in DuckDB, metrics in batches.

The facts (rows, requests with a click, first and last day, columns) are one DuckDB query over the parquet file.
The comparison scores batches of whole requests (training.holdout_reader) with the challenger and the baseline and
folds them into training.streaming_eval.HoldoutAccumulator; AUC needs every row's rank, so the labels and the two
scores (four numbers a row, not the hundred-odd columns) are kept and ranked once at the end with
training.evaluate.auc. The metrics equal training.evaluate.evaluate_holdout's over the whole frame (up to float
summation order in the per-request means; tests/model/test_gate.py holds them together).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shoprank.resources import duckdb_connect, within_budget
from shoprank.settings import Settings
from training.evaluate import auc
from training.holdout_reader import BATCH_ROWS, request_batches
from training.streaming_eval import HoldoutAccumulator

# A scorer: the rows of a batch -> one score per row.
Scorer = Callable[[pd.DataFrame], np.ndarray | pd.Series]


@dataclass(frozen=True)
class HoldoutFacts:
    rows: int
    requests_with_click: int
    first_day: str | None
    last_day: str | None
    columns: tuple[str, ...]


def holdout_facts(settings: Settings, path: Path | str) -> HoldoutFacts:
    """Rows, requests with a click (label_click, else relevance > 0) and the day range of ``path``, in DuckDB."""
    import pyarrow.parquet as pq

    columns = tuple(pq.read_schema(path).names)
    label = "label_click" if "label_click" in columns else "relevance"
    days = "min(CAST(dt AS DATE)), max(CAST(dt AS DATE))" if "dt" in columns else "NULL, NULL"
    source = f"read_parquet('{str(path).replace(chr(39), chr(39) * 2)}')"
    with within_budget(settings, "reading the holdout's facts in DuckDB"):
        con = duckdb_connect(settings)
        try:
            rows, first, last = con.execute(f"SELECT count(*), {days} FROM {source}").fetchone()  # type: ignore[misc]
            (clicked,) = con.execute(
                f"SELECT count(*) FROM (SELECT request_id FROM {source} GROUP BY request_id "
                f'HAVING max(coalesce(TRY_CAST("{label}" AS DOUBLE), 0)) > 0)'
            ).fetchone()  # type: ignore[misc]
        finally:
            con.close()
    return HoldoutFacts(
        rows=int(rows),
        requests_with_click=int(clicked),
        first_day=str(first) if first is not None else None,
        last_day=str(last) if last is not None else None,
        columns=columns,
    )


def holdout_metrics(
    path: Path | str, scorers: dict[str, Scorer], k: int, batch_rows: int = BATCH_ROWS
) -> dict[str, float]:
    """evaluate_holdout's metrics of each named scorer ({name: score function}) over the holdout file, batch by
    batch; the score of ``name`` is the column ``<name>_score``."""
    columns = {name: f"{name}_score" for name in scorers}
    accumulator = HoldoutAccumulator(columns, k)
    labels: dict[str, list[np.ndarray]] = {"label_click": [], "label_purchase": []}
    scores: dict[str, list[np.ndarray]] = {name: [] for name in scorers}
    for batch in request_batches(path, batch_rows):
        scored = batch.assign(
            **{columns[name]: np.asarray(score(batch), dtype=float) for name, score in scorers.items()}
        )
        accumulator.add(scored)
        for label, kept in labels.items():
            if label in scored.columns:
                kept.append(scored[label].to_numpy(dtype=float))
        for name in scorers:
            scores[name].append(scored[columns[name]].to_numpy(dtype=float))
    if not accumulator.columns:
        raise ValueError(f"{path}: the holdout has no rows")
    aucs = {}
    suffix = {"label_click": "auc_click", "label_purchase": "auc_purchase"}
    for label, kept in labels.items():
        if kept:
            y = np.concatenate(kept)
            for name in scorers:
                aucs[f"{name}_{suffix[label]}"] = auc(y, np.concatenate(scores[name]))
    return accumulator.metrics(aucs)
