"""The pre-ranker distilled from the final ranker (``recall.prerank_target=distill``, training/preranker.py): its
training rows carry the final ranker's scores, a changed final ranker changes them and the pre-ranker it trains,
and the card records the target and the teacher."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd

from shoprank import prerank
from shoprank.model_bundle import ModelBundle
from shoprank.ranking_features import feature_columns_for
from shoprank.settings import Settings
from tests.model.conftest import RUN_DATE
from training.chunks import read_chunk, split_days
from training.pit_dataset import build_chunked_training_set
from training.preranker import TEACHER_SCORE, distilled_relevance, read_rows, teacher, train_preranker
from training.train import CARD_FILE, MODEL_FILE, candidate_dir

SERVICE = "ranker_v3"


def _final_ranker(frame: pd.DataFrame, columns: list[str], label: np.ndarray, n_categories: int) -> ModelBundle:
    """A small stand-in final ranker that orders each request by ``label`` (pairwise, so any real label works)."""
    from xgboost import XGBRanker

    ranker = XGBRanker(objective="rank:pairwise", n_estimators=20, max_depth=3, n_jobs=1, random_state=0)
    matrix = frame[columns].to_numpy(dtype=np.float32, na_value=np.nan)
    ranker.fit(matrix, label, qid=pd.factorize(frame["request_id"])[0])
    metadata = {"feature_service": SERVICE, "feature_columns": columns, "n_categories": n_categories}
    return ModelBundle(ranker=ranker, feature_columns=columns, metadata=metadata)


def _write_candidate(settings: Settings, bundle: ModelBundle) -> None:
    out = candidate_dir(settings, RUN_DATE)
    out.mkdir(parents=True, exist_ok=True)
    bundle.ranker.save_model(out / MODEL_FILE)
    (out / CARD_FILE).write_text(json.dumps({**bundle.metadata, "objective": "ndcg", "run_date": str(RUN_DATE)}))


def _distill(settings: Settings) -> Settings:
    return settings.model_copy(update={"recall": settings.recall.model_copy(update={"prerank_target": "distill"})})


def test_the_distilled_rows_carry_the_final_rankers_scores(feast_world: Settings, tmp_path) -> None:  # noqa: ANN001
    settings = feast_world
    n_categories = settings.simulator.categories
    cfg = settings.training
    chunked = build_chunked_training_set(settings, RUN_DATE, SERVICE, tmp_path / "set")
    fit_days, validation_days, _ = split_days(chunked.days, cfg.holdout_days, cfg.burn_in_days, cfg.validation_days)
    chunks = chunked.on_days([*fit_days, *validation_days][-1:])
    frame = pd.concat([read_chunk(c) for c in chunks], ignore_index=True)
    frame = frame.sort_values(["request_id", "item_id"], kind="mergesort").reset_index(drop=True)  # read_rows' order
    columns = feature_columns_for(SERVICE, n_categories)
    price = frame["item_price"].to_numpy(dtype=float)
    dearer_first = _final_ranker(frame, columns, price, n_categories)
    cheaper_first = _final_ranker(frame, columns, -price, n_categories)

    rows = read_rows(chunks, n_categories, dearer_first)
    assert rows[["request_id", "item_id"]].equals(frame[["request_id", "item_id"]])
    np.testing.assert_allclose(rows[TEACHER_SCORE], dearer_first.score(frame), rtol=1e-6)
    assert TEACHER_SCORE not in read_rows(chunks, n_categories).columns  # the clicks target has no teacher

    # a changed final ranker changes the rows' scores and the labels the pre-ranker learns from
    other = read_rows(chunks, n_categories, cheaper_first)
    assert not np.allclose(rows[TEACHER_SCORE], other[TEACHER_SCORE])
    labels, other_labels = distilled_relevance(rows), distilled_relevance(other)
    assert labels.min() >= 0 and labels.max() <= 1
    best = rows.groupby("request_id")[TEACHER_SCORE].idxmax()
    varied = rows.groupby("request_id")[TEACHER_SCORE].nunique() > 1
    assert varied.any() and (labels[best[varied].to_numpy()] == 1).all()  # each request's teacher top: label 1
    assert np.corrcoef(labels, price)[0, 1] > 0.5 > -0.5 > np.corrcoef(other_labels, price)[0, 1]
    # a row without a teacher score (a sampled catalogue item) ranks at the bottom of its request
    unscored = rows.assign(**{TEACHER_SCORE: rows[TEACHER_SCORE].where(rows.index != best.iloc[0])})
    assert distilled_relevance(unscored)[best.iloc[0]] == 0


def test_the_distilled_preranker_follows_the_run_s_final_ranker(feast_world: Settings, tmp_path) -> None:  # noqa: ANN001
    settings = _distill(feast_world)
    n_categories = settings.simulator.categories
    chunked = build_chunked_training_set(settings, RUN_DATE, SERVICE, tmp_path / "set")
    frame = pd.concat([read_chunk(c) for c in chunked.chunks], ignore_index=True)
    columns = feature_columns_for(SERVICE, n_categories)
    price = frame["item_price"].to_numpy(dtype=float)
    probe = np.zeros((2, len(prerank.FEATURES)), dtype=np.float32)
    probe[:, prerank.FEATURES.index("item_price")] = np.nanpercentile(price, [20, 80])  # a cheap and a dear item
    candidate = candidate_dir(settings, RUN_DATE)
    saved = candidate.with_name(candidate.name + ".saved")
    if candidate.exists():  # another module's training of the day: put back afterwards
        shutil.move(candidate, saved)
    try:
        prefers = {}
        for name, label in (("dear", price), ("cheap", -price)):
            _write_candidate(settings, _final_ranker(frame, columns, label, n_categories))
            final, described = teacher(settings, RUN_DATE)
            assert described.startswith("candidate") and final.feature_columns == columns
            card = train_preranker(settings, RUN_DATE)
            assert card["target"] == "distill" and card["teacher"] == described and card["feature_service"] == SERVICE
            metrics = card["metrics"]
            assert metrics["teacher_ndcg@10"] > metrics["popularity_teacher_ndcg@10"]
            loaded = prerank.load_preranker(settings.preranker_dir)
            assert loaded is not None
            cheap, dear = loaded.score(probe)
            prefers[name] = "dear" if dear > cheap else "cheap"
        assert prefers == {"dear": "dear", "cheap": "cheap"}  # the pre-ranker imitates whichever ranker trained
    finally:
        shutil.rmtree(candidate, ignore_errors=True)
        if saved.exists():
            shutil.move(saved, candidate)


def test_without_a_final_ranker_the_distilled_target_trains_on_clicks(feast_world: Settings, monkeypatch) -> None:  # noqa: ANN001
    settings = _distill(feast_world)
    monkeypatch.setattr("shoprank.model_bundle.champion_tag", lambda _settings: None)  # nothing promoted
    candidate = candidate_dir(settings, RUN_DATE)
    saved = candidate.with_name(candidate.name + ".saved")
    if candidate.exists():
        shutil.move(candidate, saved)
    try:
        assert teacher(settings, RUN_DATE) is None
        card = train_preranker(settings, RUN_DATE)
        assert card["target"] == "clicks" and card["teacher"] is None and card["feature_service"] == "ranker_v1"
        assert "teacher_ndcg@10" not in card["metrics"]
    finally:
        if saved.exists():
            shutil.move(saved, candidate)
