"""XGBoost fed chunk by chunk (DataIter + QuantileDMatrix) learns what the in-memory fit learns; down-sampling of
non-clicked impressions keeps clicks, weighs kept negatives 1/rate and is recorded in the model card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from shoprank.ranking_features import feature_columns_for, model_matrix
from shoprank.settings import Settings, get_settings
from tests.model.test_small_data import RUN_DATE, tiny_world
from training.chunks import frame_to_chunks, split_days
from training.dataset import time_split, validation_split
from training.models import fit_classifier, fit_ranker, with_positive_groups
from training.streaming import ChunkIter, fit_classifier_chunks, fit_ranker_chunks, ranker_loader, sampled_rows
from training.train import CARD_FILE, candidate_dir, train_on_frame


@pytest.fixture
def world(tmp_path: Path) -> tuple[Settings, pd.DataFrame]:
    settings = get_settings().model_copy(update={"home": tmp_path / "home"})
    small = {"n_estimators": 30, "classifier_n_estimators": 30, "early_stopping_rounds": 10, "min_trees": 5}
    settings = settings.model_copy(update={"training": settings.training.model_copy(update=small)})
    return settings, tiny_world(settings, requests_per_day=60, seed=1)


def test_chunked_fit_equals_the_in_memory_fit(world: tuple[Settings, pd.DataFrame], tmp_path: Path) -> None:
    settings, frame = world
    cfg = settings.training
    columns = feature_columns_for(cfg.feature_service, settings.simulator.categories)
    chunked = frame_to_chunks(frame, tmp_path / "chunks", rows_per_chunk=97)  # ~20 chunks, days cut in several
    fit_days, validation_days, _ = split_days(chunked.days, cfg.holdout_days, cfg.burn_in_days, cfg.validation_days)
    fit_chunks, validation_chunks = chunked.on_days(fit_days), chunked.on_days(validation_days)
    assert len(fit_chunks) > len(fit_days)
    train, holdout = time_split(frame, cfg.holdout_days, cfg.burn_in_days)
    fit, validation = validation_split(train, cfg.validation_days)
    matrix = model_matrix(holdout, columns)

    in_memory, memory_params = fit_ranker(cfg, fit, validation, columns)
    streamed, streamed_params = fit_ranker_chunks(cfg, fit_chunks, validation_chunks, columns)
    assert streamed_params["n_estimators"] == memory_params["n_estimators"]
    np.testing.assert_allclose(streamed.predict(matrix), in_memory.predict(matrix), rtol=0, atol=1e-6)

    for label, clicks_only in (("label_click", False), ("label_purchase", True)):
        rows = (
            (fit[fit["label_click"] == 1], validation[validation["label_click"] == 1])
            if clicks_only
            else (fit, validation)
        )
        reference, _ = fit_classifier(cfg, *rows, columns, label)
        chunked_model, _ = fit_classifier_chunks(cfg, fit_chunks, validation_chunks, columns, label, clicks_only)
        np.testing.assert_allclose(
            chunked_model.predict_proba(matrix)[:, 1], reference.predict_proba(matrix)[:, 1], rtol=0, atol=1e-6
        )


def test_query_groups_stay_whole_and_ascend_across_chunks(world: tuple[Settings, pd.DataFrame], tmp_path: Path) -> None:
    settings, frame = world
    columns = feature_columns_for(settings.training.feature_service, settings.simulator.categories)
    chunked = frame_to_chunks(frame, tmp_path / "chunks", rows_per_chunk=33)
    matrix = xgb.QuantileDMatrix(ChunkIter(chunked.chunks, ranker_loader(columns)))
    ordered = with_positive_groups(frame.sort_values(["dt", "request_id"], kind="mergesort"))
    sizes = ordered.groupby("request_id", sort=False).size().to_numpy()
    assert list(np.diff(matrix.get_uint_info("group_ptr"))) == list(sizes)


def test_down_sampling_keeps_clicks_and_weighs_kept_negatives_by_the_inverse_rate(
    world: tuple[Settings, pd.DataFrame],
) -> None:
    _, frame = world
    kept, weights = sampled_rows(frame, rate=0.25, seed=7)
    clicked = frame["label_click"] == 1
    assert set(frame.loc[clicked, "impression_id"]) <= set(kept["impression_id"])
    negatives = kept["label_click"].to_numpy() == 0
    assert (weights[negatives] == 4.0).all() and (weights[~negatives] == 1.0).all()
    share = negatives.sum() / (~clicked).sum()
    assert 0.18 < share < 0.32
    again, _ = sampled_rows(frame.sample(frac=1.0, random_state=0), rate=0.25, seed=7)
    assert set(again["impression_id"]) == set(kept["impression_id"])  # a hash of the impression, not its position
    whole, ones = sampled_rows(frame, rate=1.0, seed=7)
    assert len(whole) == len(frame) and (ones == 1.0).all()


def test_the_card_records_the_sampling_rate(world: tuple[Settings, pd.DataFrame]) -> None:
    settings, frame = world
    training = settings.training.model_copy(update={"negative_sample_rate": 0.5})
    settings = settings.model_copy(update={"training": training})
    train_on_frame(settings, RUN_DATE, frame, rows_per_chunk=120)
    card = json.loads((candidate_dir(settings, RUN_DATE) / CARD_FILE).read_text())
    assert card["negative_sample_rate"] == 0.5
    assert card["params"]["ctr"]["negative_sample_rate"] == 0.5
    assert "negative_sample_rate" not in card["params"]["cvr"]  # clicks only: nothing to sample
    assert "negative_sample_rate" in (candidate_dir(settings, RUN_DATE) / "report.html").read_text()


def _capped(settings: Settings, **caps: int | None) -> Settings:
    # model_copy skips validation: caps below the settings' floor, for a world this small
    return settings.model_copy(update={"training": settings.training.model_copy(update=caps)})


def test_the_negative_cap_lowers_the_rate_and_the_weights_keep_the_ctr_calibrated(
    world: tuple[Settings, pd.DataFrame], tmp_path: Path
) -> None:
    """Above training.max_fit_negatives the CTR model sees about that many negatives, weighted 1/rate: its mean
    predicted click probability on the whole holdout stays at the observed click rate (as the unsampled model's
    does), where the same sample without the weights would overstate it."""
    settings, frame = world
    settings = _capped(settings, classifier_n_estimators=40, min_trees=40)
    chunked = frame_to_chunks(frame, tmp_path / "chunks", rows_per_chunk=150)
    cfg = settings.training
    fit_days, validation_days, holdout_days = split_days(
        chunked.days, cfg.holdout_days, cfg.burn_in_days, cfg.validation_days
    )
    fit, validation = chunked.on_days(fit_days), chunked.on_days(validation_days)
    columns = feature_columns_for(cfg.feature_service, settings.simulator.categories)
    train = frame[frame["dt"].isin([*fit_days, *validation_days])]
    negatives = int((train["label_click"] == 0).sum())
    holdout = frame[frame["dt"].isin(holdout_days)]
    matrix, observed = model_matrix(holdout, columns), holdout["label_click"].mean()

    whole, whole_params = fit_classifier_chunks(cfg, fit, validation, columns, "label_click")
    cap = negatives // 4
    sampled_cfg = _capped(settings, max_fit_negatives=cap).training
    sampled, params = fit_classifier_chunks(sampled_cfg, fit, validation, columns, "label_click")
    assert "negative_sample_rate" not in whole_params
    assert params["negative_sample_rate"] == pytest.approx(cap / negatives)

    unweighted = xgb.XGBClassifier(**{k: v for k, v in params.items() if k != "negative_sample_rate"})
    kept, _ = sampled_rows(train, params["negative_sample_rate"], cfg.seed)
    unweighted.fit(model_matrix(kept, columns), kept["label_click"])

    mean_whole = whole.predict_proba(matrix)[:, 1].mean()
    mean_sampled = sampled.predict_proba(matrix)[:, 1].mean()
    mean_unweighted = unweighted.predict_proba(matrix)[:, 1].mean()
    assert abs(mean_sampled - observed) < 0.05 and abs(mean_whole - observed) < 0.05
    # what the 1/rate weights correct: the unweighted sample overstates clicks (by ~0.08 on this world)
    assert mean_unweighted - observed > 0.05 and abs(mean_sampled - observed) < mean_unweighted - observed


def test_the_ranker_row_cap_fits_on_whole_requests_and_keeps_ndcg(
    world: tuple[Settings, pd.DataFrame], tmp_path: Path
) -> None:
    """Above training.max_ranker_rows the ranker learns from a sample of whole requests (every kept slate whole,
    recorded in its params and the card), and ranks the holdout about as well as the ranker fit on everything."""
    from training.evaluate import evaluate_holdout

    settings, frame = world
    chunked = frame_to_chunks(frame, tmp_path / "chunks", rows_per_chunk=150)
    cfg = settings.training
    fit_days, validation_days, holdout_days = split_days(
        chunked.days, cfg.holdout_days, cfg.burn_in_days, cfg.validation_days
    )
    fit, validation = chunked.on_days(fit_days), chunked.on_days(validation_days)
    columns = feature_columns_for(cfg.feature_service, settings.simulator.categories)
    rows = sum(chunk.rows for chunk in [*fit, *validation])
    capped = _capped(settings, max_ranker_rows=rows // 2)
    rate = capped.training.max_ranker_rows / rows  # type: ignore[operator]

    load = ranker_loader(columns, rate, cfg.seed)
    sampled_rows_seen = pd.concat([with_positive_groups(pd.read_parquet(c.path)) for c in fit])
    matrix = xgb.QuantileDMatrix(ChunkIter(fit, load))
    sizes = np.diff(matrix.get_uint_info("group_ptr"))
    full_sizes = sampled_rows_seen.groupby("request_id").size()
    assert set(sizes) <= set(full_sizes)  # slates kept whole
    assert 0.3 < len(sizes) / len(full_sizes) < 0.7

    whole, whole_params = fit_ranker_chunks(cfg, fit, validation, columns)
    sampled, params = fit_ranker_chunks(capped.training, fit, validation, columns)
    assert "request_sample_rate" not in whole_params and params["request_sample_rate"] == pytest.approx(rate)
    holdout = frame[frame["dt"].isin(holdout_days)]
    scored = holdout.assign(
        whole=whole.predict(model_matrix(holdout, columns)), sampled=sampled.predict(model_matrix(holdout, columns))
    )
    k = cfg.ndcg_k
    metrics = evaluate_holdout(scored, {"whole": "whole", "sampled": "sampled"}, k)
    assert metrics[f"sampled_ndcg@{k}"] > metrics[f"whole_ndcg@{k}"] - 0.03

    train_on_frame(capped, RUN_DATE, frame, rows_per_chunk=150)
    card = json.loads((candidate_dir(capped, RUN_DATE) / CARD_FILE).read_text())
    assert card["ranker_sample_rate"] == pytest.approx(rate) and card["negative_sample_rate"] == 1.0


def test_default_sized_worlds_are_not_sampled(world: tuple[Settings, pd.DataFrame]) -> None:
    """Under the default caps nothing is sampled: the default-size model (and its holdout NDCG) is unchanged."""
    settings, frame = world
    defaults = Settings().training
    assert len(frame) < min(defaults.max_fit_negatives or 0, defaults.max_ranker_rows or 0)
    train_on_frame(settings, RUN_DATE, frame, rows_per_chunk=150)
    card = json.loads((candidate_dir(settings, RUN_DATE) / CARD_FILE).read_text())
    assert card["negative_sample_rate"] == 1.0 and card["ranker_sample_rate"] == 1.0
    assert "request_sample_rate" not in card["params"]["ranker"]


def test_the_classifier_loader_draws_each_chunk_once_and_feeds_the_same_batches_on_every_pass(
    world: tuple[Settings, pd.DataFrame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A QuantileDMatrix walks its chunks twice and the refit again: the negatives' draw is hashed once per chunk,
    and every pass feeds what sampling the chunk afresh feeds."""
    import training.streaming as streaming

    settings, frame = world
    columns = feature_columns_for(settings.training.feature_service, settings.simulator.categories)
    chunks = frame_to_chunks(frame, tmp_path / "chunks", rows_per_chunk=97).chunks
    hashed = []
    draw = streaming.keep_negatives
    monkeypatch.setattr(streaming, "keep_negatives", lambda ids, *a: hashed.append(len(ids)) or draw(ids, *a))
    load = streaming.classifier_loader(columns, "label_click", False, 0.3, 7)
    passes = [[load(chunk, 0) for chunk in chunks] for _ in range(3)]
    assert len(hashed) == len(chunks)
    for chunk, *batches in zip(chunks, *passes, strict=True):
        kept, weights = sampled_rows(
            pd.read_parquet(chunk.path, columns=[*columns, "impression_id", "label_click"]), 0.3, 7
        )
        for batch in batches:
            np.testing.assert_array_equal(batch["data"], model_matrix(kept, columns))
            np.testing.assert_array_equal(batch["label"], kept["label_click"].to_numpy())
            np.testing.assert_array_equal(batch["weight"], weights)
    assert any((batch["weight"] > 1).any() for batch in passes[0])  # negatives were sampled and weighted
