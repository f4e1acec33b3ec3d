"""Simulated labellers behave as specified, true grades follow the guidelines, and the daily sample is what the
settings ask for (budget, strata, active picks, gold), on a small simulated world."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labelling.grades import difficulty, true_grades
from labelling.labellers import CONFIRM_SPEEDUP, Labeller, answer, make_crowd
from labelling.sampling import active_picks, daily_sample, strata
from labelling.search_log import search_pairs, with_truth
from producers.simulator import simulate
from shoprank.settings import LabellingSettings, Settings, SimulatorSettings

RUN_DATE = date(2026, 1, 7)
TINY = {"users": 300, "items": 150, "sellers": 10, "categories": 5, "requests_per_day": 600, "slate_size": 10}


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    settings = Settings(home=Path(tmp_path_factory.mktemp("labels")), simulator=SimulatorSettings(**TINY, days=2))
    simulate(settings, RUN_DATE)
    return with_truth(settings, search_pairs(settings))


def test_true_grades_follow_the_guidelines():
    pairs = pd.DataFrame(
        {
            "query": ["kite", "eco kite", "eco kite", "kite", "kite", "kite"],
            "title": ["mini kite", "eco kite", "pro kite", "eco kite live deal", "eco doll", "eco sofa"],
            "category_id": [6, 6, 6, 6, 6, 3],
            "intent_category": [6, 6, 6, 6, 6, 6],
        }
    )
    grades = true_grades(pairs)
    assert grades.tolist() == [3, 3, 2, 2, 1, 0]
    hard = difficulty(pairs, grades)
    assert hard[3] > hard[0] and hard[2] > hard[1]  # a promotion, an adjective mismatch: harder than exact matches


def test_careful_labellers_are_mostly_right_careless_ones_at_chance_and_hard_tasks_take_longer():
    rng = np.random.default_rng(0)
    careful = Labeller("c", accuracy=0.95, bias=0.0, seconds_per_task=10.0, careless=False)
    careless = Labeller("r", accuracy=0.95, bias=0.0, seconds_per_task=3.0, careless=True)
    grades = rng.integers(0, 4, 2000)
    right = np.mean([answer(careful, g, 0.1, rng)[0] == g for g in grades])
    chance = np.mean([answer(careless, g, 0.1, rng)[0] == g for g in grades])
    assert right > 0.85 and 0.18 < chance < 0.32
    easy = np.mean([answer(careful, 2, 0.1, rng)[1] for _ in range(500)])
    hard = np.mean([answer(careful, 2, 0.9, rng)[1] for _ in range(500)])
    assert hard > 1.8 * easy


def test_a_lenient_labeller_errs_upwards_and_a_strict_one_downwards():
    rng = np.random.default_rng(1)
    lenient = Labeller("up", accuracy=0.5, bias=0.9, seconds_per_task=10.0, careless=False)
    strict = Labeller("down", accuracy=0.5, bias=-0.9, seconds_per_task=10.0, careless=False)
    assert np.mean([answer(lenient, 1, 0.5, rng)[0] for _ in range(1000)]) > 1.3
    assert np.mean([answer(strict, 2, 0.5, rng)[0] for _ in range(1000)]) < 1.7


def test_pre_labels_speed_up_confirmations_and_anchor_weak_labellers_more():
    rng = np.random.default_rng(2)
    labeller = Labeller("x", accuracy=1.0, bias=0.0, seconds_per_task=10.0, careless=False)
    plain = np.mean([answer(labeller, 3, 0.0, rng)[1] for _ in range(500)])
    confirmed = np.mean([answer(labeller, 3, 0.0, rng, suggestion=3)[1] for _ in range(500)])
    assert confirmed == pytest.approx(plain * CONFIRM_SPEEDUP, rel=0.1)
    weak = Labeller("w", accuracy=0.6, bias=0.0, seconds_per_task=10.0, careless=False)
    strong = Labeller("s", accuracy=0.95, bias=0.0, seconds_per_task=10.0, careless=False)
    took_wrong = {
        lab.labeller_id: np.mean([answer(lab, 3, 0.0, rng, suggestion=0)[0] == 0 for _ in range(2000)])
        for lab in (weak, strong)
    }
    assert took_wrong["w"] > took_wrong["s"] + 0.15


def test_a_crowd_has_the_asked_share_of_careless_labellers():
    crowd = make_crowd(20, 0.2, seed=4)
    assert sum(lab.careless for lab in crowd) == 4
    assert len({lab.labeller_id for lab in crowd}) == 20


def test_the_daily_sample_keeps_the_budget_covers_every_stratum_and_mixes_in_gold(pairs):
    cfg = LabellingSettings(daily_budget=90, gold_share=0.1, active_share=0.0)
    gold_pool = pairs.assign(gold_grade=pairs["true_grade"])
    labelled = set(pairs["pair_id"].iloc[:50])
    sample = daily_sample(pairs, cfg, seed=1, gold_pool=gold_pool, already_labelled=labelled)
    assert len(sample) <= 90 and len(sample) >= 85  # a gold pair also drawn by the strata counts once
    assert not (set(sample.loc[sample["stratum"] != "gold", "pair_id"]) & labelled)
    cells = set(strata(pairs[~pairs["pair_id"].isin(labelled)], cfg.position_strata))
    drawn = sample.loc[~sample["stratum"].isin(["gold"]), "stratum"].value_counts()
    assert set(drawn.index) == cells
    assert drawn.max() - drawn.min() <= max(2, 81 // len(cells))  # even split, short cells excepted
    gold = sample[sample["stratum"] == "gold"]
    assert 7 <= len(gold) <= 9 and gold["gold_grade"].notna().all()
    assert gold["gold_grade"].nunique() >= 3  # spread over the grades


def test_active_picks_take_the_pairs_the_model_is_least_sure_of_or_that_clicks_contradict(pairs):
    some = pairs.head(6).assign(clicks=[0, 0, 0, 1, 0, 0], best_position=[8, 8, 8, 8, 1, 8])
    scores = np.array([0.02, 0.5, 0.97, 0.05, 0.95, 0.1])
    picked = active_picks(some, scores, 3)
    # 0.5 (unsure), a clicked pair scored irrelevant, a top pair scored relevant but not clicked.
    assert set(picked.index) == {some.index[1], some.index[3], some.index[4]}
    assert (picked["stratum"] == "active").all()
