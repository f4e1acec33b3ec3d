"""The human-judged relevance model as a ranker feature in training, and human NDCG in the evaluation report.

On the simulated feast world (tests/model/conftest.py): relevance model versions are saved as the labelling flow
saves them; the ranker_v3_relevance training set scores each day's search impressions with the version trained
on labels before that day (never the day's own or later labels), feed impressions and days without a version get
NaN, on the DuckDB (chunked) path and on Feast's path alike. Training writes human NDCG@10 on the judged pairs
known on the run date next to the click metrics, and "no judged pairs" without them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprank import query_relevance
from shoprank.mart_files import read_mart
from shoprank.settings import Settings
from tests.model.conftest import RUN_DATE
from training.chunks import read_chunk
from training.dataset import build_training_frame
from training.human_eval import judged_metrics
from training.pit_dataset import build_chunked_training_set
from training.report import _judged_section

SERVICE = "ranker_v3_relevance"
EARLY, LATE = RUN_DATE - timedelta(days=2), RUN_DATE


def _search_pairs(settings: Settings) -> pd.DataFrame:
    """The world's search impressions with query, title, category and price (the labelling task's view)."""
    mart = read_mart(settings.marts_export_dir, "query_item_match")
    items = pd.read_parquet(settings.raw_dir / "items", columns=["item_id", "category_id", "price"])
    pairs = mart.merge(items.drop_duplicates("item_id", keep="last"), on="item_id")
    return pairs.rename(columns={"item_title": "title"}).assign(dt=pd.to_datetime(pairs["dt"]).dt.date)


def _grades(pairs: pd.DataFrame, day: date, flip: bool = False) -> pd.DataFrame:
    """One grade per (query, item): 3 when the query's words are all in the title, else 0 (reversed with
    ``flip``: a model that must score differently), stamped with the labelling ``day``."""
    unique = pairs.drop_duplicates(["query", "item_id"]).copy()
    relevant = unique["query_title_match"].to_numpy() >= 1.0
    unique["grade"] = np.where(relevant != flip, 3, 0)
    unique["pair_id"] = unique["query"] + "|" + unique["item_id"]
    return unique.assign(day=day.isoformat())


@pytest.fixture(scope="module")
def versions(feast_world: Settings) -> Iterator[dict[date, query_relevance.RelevanceModel]]:
    """Two saved versions: EARLY (title-match grades) and LATE (the reverse), removed afterwards."""
    settings = feast_world
    pairs = _search_pairs(settings)
    saved = {}
    for day, flip in ((EARLY, False), (LATE, True)):
        grades = _grades(pairs, day, flip)
        model = query_relevance.RelevanceModel.fit(query_relevance.pair_frame(grades), grades["grade"])
        query_relevance.save_version(settings, model, day, {"labels_through": day.isoformat()})
        saved[day] = model
    try:
        yield saved
    finally:
        shutil.rmtree(query_relevance.models_dir(settings), ignore_errors=True)


def _expected(settings: Settings, frame: pd.DataFrame, models: dict) -> np.ndarray:
    """EARLY's scores for the search rows of days after EARLY (its version is the only one trained before them)."""
    pairs = _search_pairs(settings).set_index("impression_id")
    days = pd.to_datetime(frame["dt"]).dt.date
    rows = np.nonzero((frame["impression_id"].isin(pairs.index) & (days > EARLY)).to_numpy())[0]
    found = pairs.loc[frame["impression_id"].to_numpy()[rows]]
    x = query_relevance.pair_features(
        list(found["query"]),
        [query_relevance.parse(t) for t in found["title"]],
        frame["item_category_id"].to_numpy(dtype=float)[rows],
        frame["item_price"].to_numpy(dtype=float)[rows],
    )
    out = np.full(len(frame), np.nan)
    out[rows] = models[EARLY].predict(x)
    return out


def test_training_rows_get_the_version_trained_on_earlier_labels_only(
    feast_world: Settings, versions: dict, tmp_path: Path
) -> None:
    settings = feast_world
    chunked = build_chunked_training_set(settings, RUN_DATE, SERVICE, tmp_path / "set", rows_per_chunk=700)
    duck = pd.concat([read_chunk(chunk) for chunk in chunked.chunks], ignore_index=True)
    assert "_query" not in duck.columns and "_item_title" not in duck.columns
    expected = _expected(settings, duck, versions)
    np.testing.assert_allclose(duck[query_relevance.COLUMN].to_numpy(dtype=float), expected, rtol=1e-6)
    days = pd.to_datetime(duck["dt"]).dt.date
    scored = duck[query_relevance.COLUMN].notna()
    assert scored.any() and not scored[days <= EARLY].any()  # no version before EARLY + 1: missing
    # LATE's labels are the training day's own: its (reversed) model scores no row, EARLY's scores LATE's searches.
    assert duck.loc[(days == LATE).to_numpy(), query_relevance.COLUMN].notna().sum() > 20
    feast = build_training_frame(settings, RUN_DATE, SERVICE).set_index("impression_id")
    np.testing.assert_allclose(
        feast.loc[duck["impression_id"], query_relevance.COLUMN].to_numpy(dtype=float), expected, rtol=1e-6
    )


def test_each_day_reads_the_newest_version_trained_before_it(feast_world: Settings, versions: dict) -> None:
    assert query_relevance.load_for_day(feast_world, EARLY) is None
    assert query_relevance.version_for_day(feast_world, EARLY + timedelta(days=1)) == EARLY
    assert query_relevance.version_for_day(feast_world, LATE) == EARLY
    assert query_relevance.version_for_day(feast_world, LATE + timedelta(days=1)) == LATE
    assert query_relevance.card(feast_world, LATE)["column"] == query_relevance.COLUMN


def test_human_ndcg_uses_grades_known_on_the_run_date(feast_world: Settings, tmp_path: Path) -> None:
    """A scored holdout of the world's search impressions: the judged metrics count only grades of days up to the
    run date, and rank the judged items by each scorer with the grade as the gain."""
    from training.human_eval import judged_rows

    settings = feast_world
    pairs = _search_pairs(settings)
    holdout = pairs[pairs["dt"] == RUN_DATE][["impression_id", "request_id", "item_id", "query_title_match"]]
    holdout = holdout.assign(model_score=holdout["query_title_match"], random_score=-holdout["query_title_match"])
    path = tmp_path / "holdout.parquet"
    holdout.drop(columns="query_title_match").to_parquet(path, index=False)
    graded = _grades(pairs[pairs["dt"] == RUN_DATE], RUN_DATE)
    later = _grades(pairs[pairs["dt"] == RUN_DATE], RUN_DATE + timedelta(days=1), flip=True)
    grades_path = query_relevance.grades_path(settings)
    grades_path.parent.mkdir(parents=True, exist_ok=True)
    pd.concat([graded, later]).to_parquet(grades_path, index=False)
    try:
        columns = {"model": "model_score", "random": "random_score"}
        rows = judged_rows(settings, path, columns, RUN_DATE)
        assert len(rows) == len(holdout)  # every pair judged once: the later (flipped) grades are not known yet
        metrics = judged_metrics(rows, columns, 10)
        assert metrics["judged_requests"] > 5
        assert metrics["judged_model_ndcg@10"] == pytest.approx(1.0)  # ranks by exactly what the grade says
        assert metrics["judged_random_ndcg@10"] < 0.9
        with_later = judged_metrics(judged_rows(settings, path, columns, RUN_DATE + timedelta(days=1)), columns, 10)
        assert with_later["judged_model_ndcg@10"] < 0.9  # the day after, the flipped grades are the known ones
    finally:
        grades_path.unlink()


def test_the_report_says_no_judged_pairs_without_labels() -> None:
    metrics = judged_metrics(pd.DataFrame(), {"model": "model_score"}, 10)
    assert metrics == {"judged_requests": 0.0, "judged_pairs": 0.0}
    assert "no judged pairs" in _judged_section(metrics, ["model"], 10)
    shown = _judged_section({**metrics, "judged_requests": 3.0, "judged_model_ndcg@10": 0.75}, ["model"], 10)
    assert "0.7500" in shown and "no judged pairs" not in shown


def test_training_writes_human_ndcg_next_to_click_ndcg(feast_world: Settings) -> None:
    """A whole training run of the world with grades of the holdout's search pairs: the card and the report carry
    human NDCG@10 beside the click NDCG@10."""
    from training.train import CARD_FILE, REPORT_FILE, candidate_dir, train_ranker

    settings = feast_world
    pairs = _search_pairs(settings)
    grades_path = query_relevance.grades_path(settings)
    grades_path.parent.mkdir(parents=True, exist_ok=True)
    _grades(pairs[pairs["dt"] == RUN_DATE], RUN_DATE).to_parquet(grades_path, index=False)
    out = candidate_dir(settings, RUN_DATE)
    try:
        train_ranker(settings, RUN_DATE)
        card = json.loads((out / CARD_FILE).read_text())
        metrics = card["metrics"]
        assert metrics["judged_requests"] > 5 and 0.0 < metrics["judged_model_ndcg@10"] <= 1.0
        assert "model_ndcg@10" in metrics and "judged_popularity_ndcg@10" in metrics
        report = (out / REPORT_FILE).read_text()
        assert "human-judged pairs next to clicks" in report and "no judged pairs" not in report
    finally:
        grades_path.unlink()
        shutil.rmtree(out, ignore_errors=True)
