"""The champion/challenger gate and rollback, on real XGBoost rankers in a real (temporary) BentoML model store.

Synthetic requests whose relevance follows two features; rankers that know both, one, or the reverse of the
signal play the better challenger, the first champion and the worse challenger.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprank.ranking_features import model_feature_columns, model_matrix
from shoprank.settings import Settings, apply_runtime_env, get_settings
from tests.model.model_store import bentoml_home
from training import gate, registry
from training.train import CARD_FILE, HOLDOUT_FILE, MODEL_FILE, CandidateCard

FEATURES = model_feature_columns()


def _requests(rng: np.random.Generator, n_requests: int, day: str) -> pd.DataFrame:
    rows = n_requests * 10
    frame = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    frame["request_id"] = [f"r{day}-{n // 10:05d}" for n in range(rows)]
    frame["item_id"] = [f"i{n % 10:03d}" for n in range(rows)]
    frame["user_id"] = [f"u{n // 10:05d}" for n in range(rows)]
    frame["dt"] = day
    frame["user_is_cold_start"] = np.repeat(rng.random(n_requests) < 0.3, 10).astype(int)
    frame["item_is_new"] = (rng.random(rows) < 0.1).astype(int)
    frame["item_clicks_7d"] = frame["item_ctr_7d"] * 0.3 + rng.normal(size=rows)  # popularity: a weak signal
    utility = 1.5 * frame["item_ctr_7d"] + 1.5 * frame["user_category_affinity"] + rng.normal(0, 0.5, rows)
    frame["relevance"] = np.select([utility > 2.5, utility > 1.2], [2, 1], 0)
    frame["label_click"] = (frame["relevance"] > 0).astype(int)
    frame["label_purchase"] = (frame["relevance"] > 1).astype(int)
    return frame


def _ranker(train: pd.DataFrame, labels: pd.Series):
    from xgboost import XGBRanker

    model = XGBRanker(objective="rank:ndcg", n_estimators=30, max_depth=3, tree_method="hist", n_jobs=1)
    model.fit(model_matrix(train, FEATURES), labels.to_numpy(), qid=pd.factorize(train["request_id"])[0])
    return model


def _candidate(home: Path, name: str, model, holdout: pd.DataFrame, **card_changes) -> Path:
    """A candidate folder exactly as training writes it: model, holdout rows, card (``card_changes`` replace card
    fields; None removes one, as in a card written before the field existed)."""
    out = home / "models" / "candidates" / name
    out.mkdir(parents=True)
    model.save_model(out / MODEL_FILE)
    holdout.to_parquet(out / HOLDOUT_FILE, index=False)
    card = CandidateCard(
        run_date="2026-01-07",
        feature_service="ranker_v1",
        feature_columns=FEATURES,
        n_categories=12,
        metrics={"model_ndcg@10": 0.0},
        train_rows=1,
        holdout_rows=len(holdout),
        train_window=["2026-01-05", "2026-01-06"],
        holdout_window=["2026-01-07", "2026-01-07"],
        params={},
        holdout_path=str(out / HOLDOUT_FILE),
    )
    fields = {**asdict(card), **card_changes}
    (out / CARD_FILE).write_text(json.dumps({k: v for k, v in fields.items() if v is not None}))
    return out


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict]:
    settings = Settings(home=tmp_path / "home")
    settings.training.gate.min_slice_requests = 30
    rng = np.random.default_rng(3)
    train = _requests(rng, 400, "2026-01-06")
    holdout = _requests(rng, 300, "2026-01-07")
    with pytest.MonkeyPatch.context() as mp, bentoml_home(settings.model_store_dir):
        mp.delenv("SHOPRANK_MODEL_TAG", raising=False)
        apply_runtime_env(settings)
        home = settings.home_dir
        knows_one = 1.5 * train["item_ctr_7d"]  # blind to the user's category affinity
        tags = {
            name: registry.register_candidate(settings, _candidate(home, name, model, holdout))["tag"]
            for name, model in {
                "first": _ranker(train, pd.Series(np.digitize(knows_one, [1.2, 2.5]))),
                "worse": _ranker(train, 2 - train["relevance"]),
                "better": _ranker(train, train["relevance"]),
            }.items()
        }
        yield {"settings": settings, "tags": tags, "train": train, "holdout": holdout}
    get_settings.cache_clear()
    apply_runtime_env(get_settings())


def test_first_model_is_promoted_only_because_it_beats_popularity(world: dict):
    settings, tags = world["settings"], world["tags"]
    assert registry.champion_tag(settings) is None
    result = gate.promote(settings, tags["first"], label="day1")
    assert result["promoted"] is True and result["champion"] is None
    assert any("popularity" in reason and reason.endswith("pass") for reason in result["reasons"])
    assert registry.champion_tag(settings) == tags["first"]
    assert Path(result["decision_path"]).exists()


def test_worse_challenger_is_refused_and_the_champion_keeps_serving(world: dict):
    settings, tags = world["settings"], world["tags"]
    gate.promote(settings, tags["first"])
    result = gate.promote(settings, tags["worse"], label="day2")
    assert result["promoted"] is False
    assert result["reasons"][0].endswith("FAIL")
    assert result["metrics"]["challenger_ndcg@10"] < result["metrics"]["champion_ndcg@10"]
    assert registry.champion_tag(settings) == tags["first"]
    decision = json.loads(Path(result["decision_path"]).read_text())
    assert decision["promoted"] is False and decision["champion"] == tags["first"]
    events = registry.read_registry(settings)["events"]
    assert [e["action"] for e in events] == ["promote", "refuse"]


def test_better_challenger_is_promoted_on_the_same_holdout_and_rollback_restores_the_champion(world: dict):
    from shoprank.model_bundle import resolve_champion_tag

    settings, tags = world["settings"], world["tags"]
    gate.promote(settings, tags["first"])
    result = gate.promote(settings, tags["better"])
    metrics = result["metrics"]
    assert result["promoted"] is True, result["reasons"]
    assert metrics["challenger_ndcg@10"] > metrics["champion_ndcg@10"] + settings.training.gate.margin
    assert resolve_champion_tag(settings) == tags["better"]

    rolled = registry.rollback(settings, reason="test")
    assert rolled == {"champion": tags["first"], "retired": tags["better"]}
    assert registry.champion_tag(settings) == tags["first"]
    assert resolve_champion_tag(settings) == tags["first"]  # what serving loads on its next reload
    with pytest.raises(ValueError, match="nothing to roll back to"):
        registry.rollback(settings)


def test_margin_refuses_a_challenger_that_only_ties(world: dict):
    settings, tags = world["settings"], world["tags"]
    gate.promote(settings, tags["better"])
    settings.training.gate.margin = 0.5  # no model can gain half an NDCG point
    result = gate.promote(settings, tags["first"])
    assert result["promoted"] is False
    forced = gate.promote(settings, tags["first"], force=True)
    assert forced["promoted"] is True and "FORCED" in forced["reasons"][-1]
    assert registry.champion_tag(settings) == tags["first"]


def _slice_world(requests: int = 80) -> pd.DataFrame:
    """Half the requests are cold-start users'. Relevance sits on item 0 in warm requests, item 1 in cold ones."""
    rows = []
    for r in range(requests):
        cold = r % 2
        for i in range(4):
            rows.append(
                {
                    "request_id": f"r{r:03d}",
                    "item_id": f"i{i}",
                    "user_is_cold_start": cold,
                    "relevance": int(i == cold),
                    "label_click": int(i == cold),
                    "label_purchase": 0,
                    "item_price": 1.0,
                }
            )
    return pd.DataFrame(rows)


def test_slices_bind_against_a_champion_but_are_only_reported_against_popularity():
    from training.evaluate import evaluate_holdout
    from training.gate import _judge

    settings = Settings()
    settings.training.gate.min_slice_requests = 10
    holdout = _slice_world()
    # The challenger is perfect on warm requests and wrong on cold ones; the baseline is right on cold ones only.
    challenger = pd.Series(np.where(holdout["item_id"] == "i0", 1.0, 0.0))
    baseline = pd.Series(
        np.where(holdout["item_id"] == "i1", 1.0, 0.0)
        + 0.5 * (holdout["user_is_cold_start"] == 0) * np.where(holdout["item_id"] == "i2", 1.0, 0.0)
    )

    def judged(name: str) -> tuple[bool, list[str]]:
        scored = holdout.assign(c=challenger, b=baseline)
        return _judge(settings, evaluate_holdout(scored, {"challenger": "c", name: "b"}, 10), name)

    against_champion, reasons_champion = judged("champion")
    against_popularity, reasons_popularity = judged("popularity")
    assert any("cold_start_user" in r and r.endswith("FAIL") for r in reasons_champion)
    assert against_champion is False
    assert any("cold_start_user" in r and "reported" in r for r in reasons_popularity)
    assert against_popularity is True


def test_a_card_with_undefined_metrics_is_storable():
    """A day can leave a metric undefined (None): the model store must still take the card, without the gap."""
    from bentoml._internal.utils import validate_metadata

    from training.registry import model_store_metadata

    card = {"metrics": {"model_ndcg@10": 0.5, "slice_new_seller_model_ndcg@10": None}, "windows": [None, "2026-01-02"]}
    with pytest.raises(ValueError):
        validate_metadata(dict(card))
    stored = model_store_metadata(card)
    validate_metadata(stored)
    assert stored == {"metrics": {"model_ndcg@10": 0.5}, "windows": ["2026-01-02"]}


# ---- the champion must never have trained on the challenger's holdout ------------------------------------------
HOLDOUT_DAY = ("2026-01-07", "2026-01-07")


@pytest.mark.parametrize(
    ("metadata", "labels", "refusal"),
    [
        ({"train_window": ["2026-01-02", "2026-01-09"]}, {}, gate.CHAMPION_TRAINED_ON_HOLDOUT),  # newer champion
        ({"train_window": ["2026-01-07", "2026-01-07"]}, {}, gate.CHAMPION_TRAINED_ON_HOLDOUT),  # the very day
        ({"train_window": ["2026-01-02", "2026-01-06"]}, {}, None),  # older champion: disjoint
        ({"train_window": ["2026-01-08", "2026-01-10"]}, {}, None),  # trained only after the holdout
        # no recorded window: bounded by the run day (it trained on days before it, from an unknown first day)
        ({"run_date": "2026-01-09"}, {}, gate.CHAMPION_TRAINED_ON_HOLDOUT),
        ({}, {"run_date": "2026-01-07"}, None),
        ({}, {}, gate.WINDOW_UNKNOWN),  # nothing known: refused, never assumed safe
    ],
)
def test_window_check_refuses_overlap_and_unknown_and_allows_disjoint(metadata, labels, refusal):
    result = gate.window_refusal("shoprank_ranker:champ", metadata, labels, HOLDOUT_DAY)
    assert (None if result is None else result[0]) == refusal
    if result is not None:
        assert result[1].startswith("refused:") and "FORCE=1" in result[1]
    unknown_holdout = gate.window_refusal(
        "shoprank_ranker:champ", {"train_window": ["2026-01-02", "2026-01-06"]}, {}, None
    )
    assert unknown_holdout is not None and unknown_holdout[0] == gate.WINDOW_UNKNOWN


def _register(world: dict, name: str, **card_changes) -> str:
    model = _ranker(world["train"], world["train"]["relevance"])
    candidate = _candidate(world["settings"].home_dir, name, model, world["holdout"], **card_changes)
    return registry.register_candidate(world["settings"], candidate)["tag"]


def test_a_champion_trained_on_the_holdout_day_is_not_compared_and_keeps_serving(world: dict):
    """A backfill of day D after the run of D+3: the champion learned from day D, the challenger's holdout."""
    settings, tags = world["settings"], world["tags"]
    newer = _register(world, "newer", run_date="2026-01-10", train_window=["2026-01-02", "2026-01-09"])
    assert gate.promote(settings, newer)["promoted"] is True
    result = gate.promote(settings, tags["better"], label="2026-01-07")
    assert result["promoted"] is False and result["refusal"] == gate.CHAMPION_TRAINED_ON_HOLDOUT
    assert result["reasons"][0].startswith(
        f"refused: champion {newer} trained on the holdout day(s) 2026-01-07..2026-01-07"
    )
    assert result["metrics"] == {} and result["serving"] == newer
    assert registry.read_registry(settings)["events"][-1]["action"] == "refuse"
    forced = gate.promote(settings, tags["better"], force=True)
    assert forced["promoted"] is True and "FORCED" in forced["reasons"][-1]
    assert registry.champion_tag(settings) == tags["better"]


def test_a_champion_registered_without_a_training_window_is_bounded_by_its_run_day(world: dict):
    settings, tags = world["settings"], world["tags"]
    old = _register(world, "old", run_date="2026-01-08", train_window=None, validation_window=None)
    import bentoml

    assert "train_window" not in bentoml.models.get(old).info.metadata
    gate.promote(settings, old)
    result = gate.promote(settings, tags["better"])
    assert result["promoted"] is False and result["refusal"] == gate.CHAMPION_TRAINED_ON_HOLDOUT
    assert "not recorded; bounded by its run day 2026-01-08" in result["reasons"][0]
    assert registry.champion_tag(settings) == old


def test_a_holdout_with_too_few_clicked_requests_is_refused_even_without_a_champion(world: dict):
    settings, tags = world["settings"], world["tags"]
    settings.training.gate.min_holdout_requests_with_click = 1000  # the holdout has 300 requests
    result = gate.promote(settings, tags["better"])
    assert result["promoted"] is False and result["refusal"] == gate.HOLDOUT_TOO_SMALL
    assert "requests with a click, below the minimum 1000" in result["reasons"][0]
    assert registry.champion_tag(settings) is None
    assert gate.promote(settings, tags["better"], force=True)["promoted"] is True


def test_the_gate_reads_the_holdout_in_batches_with_the_metrics_of_the_whole_frame(world: dict, tmp_path: Path):
    """Batches that cut requests (37 rows, slates of 10) still give evaluate_holdout's metrics over the whole frame,
    and the holdout's facts come from DuckDB as pandas counts them."""
    import bentoml

    from shoprank.model_bundle import load_bundle
    from shoprank.ranking_features import POPULARITY_FEATURE
    from training.evaluate import evaluate_holdout
    from training.gate_holdout import holdout_facts, holdout_metrics
    from training.reliability import requests_with_click

    settings, holdout = world["settings"], world["holdout"]
    path = tmp_path / "holdout.parquet"
    holdout.to_parquet(path, index=False)
    challenger, champion = (load_bundle(bentoml.models.get(world["tags"][name])) for name in ("better", "first"))
    whole = holdout.assign(
        challenger_score=challenger.score(holdout),
        champion_score=champion.score(holdout),
        popularity_score=holdout[POPULARITY_FEATURE],
    )
    names = {name: f"{name}_score" for name in ("challenger", "champion", "popularity")}
    expected = evaluate_holdout(whole, names, 10)
    scorers = {
        "challenger": challenger.score,
        "champion": champion.score,
        "popularity": lambda batch: batch[POPULARITY_FEATURE],
    }
    batched = holdout_metrics(path, scorers, 10, batch_rows=37)
    assert list(batched) == list(expected)
    assert batched == pytest.approx(expected, rel=1e-12, nan_ok=True)
    assert expected["challenger_ndcg@10"] > expected["champion_ndcg@10"]  # the figures are not all alike

    facts = holdout_facts(settings, path)
    assert (facts.rows, facts.requests_with_click) == (len(holdout), requests_with_click(holdout))
    assert (facts.first_day, facts.last_day) == ("2026-01-07", "2026-01-07")

    shuffled = tmp_path / "shuffled.parquet"
    holdout.sample(frac=1.0, random_state=0).to_parquet(shuffled, index=False)
    with pytest.raises(ValueError, match="not contiguous"):
        holdout_metrics(shuffled, scorers, 10, batch_rows=37)
