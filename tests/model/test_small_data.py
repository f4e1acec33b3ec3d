"""Training on a tiny or degenerate world finishes with a warning in the card, and the gate refuses its model.

The worlds are training frames as ``build_training_frame`` returns them (one row per impression, the feature
service's columns, labels, ``dt``), four days of a handful of requests: burn-in, fit, validation, holdout. Real
XGBoost training, a real (temporary) BentoML store, the real gate.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprank.ranking_features import POPULARITY_FEATURE, feature_columns_for
from shoprank.settings import Settings, apply_runtime_env, get_settings
from tests.model.model_store import bentoml_home
from training import gate, registry
from training.train import CARD_FILE, candidate_dir, train_on_frame

DAYS = [date(2026, 1, 1) + timedelta(days=n) for n in range(4)]
RUN_DATE = DAYS[-1]
SLATE = 5


def tiny_world(settings: Settings, requests_per_day: int = 6, seed: int = 0) -> pd.DataFrame:
    """``requests_per_day`` slates a day; relevance follows the first feature, so the trees have something to learn."""
    columns = feature_columns_for(settings.training.feature_service, settings.simulator.categories)
    rng = np.random.default_rng(seed)
    rows = len(DAYS) * requests_per_day * SLATE
    frame = pd.DataFrame(rng.normal(size=(rows, len(columns))), columns=columns)
    request = np.arange(rows) // SLATE
    frame["request_id"] = [f"r{n:04d}" for n in request]
    frame["impression_id"] = [f"m{n:05d}" for n in range(rows)]
    frame["item_id"] = [f"i{n % SLATE}" for n in range(rows)]
    frame["user_id"] = [f"u{n % 7}" for n in request]
    frame["dt"] = [DAYS[n // requests_per_day] for n in request]
    utility = frame[columns[0]] + rng.normal(0, 0.3, rows)
    frame["relevance"] = np.select([utility > 1.5, utility > 0.5], [2, 1], 0)
    frame["label_click"] = (frame["relevance"] > 0).astype(int)
    frame["label_purchase"] = (frame["relevance"] > 1).astype(int)
    frame["item_price"] = rng.uniform(5, 50, rows)
    frame["user_is_cold_start"] = (request % 3 == 0).astype(int)
    frame["item_is_new"] = (frame["item_id"] == "i4").astype(int)
    return frame


def _on_holdout(frame: pd.DataFrame, change: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame:
    holdout = frame["dt"] == RUN_DATE
    return pd.concat([frame[~holdout], change(frame[holdout].copy())], ignore_index=True)


def _no_click(h: pd.DataFrame) -> pd.DataFrame:
    return h.assign(relevance=0, label_click=0, label_purchase=0)


def _all_clicks(h: pd.DataFrame) -> pd.DataFrame:
    return h.assign(relevance=1, label_click=1)


def _single_request(h: pd.DataFrame) -> pd.DataFrame:
    return h[h["request_id"] == h["request_id"].iloc[0]].assign(relevance=[1, 0, 0, 0, 0], label_click=[1, 0, 0, 0, 0])


def _missing_popularity(h: pd.DataFrame) -> pd.DataFrame:
    h.loc[h.index[::2], POPULARITY_FEATURE] = np.nan  # items without a snapshot on the day
    return h


def _constant_feature(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(user_ctr_30d=0.0)


CASES = {
    "few requests": (lambda f: f, "requests with a click (of 6), below the minimum 50"),
    "no click": (lambda f: _on_holdout(f, _no_click), "holdout has 0 requests with a click"),
    "all clicks": (lambda f: _on_holdout(f, _all_clicks), "every holdout impression is a click"),
    "single request": (lambda f: _on_holdout(f, _single_request), "holdout has a single request"),
    "NaN popularity": (lambda f: _on_holdout(f, _missing_popularity), "popularity scores are missing for 15 of 30"),
    "constant feature": (_constant_feature, "features are constant over the training days: user_ctr_30d"),
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Settings]:
    settings = Settings(home=tmp_path / "home")
    with pytest.MonkeyPatch.context() as mp, bentoml_home(settings.model_store_dir):
        mp.delenv("SHOPRANK_MODEL_TAG", raising=False)
        apply_runtime_env(settings)
        yield settings
    get_settings.cache_clear()
    apply_runtime_env(get_settings())


def _strict_json(path: Path) -> dict:
    def refuse(constant: str) -> None:
        raise ValueError(f"{path} holds {constant}: not strict JSON")

    return dict(json.loads(path.read_text(), parse_constant=refuse))


@pytest.mark.parametrize("case", list(CASES))
def test_training_on_a_degenerate_world_finishes_with_the_warning_in_the_card(store: Settings, case: str):
    from bentoml._internal.utils import validate_metadata

    make_world, expected = CASES[case]
    result = train_on_frame(store, RUN_DATE, make_world(tiny_world(store)))
    card = _strict_json(candidate_dir(store, RUN_DATE) / CARD_FILE)
    assert any(expected in warning for warning in card["warnings"]), card["warnings"]
    assert result["warnings"] == card["warnings"]
    json.dumps(result, allow_nan=False)  # the step's summary (an Airflow XCom)
    validate_metadata(registry.model_store_metadata(card))  # BentoML takes the card
    assert "<h2>Warnings</h2>" in Path(card["report_path"]).read_text()


def test_the_gate_refuses_the_model_of_a_tiny_world_and_nothing_serves_it(store: Settings):
    train_on_frame(store, RUN_DATE, tiny_world(store))
    card = _strict_json(candidate_dir(store, RUN_DATE) / CARD_FILE)
    assert card["holdout_requests"] == 6 and card["holdout_requests_with_click"] == 6
    assert card["params"]["ranker"]["n_estimators"] >= min(store.training.min_trees, store.training.n_estimators)
    tag = registry.register_candidate(store, candidate_dir(store, RUN_DATE))["tag"]
    result = gate.promote(store, tag, label=RUN_DATE.isoformat())
    assert result["promoted"] is False and result["refusal"] == gate.HOLDOUT_TOO_SMALL
    assert "min_holdout_requests_with_click" in result["reasons"][0]
    assert registry.champion_tag(store) is None
