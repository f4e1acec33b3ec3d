"""Score the holdout chunk by chunk, write it as one parquet file, and compute its metrics from aggregates.

Each chunk (whole requests) gets every score column (the model, its ranker, popularity, random, CTR/CVR, the
simulator's oracle), is appended to ``holdout.parquet`` and folded into the per-request metrics; AUC and the CTR
calibration come from DuckDB over the written file (training.streaming_eval). Only a bounded sample of rows stays
in memory, for the report's score distribution.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprank.model_bundle import ModelBundle
from shoprank.ranking_features import POPULARITY_FEATURE
from shoprank.resources import duckdb_connect, within_budget
from shoprank.settings import Settings
from training.chunks import Chunk, read_chunk
from training.evaluate import expected_calibration_error
from training.reliability import HoldoutSummary
from training.streaming_eval import HoldoutAccumulator, exact_auc, exact_calibration_table, holdout_aucs

log = logging.getLogger(__name__)

ORACLE_COLUMNS = {"oracle": "oracle_score", "oracle_purchase": "oracle_purchase_score"}
# Rows of the scored holdout kept in memory for the report's score-distribution plot.
REPORT_SAMPLE_ROWS = 200_000
SAMPLE_COLUMNS = ("request_id", "relevance", "label_click", "model_score")


def add_oracle_scores(settings: Settings, scored: pd.DataFrame, truth_dir: Path | None = None) -> pd.DataFrame:
    """The simulator's hidden truth as two more scores (evaluation only); unchanged when there is no truth."""
    truth_dir = truth_dir or settings.truth_dir
    if not (truth_dir / "params.json").exists():
        log.info("no simulator truth under %s: oracle metrics skipped", truth_dir)
        return scored
    from shoprank.truth import oracle_scores

    return scored.assign(
        oracle_score=oracle_scores(truth_dir, scored, "p_click"),
        oracle_purchase_score=oracle_scores(truth_dir, scored, "p_purchase"),
    )


def score_holdout(
    settings: Settings,
    bundle: ModelBundle,
    holdout: pd.DataFrame,
    rng: np.random.Generator | None = None,
    truth_dir: Path | None = None,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The holdout with every score column evaluated next to each other, and their names. ``rng`` draws the random
    baseline (one generator across chunks draws what one call on the whole holdout would)."""
    rng = rng or np.random.default_rng(settings.training.seed)
    scored = holdout.assign(
        model_score=bundle.score(holdout),
        ranker_score=bundle.ranker_scores(holdout),
        random_score=rng.random(len(holdout)),
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
    scored = add_oracle_scores(settings, scored, truth_dir)
    if "oracle_score" in scored.columns and scored["oracle_score"].notna().all():
        columns.update(ORACLE_COLUMNS)
    return scored, columns


def holdout_truth(settings: Settings, days: list[str], scratch: Path) -> Path:
    """A truth directory holding only the holdout days' logged impressions (links), so each chunk's oracle lookup
    reads one day of the truth, not all of it. The whole truth when it is not partitioned by day."""
    impressions = settings.truth_dir / "impressions"
    partitions = [impressions / f"dt={day}" for day in days]
    if not (settings.truth_dir / "params.json").exists() or not all(p.is_dir() for p in partitions):
        return settings.truth_dir
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "impressions").mkdir(parents=True)
    for partition in partitions:
        (scratch / "impressions" / partition.name).symlink_to(partition.resolve(), target_is_directory=True)
    for entry in settings.truth_dir.iterdir():
        if entry.name != "impressions":
            (scratch / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    return scratch


@dataclass
class HoldoutEvaluation:
    metrics: dict[str, float]
    score_columns: dict[str, str]
    summary: HoldoutSummary
    calibration: dict[str, list[float]]
    sample: pd.DataFrame


def evaluate_holdout_chunks(
    settings: Settings, bundle: ModelBundle, chunks: list[Chunk], path: Path, scratch: Path
) -> HoldoutEvaluation:
    """Score ``chunks`` into the parquet file ``path`` and compute every holdout metric from aggregates."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    k = settings.training.ndcg_k
    truth = holdout_truth(settings, sorted({c.day.isoformat() for c in chunks}), scratch)
    rng = np.random.default_rng(settings.training.seed)
    sampler = np.random.default_rng(settings.training.seed + 1)
    total_rows = sum(c.rows for c in chunks)
    share = min(1.0, REPORT_SAMPLE_ROWS / max(total_rows, 1))
    accumulator: HoldoutAccumulator | None = None
    summary = HoldoutSummary()
    oracle_complete = True
    samples = []
    writer: Any = None
    try:
        for chunk in chunks:
            scored, columns = score_holdout(settings, bundle, read_chunk(chunk), rng, truth)
            if "oracle_score" in scored.columns:
                oracle_complete &= bool(scored["oracle_score"].notna().all())
                columns.update(ORACLE_COLUMNS)  # kept only if every chunk has them (below)
            accumulator = accumulator or HoldoutAccumulator(columns, k)
            accumulator.add(scored)
            summary = summary + HoldoutSummary.of(scored, columns)
            table = pa.Table.from_pandas(scored, preserve_index=False)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table.cast(writer.schema))
            plotted = [c for c in SAMPLE_COLUMNS if c in scored.columns]
            samples.append(scored.loc[sampler.random(len(scored)) < share, plotted])
    finally:
        if writer is not None:
            writer.close()
    if accumulator is None:
        raise ValueError("the holdout has no rows")
    score_columns = dict(accumulator.score_columns)
    if not oracle_complete:
        for name in ORACLE_COLUMNS:
            score_columns.pop(name, None)
    accumulator.score_columns = score_columns
    summary.missing_scores = {name: summary.missing_scores.get(name, 0) for name in score_columns}
    labels = [label for label in ("label_click", "label_purchase") if label in accumulator.columns]
    calibration: dict[str, list[float]] = {}
    with within_budget(settings, "evaluating the holdout in DuckDB"):
        con = duckdb_connect(settings)
        try:
            metrics = accumulator.metrics(holdout_aucs(con, path, score_columns, labels))
            if metrics.get(f"oracle_ndcg@{k}"):
                metrics[f"model_oracle_ratio@{k}"] = metrics[f"model_ndcg@{k}"] / metrics[f"oracle_ndcg@{k}"]
            if "ctr_score" in accumulator.columns:
                table = exact_calibration_table(con, path, "label_click", "ctr_score")
                metrics["ctr_ece"] = expected_calibration_error(table)
                metrics["ctr_auc_click"] = exact_auc(con, path, "label_click", "ctr_score")
                if "purchase_score" in accumulator.columns:
                    metrics["purchase_auc_purchase"] = exact_auc(con, path, "label_purchase", "purchase_score")
                calibration = {"predicted": table["predicted"].tolist(), "observed": table["observed"].tolist()}
        finally:
            con.close()
    sample = pd.concat(samples, ignore_index=True)
    return HoldoutEvaluation(metrics, score_columns, summary, calibration, sample)
