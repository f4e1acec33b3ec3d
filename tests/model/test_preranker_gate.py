"""The pre-ranker's publish gate (training/preranker_gate.py) on the simulated home: a pre-ranker that imitates the
final ranker is published; a one-split pre-ranker (settings: 1 tree of depth 1) is refused, the served one stays,
and the decision is recorded. The world has 150 items, so the funnel is scaled down: pools of 150, keep 30, top 5."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from shoprank import prerank
from shoprank.ranking_features import feature_columns_for
from shoprank.settings import Settings
from tests.model.conftest import RUN_DATE
from tests.model.test_preranker_distill import SERVICE, _final_ranker, _write_candidate
from training import preranker_gate
from training.chunks import read_chunk
from training.pit_dataset import build_chunked_training_set
from training.preranker import train_preranker
from training.train import candidate_dir


def _scaled(settings: Settings, **recall: object) -> Settings:
    gate = settings.recall.prerank_gate.model_copy(update={"top": 5})
    update = {"prerank_target": "distill", "prerank_candidates": 150, "prerank_keep": 30, "prerank_gate": gate}
    return settings.model_copy(update={"recall": settings.recall.model_copy(update={**update, **recall})})


@pytest.fixture
def dear_first(feast_world: Settings, tmp_path) -> Iterator[Settings]:  # noqa: ANN001
    """The run's candidate is a final ranker that puts dear items first (the pre-ranker has the price to learn it);
    the home's own candidate and pre-rankers are put back afterwards."""
    settings = feast_world
    n_categories = settings.simulator.categories
    chunked = build_chunked_training_set(settings, RUN_DATE, SERVICE, tmp_path / "set")
    frame = pd.concat([read_chunk(c) for c in chunked.chunks], ignore_index=True)
    columns = feature_columns_for(SERVICE, n_categories)
    candidate = candidate_dir(settings, RUN_DATE)
    saved = [
        (p, p.with_name(p.name + ".saved")) for p in (candidate, settings.preranker_dir, settings.preranker_gate_dir)
    ]
    for path, aside in saved:
        if path.exists():
            shutil.move(path, aside)
    try:
        _write_candidate(settings, _final_ranker(frame, columns, frame["item_price"].to_numpy(float), n_categories))
        yield settings
    finally:
        for path, aside in saved:
            shutil.rmtree(path, ignore_errors=True)
            if aside.exists():
                shutil.move(aside, path)


def test_an_imitating_preranker_is_published_and_a_one_split_one_refused_while_the_served_one_stays(
    dear_first: Settings,
) -> None:
    good = _scaled(dear_first)
    card = train_preranker(good, RUN_DATE)
    gate = card["gate"]
    day = RUN_DATE.isoformat()
    assert gate["published"], gate
    metrics = gate["metrics"]
    for surface in preranker_gate.SURFACES:
        assert metrics[f"{surface}_requests"] >= good.recall.prerank_gate.min_requests
        assert 100 < metrics[f"{surface}_pool_mean"] <= 150  # the holdout day's shown items (of 150), up to 150
        assert metrics[f"{surface}_recall_top5"] >= good.recall.prerank_gate.min_recall_feed
        assert metrics[f"{surface}_clicks_kept_ratio"] >= good.recall.prerank_gate.min_clicks_kept_ratio
    root = good.preranker_dir
    assert (root / prerank.CURRENT).read_text() == day
    served_model = (root / day / prerank.MODEL_FILE).read_bytes()
    decision = json.loads((good.preranker_gate_dir / "decisions" / f"{day}.json").read_text())
    assert decision["published"] and decision["reference"].startswith("candidate")

    bad = _scaled(dear_first, prerank_trees=1, prerank_depth=1)
    card = train_preranker(bad, RUN_DATE)
    gate = card["gate"]
    assert not gate["published"]
    assert any("FAIL" in reason and "recall of the final ranker's top 5" in reason for reason in gate["reasons"])
    # the served version is untouched: same pointer, same model bytes; the refused model is kept aside
    assert (root / prerank.CURRENT).read_text() == day
    assert (root / day / prerank.MODEL_FILE).read_bytes() == served_model
    loaded = prerank.load_preranker(root)
    assert loaded is not None and loaded.card["gate"]["published"]
    assert loaded.card["params"]["n_estimators"] == good.recall.prerank_trees
    refused = good.preranker_gate_dir / "refused" / day
    assert json.loads((refused / prerank.CARD_FILE).read_text())["params"]["max_depth"] == 1
    decision = json.loads((good.preranker_gate_dir / "decisions" / f"{day}.json").read_text())
    assert not decision["published"] and decision["reasons"] == gate["reasons"]


def test_a_refused_first_preranker_leaves_serving_on_todays_path(dear_first: Settings) -> None:
    bad = _scaled(dear_first, prerank_trees=1, prerank_depth=1)
    card = train_preranker(bad, RUN_DATE)
    assert not card["gate"]["published"]
    assert prerank.current_version(bad.preranker_dir) is None and prerank.load_preranker(bad.preranker_dir) is None


def test_a_drawn_pool_row_is_the_requests_user_with_the_items_own_columns(feast_world: Settings, tmp_path) -> None:  # noqa: ANN001
    settings = feast_world
    n_categories = settings.simulator.categories
    chunked = build_chunked_training_set(settings, RUN_DATE, SERVICE, tmp_path / "set")
    holdout = pd.concat([read_chunk(c) for c in chunked.on_days([RUN_DATE])], ignore_index=True)
    request = str(holdout["request_id"].iloc[0])
    (pool,) = preranker_gate.pools(holdout, [request], 60, n_categories, seed=1)
    own = holdout[holdout["request_id"] == request]
    assert len(pool) == 60 and (~pool["drawn"]).sum() == len(own) and pool["item_id"].is_unique
    drawn = pool[pool["drawn"]]
    assert (drawn["request_id"] == request).all() and (drawn["user_id"] == own["user_id"].iloc[0]).all()
    # item columns: the item's own holdout row; user columns: the request's
    one = drawn.iloc[0]
    item_row = holdout[holdout["item_id"] == one["item_id"]].iloc[0]
    for column in ("item_price", "item_category_id", "item_clicks_7d"):
        assert one[column] == pytest.approx(item_row[column], nan_ok=True)
    for column in ("user_impressions_30d", "user_avg_click_price_30d"):
        assert one[column] == pytest.approx(own[column].iloc[0], nan_ok=True)
    shares = [c for c in holdout.columns if c.startswith("user_cat_share_")]
    expected = float(np.nan_to_num(own[shares].iloc[0].to_numpy(float)[int(one["item_category_id"])]))
    assert one[prerank.AFFINITY] == pytest.approx(expected)
