"""The pre-ranker's training (training/preranker.py) on a real simulated home: the point-in-time rows of the final
ranker, an out-of-sample embedding score, a card, a version serving can load."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from shoprank import prerank
from shoprank.mart_files import read_mart
from shoprank.ranking_features import query_title_match, title_words
from shoprank.settings import Settings
from tests.model.conftest import RUN_DATE
from training.chunks import split_days
from training.pit_dataset import build_chunked_training_set
from training.preranker import (
    FEATURE_SERVICE,
    click_log,
    embedding_column,
    query_column,
    read_rows,
    train_preranker,
    with_catalogue_negatives,
)


def test_the_preranker_trains_with_a_card_and_serving_loads_it(feast_world: Settings) -> None:
    # on clicks, whether or not a final ranker exists in the shared home (the distilled path: test_preranker_distill)
    settings = feast_world.model_copy(
        update={"recall": feast_world.recall.model_copy(update={"prerank_target": "clicks"})}
    )
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
    assert card["feature_importance"].get(prerank.QUERY_MATCH, 0) > 0  # the search impressions' query match is used
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


def test_the_query_match_is_each_search_impressions_title_match_and_nan_on_the_feed(
    feast_world: Settings, tmp_path
) -> None:  # noqa: ANN001
    settings = feast_world
    cfg = settings.training
    chunked = build_chunked_training_set(settings, RUN_DATE, FEATURE_SERVICE, tmp_path / "set")
    _, _, holdout_days = split_days(chunked.days, cfg.holdout_days, cfg.burn_in_days, cfg.validation_days)
    holdout = read_rows(chunked.on_days(holdout_days), settings.simulator.categories)
    got = query_column(holdout, settings)
    # the reference: the raw impression's surface and query against the raw item title, with serving's function
    events = pd.concat(
        [pd.read_parquet(settings.raw_dir / "events" / f"dt={day.isoformat()}") for day in holdout_days]
    ).set_index("event_id")
    titles = pd.read_parquet(settings.raw_dir / "items", columns=["item_id", "title"]).drop_duplicates(
        "item_id", keep="last"
    )
    title_of = titles.set_index("item_id")["title"]
    raw = events.loc[holdout["impression_id"]]
    search = (raw["surface"] == "search").to_numpy() & raw["query"].notna().to_numpy()
    assert search.any() and (~search).any()
    assert np.isnan(got[~search]).all()
    expected = np.array(
        [
            query_title_match(query, [title_words(title_of.get(item))])[0]
            for query, item in zip(raw["query"][search], raw["item_id"][search], strict=True)
        ]
    )
    np.testing.assert_allclose(got[search], expected, rtol=1e-6)
    assert (expected > 0).any() and (expected < 1).any()  # a column that varies: the model can learn from it


def test_sampled_negatives_are_the_days_catalogue_items_as_non_clicks_with_their_query_match(
    feast_world: Settings, tmp_path
) -> None:  # noqa: ANN001
    settings = feast_world
    cfg = settings.training
    chunked = build_chunked_training_set(settings, RUN_DATE, FEATURE_SERVICE, tmp_path / "set")
    fit_days, _, _ = split_days(chunked.days, cfg.holdout_days, cfg.burn_in_days, cfg.validation_days)
    rows = read_rows(chunked.on_days(fit_days[-1:]), settings.simulator.categories)
    out = with_catalogue_negatives(rows, settings, 5, seed=3)
    sampled = out[out["impression_id"].isna()]
    # the impressions are all still there; about 5 more rows per request, none an impression of the same request
    assert len(out) - len(sampled) == len(rows) and len(sampled) > 4 * rows["request_id"].nunique()
    assert (sampled["relevance"] == 0).all() and (sampled["label_click"] == 0).all()
    pairs = set(zip(rows["request_id"], rows["item_id"], strict=True))
    assert not any(pair in pairs for pair in zip(sampled["request_id"], sampled["item_id"], strict=True))
    # each sampled row carries its item's item_features row of the request's day
    marts = settings.marts_export_dir.resolve()
    items = pd.read_parquet(marts / "item_features.parquet", columns=["item_id", "dt", "item_price"])
    items["dt"] = pd.to_datetime(items["dt"]).dt.date
    day = fit_days[-1]
    price = items[items["dt"] == day].set_index("item_id")["item_price"]
    np.testing.assert_allclose(sampled["item_price"].to_numpy(float), price.reindex(sampled["item_id"]).to_numpy(float))
    # the user's affinity is their share of the item's category, as the final ranker derives it
    share_columns = [c for c in rows.columns if c.startswith("user_cat_share_")]
    one = sampled.iloc[0]
    expected = float(np.nan_to_num(one[share_columns[int(one["item_category_id"])]]))
    assert one[prerank.AFFINITY] == pytest.approx(expected)
    # on a search request a sampled item gets serving's query_title_match; on a feed request NaN
    query = query_column(out, settings)
    matches = read_mart(marts, "query_item_match", ["request_id", "query"])
    queries = matches.drop_duplicates("request_id").set_index("request_id")["query"]
    titles = pd.read_parquet(settings.raw_dir / "items", columns=["item_id", "title"]).drop_duplicates(
        "item_id", keep="last"
    )
    title_of = titles.set_index("item_id")["title"]
    positions = np.flatnonzero(out["impression_id"].isna().to_numpy())
    on_search = [p for p in positions if out["request_id"].iloc[p] in queries.index]
    on_feed = [p for p in positions if out["request_id"].iloc[p] not in queries.index]
    assert on_search and on_feed and np.isnan(query[on_feed]).all()
    for p in on_search[:200]:
        title = title_words(title_of.get(out["item_id"].iloc[p]))
        want = query_title_match(queries[out["request_id"].iloc[p]], [title])
        assert query[p] == pytest.approx(want[0])
