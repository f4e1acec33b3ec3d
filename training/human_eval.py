"""Search NDCG@k on human-judged pairs: the holdout's search requests ranked by each scorer, with the aggregated
human grade (0-3, labelling's grades.parquet) as the gain instead of the click.

Only grades from labelling days up to the training run date count (what was known when the model was trained).
A request counts when at least two of its shown items were judged and one of them is graded above 0; its NDCG
is over its judged items only (the unjudged ones are left out, not read as irrelevant). Clicks and human grades
disagree on purpose: position, price and photos drive clicks as much as relevance does.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import date
from pathlib import Path

import pandas as pd

from shoprank import query_relevance
from shoprank.mart_files import mart_files, sql_files
from shoprank.resources import duckdb_connect
from shoprank.settings import Settings
from training.evaluate import ndcg_per_group

log = logging.getLogger(__name__)

NO_JUDGED_PAIRS = "no judged pairs"


def judged_rows(settings: Settings, holdout_path: Path, score_columns: dict[str, str], run_date: date) -> pd.DataFrame:
    """The holdout's search impressions whose (query, item) pair has a human grade known on ``run_date``: request,
    item, grade and every score column. Empty without grades."""
    grades_path = query_relevance.grades_path(settings)
    mart = mart_files(settings.marts_export_dir, "query_item_match")
    if not grades_path.exists() or not mart:
        return pd.DataFrame()
    grades = pd.read_parquet(grades_path, columns=["query", "item_id", "grade", "day"])
    grades = grades[pd.to_datetime(grades["day"]).dt.date <= run_date]
    grades = grades.sort_values("day", kind="stable").drop_duplicates(["query", "item_id"], keep="last")
    grades = grades[["query", "item_id", "grade"]]  # a pair judged again: its newest grade
    if grades.empty:
        return grades
    scores = ", ".join(f'h."{column}"' for column in dict.fromkeys(score_columns.values()))
    con = duckdb_connect(settings)
    with contextlib.closing(con):
        con.register("grades", grades)
        return con.execute(
            f"SELECT h.request_id, h.item_id, g.grade, {scores} "
            f"FROM read_parquet('{holdout_path}') h "
            f"JOIN (SELECT impression_id, query FROM read_parquet({sql_files(mart)})) q USING (impression_id) "
            "JOIN grades g ON g.query = q.query AND g.item_id = h.item_id"
        ).df()


def judged_metrics(rows: pd.DataFrame, score_columns: dict[str, str], k: int) -> dict[str, float]:
    """``judged_<scorer>_ndcg@k`` per scorer, and how many requests and pairs they stand on (0: no judged pairs)."""
    if rows.empty:
        return {"judged_requests": 0.0, "judged_pairs": 0.0}
    per_request = rows.groupby("request_id")["grade"].agg(["size", "max"])
    usable = per_request.index[(per_request["size"] >= 2) & (per_request["max"] > 0)]
    rows = rows[rows["request_id"].isin(usable)]
    metrics = {"judged_requests": float(len(usable)), "judged_pairs": float(len(rows))}
    if rows.empty:
        return metrics
    for scorer, column in score_columns.items():
        scored = rows[["request_id", "item_id", "grade", column]].dropna(subset=[column])
        per_group = ndcg_per_group(scored, column, k, label_column="grade")
        metrics[f"judged_{scorer}_ndcg@{k}"] = float(per_group.mean()) if len(per_group) else float("nan")
    return metrics


def human_judged_metrics(
    settings: Settings, holdout_path: Path, score_columns: dict[str, str], run_date: date
) -> dict[str, float]:
    """The judged metrics of the scored holdout; never fails training (an unreadable input reads as no judged
    pairs, logged)."""
    try:
        rows = judged_rows(settings, holdout_path, score_columns, run_date)
    except Exception:
        log.exception("human-judged NDCG skipped")
        rows = pd.DataFrame()
    return judged_metrics(rows, score_columns, settings.training.ndcg_k)
