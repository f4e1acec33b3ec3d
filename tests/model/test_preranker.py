"""The pre-ranker's training (training/preranker.py) on a real simulated home: the point-in-time rows of the final
ranker, an out-of-sample embedding score, a card, a version serving can load."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from shoprank import prerank
from shoprank.settings import Settings
from tests.model.conftest import RUN_DATE
from training.chunks import split_days
from training.pit_dataset import build_chunked_training_set
from training.preranker import FEATURE_SERVICE, click_log, embedding_column, read_rows, train_preranker


def test_the_preranker_trains_with_a_card_and_serving_loads_it(feast_world: Settings) -> None:
    settings = feast_world
    result = train_preranker(settings, RUN_DATE)
    root = settings.preranker_dir
    assert (root / prerank.CURRENT).read_text() == RUN_DATE.isoformat()
    card = json.loads((root / RUN_DATE.isoformat() / prerank.CARD_FILE).read_text())
    assert card == {k: v for k, v in result.items() if k != "path"}
    assert card["features"] == prerank.FEATURES and card["feature_service"] == FEATURE_SERVICE
    # fitted on the days before the holdout, evaluated on the holdout
    assert card["train_window"][1] < card["holdout_window"][0] == RUN_DATE.isoformat()
    assert card["train_rows"] > 0 and card["holdout_rows"] > 0
    metrics = card["metrics"]
    assert 0 < metrics["prerank_ndcg@10"] <= 1 and metrics["prerank_click_auc"] > 0.5
    assert set(card["feature_importance"]) <= set(prerank.FEATURES)
    assert len(card["params"]) and card["params"]["n_estimators"] == settings.recall.prerank_trees

    loaded = prerank.load_preranker(root)
    assert loaded is not None and loaded.version == RUN_DATE.isoformat()
    rows = np.random.default_rng(0).normal(size=(7, len(prerank.FEATURES))).astype(np.float32)
    scores = loaded.score(rows)
    assert scores.shape == (7,) and np.isfinite(scores).all() and len(set(scores.tolist())) > 1


def test_the_embedding_score_only_knows_the_days_before(feast_world: Settings, tmp_path) -> None:  # noqa: ANN001
    settings = feast_world
    cfg = settings.training
    chunked = build_chunked_training_set(settings, RUN_DATE, FEATURE_SERVICE, tmp_path / "set")
    _, _, holdout_days = split_days(chunked.days, cfg.holdout_days, cfg.burn_in_days, cfg.validation_days)
    holdout = read_rows(chunked.on_days(holdout_days), settings.simulator.categories)
    clicks = click_log(settings)
    before = clicks[clicks["dt"] < holdout_days[0]]
    scores = embedding_column(holdout, before, settings)
    seen = holdout["item_id"].astype(str).isin(set(before["item_id"])).to_numpy()
    # items nobody clicked before the holdout have no vector: no score, whatever the holdout's own clicks
    assert (~seen).any() and np.isnan(scores[~seen]).all()
    # a user who clicked before has their own factors: every item with a vector gets a score
    clicked_before = holdout["user_id"].astype(str).isin(set(before["user_id"])).to_numpy()
    assert (seen & clicked_before).any() and np.isfinite(scores[seen & clicked_before]).all()
    # the holdout's clicks themselves never reach the ALS: refitting with them changes the scores
    with_holdout = embedding_column(holdout, clicks, settings)
    assert not np.allclose(np.nan_to_num(scores), np.nan_to_num(with_holdout))
    assert isinstance(holdout, pd.DataFrame) and len(holdout) == len(scores)
