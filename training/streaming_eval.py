"""Holdout metrics aggregated over request-ordered chunks: the figures of training.evaluate.evaluate_holdout
without the holdout in memory.

Per-request metrics (NDCG@k, MAP@k, revenue NDCG, per slice) are computed per chunk (a chunk holds whole
requests) and summed with their request counts; the means equal the in-memory ones up to float summation order.
AUC and the calibration table need every row's rank: DuckDB computes them exactly over the scored holdout's parquet
file (out-of-core, within the step's DuckDB memory limit): AUC as Mann-Whitney with ties counted half, missing
scores ranked below every score, as training.evaluate.auc does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.evaluate import (
    NDCG_CUTOFFS,
    map_per_group,
    ndcg_per_group,
    revenue_ndcg_per_group,
    slice_masks,
)


@dataclass
class _Mean:
    total: float = 0.0
    count: int = 0

    def add(self, per_group: pd.Series) -> None:
        self.total += float(per_group.sum())
        self.count += len(per_group)

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else float("nan")


@dataclass
class HoldoutAccumulator:
    """evaluate_holdout's per-request metrics of ``score_columns`` ({name: column}), chunk by chunk."""

    score_columns: dict[str, str]
    k: int
    means: dict[str, _Mean] = field(default_factory=dict)
    slice_requests: dict[str, int] = field(default_factory=dict)
    columns: set[str] = field(default_factory=set)

    def _mean(self, key: str) -> _Mean:
        return self.means.setdefault(key, _Mean())

    def add(self, scored: pd.DataFrame) -> None:
        """Fold in one chunk of whole requests (every score column present)."""
        k = self.k
        self.columns |= set(scored.columns)
        for name, column in self.score_columns.items():
            for cutoff in sorted({*NDCG_CUTOFFS, k}):
                self._mean(f"{name}_ndcg@{cutoff}").add(ndcg_per_group(scored, column, cutoff))
            self._mean(f"{name}_map@{k}").add(map_per_group(scored, column, k))
            if "label_purchase" in scored.columns and "item_price" in scored.columns:
                self._mean(f"{name}_revenue_ndcg@{k}").add(revenue_ndcg_per_group(scored, column, k))
        for slice_name, mask in slice_masks(scored).items():
            part = scored[mask]
            self.slice_requests[slice_name] = self.slice_requests.get(slice_name, 0) + int(part["request_id"].nunique())
            for name, column in self.score_columns.items():
                self._mean(f"slice_{slice_name}_{name}_ndcg@{k}").add(ndcg_per_group(part, column, k))

    def metrics(self, aucs: dict[str, float]) -> dict[str, float]:
        """The flat metrics, keyed and ordered as evaluate_holdout's; ``aucs`` from :func:`holdout_aucs`."""
        k, out = self.k, {}
        for name in self.score_columns:
            for cutoff in sorted({*NDCG_CUTOFFS, k}):
                out[f"{name}_ndcg@{cutoff}"] = self._mean(f"{name}_ndcg@{cutoff}").value
            out[f"{name}_map@{k}"] = self._mean(f"{name}_map@{k}").value
            if "label_click" in self.columns:
                out[f"{name}_auc_click"] = aucs[f"{name}_auc_click"]
            if "label_purchase" in self.columns:
                out[f"{name}_auc_purchase"] = aucs[f"{name}_auc_purchase"]
                if "item_price" in self.columns:
                    out[f"{name}_revenue_ndcg@{k}"] = self._mean(f"{name}_revenue_ndcg@{k}").value
        for slice_name, requests in self.slice_requests.items():
            out[f"slice_{slice_name}_requests"] = float(requests)
            for name in self.score_columns:
                out[f"slice_{slice_name}_{name}_ndcg@{k}"] = self._mean(f"slice_{slice_name}_{name}_ndcg@{k}").value
        return out


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


def _ranked(column: str) -> str:
    """Sort keys putting missing and -inf scores below every finite one, tied (as evaluate.auc's nan_to_num)."""
    score = f'CAST("{column}" AS DOUBLE)'
    tier = f"CASE WHEN {score} IS NULL OR isnan({score}) OR {score} = '-inf'::DOUBLE THEN 0 "
    tier += f"WHEN {score} = 'inf'::DOUBLE THEN 2 ELSE 1 END"
    return f"{tier} AS tier, CASE WHEN {tier} = 1 THEN {score} ELSE 0 END AS value"


def exact_auc(con: Any, path: Path, label: str, column: str) -> float:
    """ROC AUC of ``column`` against ``label`` over the parquet file ``path``; NaN with one class or no finite score."""
    row = con.execute(
        f"""
        WITH rows AS (
            SELECT {_ranked(column)}, CAST("{label}" > 0 AS INTEGER) AS y FROM read_parquet('{_quote(path)}')
        ),
        grouped AS (SELECT tier, value, sum(y) AS pos, count(*) - sum(y) AS neg FROM rows GROUP BY tier, value),
        below AS (
            SELECT pos, neg, coalesce(sum(neg) OVER (ORDER BY tier, value ROWS BETWEEN UNBOUNDED PRECEDING
                AND 1 PRECEDING), 0) AS neg_below, tier FROM grouped
        )
        SELECT sum(pos * neg_below + 0.5 * pos * neg), sum(pos), sum(neg), count(*) FILTER (WHERE tier = 1)
        FROM below
        """
    ).fetchone()
    above, positives, negatives, finite_values = row
    if not positives or not negatives or not finite_values:
        return float("nan")
    return float(above) / (float(positives) * float(negatives))


def holdout_aucs(con: Any, path: Path, score_columns: dict[str, str], labels: list[str]) -> dict[str, float]:
    """``<name>_auc_click`` / ``<name>_auc_purchase`` of every score column over the scored holdout file."""
    suffix = {"label_click": "auc_click", "label_purchase": "auc_purchase"}
    return {
        f"{name}_{suffix[label]}": exact_auc(con, path, label, column)
        for name, column in score_columns.items()
        for label in labels
    }


def exact_calibration_table(con: Any, path: Path, label: str, column: str, bins: int = 10) -> pd.DataFrame:
    """evaluate.calibration_table over the parquet file: rows ranked by probability (ties in file order) and cut
    into min(bins, rows) equal-count bins as pandas' qcut cuts ranks 1..n."""
    n = con.execute(f"SELECT count(*) FROM read_parquet('{_quote(path)}')").fetchone()[0]
    q = min(bins, n)
    bin_of = f"greatest(CAST(ceil({q} * (r - 1) / {max(n - 1, 1)}) AS BIGINT) - 1, 0)" if n > 1 else "0"
    table = con.execute(
        f"""
        WITH ranked AS (
            SELECT CAST("{column}" AS DOUBLE) AS p, CAST("{label}" AS DOUBLE) AS y,
                   row_number() OVER (ORDER BY CAST("{column}" AS DOUBLE), file_row_number) AS r
            FROM read_parquet('{_quote(path)}', file_row_number = true)
        )
        SELECT {bin_of} AS bin, avg(p) AS predicted, avg(y) AS observed, count(*) AS rows
        FROM ranked GROUP BY bin ORDER BY bin
        """
    ).df()
    return table.drop(columns="bin").astype({"rows": np.int64})
