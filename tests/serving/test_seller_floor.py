"""The new-seller exposure floor (serving/rules/seller_floor.py) and the service's per-seller counter that feeds it
(serving/seller_exposure.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serving.item_cache import ItemCache
from serving.rules.config import LearnedExplorationRules, RulesConfig, SellerFloorRules, load_rules
from serving.rules.pipeline import RuleContext, apply_rules
from serving.rules.seller_floor import DISPLACED_BY_FLOOR, SELLER_FLOOR, seller_floor
from serving.rules.slate import by_score, make_slate
from serving.seller_exposure import SellerExposure
from shoprank.ranking_features import ITEM_FEATURES
from shoprank.settings import get_settings

K = 5
CFG = SellerFloorRules(enabled=True, days=7, min_impressions=20, max_slots=1, pace=True)
PRIOR = LearnedExplorationRules()


def _slate(age: float, shown: float, second_young: bool = False):  # noqa: ANN202
    """Eight established items of old sellers (scores 8..1) and, outside the top 5, two items of seller ``s_new``
    (``young1`` with a strong prior, ``young0`` with a poor one), its age and impressions today given; optionally
    a second young seller ``s_other`` shown 10 times today."""
    ids = [f"old{i}" for i in range(8)] + ["young0", "young1", "other"]
    sellers = [f"s{i}" for i in range(8)] + ["s_new", "s_new", "s_other"]
    ages = [400.0] * 8 + [age, age, 2.0 if second_young else 400.0]
    return make_slate(
        ids,
        np.r_[np.arange(8, 0, -1, dtype=float), 0.3, 0.2, 0.1],
        seller=np.array(sellers, dtype=object),
        is_new_item=np.r_[np.zeros(8, dtype=bool), True, True, second_young],
        prior_ctr=np.r_[np.full(8, 0.05), 0.002, 0.4, 0.05],
        prior_cvr=np.full(11, 0.2),
        history_impressions=np.r_[np.full(8, 5000.0), 0, 0, 0],
        history_clicks=np.r_[np.full(8, 250.0), 0, 0, 0],
        seller_age_days=np.array(ages),
        seller_shown_today=np.r_[np.zeros(8), shown, shown, 10.0],
    )


def _top(slate, order) -> list[str]:  # noqa: ANN001
    return [str(i) for i in slate.item_ids[order[:K]]]


def test_a_new_seller_below_its_floor_gets_a_slot_for_its_best_item() -> None:
    slate = _slate(age=2.0, shown=5)
    moved, order = seller_floor(slate, by_score(slate), CFG, PRIOR, K, 1.0, np.random.default_rng(0))
    assert _top(moved, order) == ["old0", "old1", "old2", "old3", "young1"]  # the strong-prior item, old4's place
    position = {str(i): p for p, i in enumerate(moved.item_ids)}
    assert SELLER_FLOOR in moved.reasons[position["young1"]]
    assert DISPLACED_BY_FLOOR in moved.reasons[position["old4"]]


def test_no_slot_at_or_above_the_floor_nor_after_the_sellers_first_days() -> None:
    for slate in (_slate(age=2.0, shown=20), _slate(age=2.0, shown=35), _slate(age=7.0, shown=0)):
        moved, order = seller_floor(slate, by_score(slate), CFG, PRIOR, K, 1.0, np.random.default_rng(0))
        assert _top(moved, order) == ["old0", "old1", "old2", "old3", "old4"]
    off = SellerFloorRules(enabled=True, days=7, min_impressions=0)
    slate = _slate(age=2.0, shown=0)
    assert _top(*seller_floor(slate, by_score(slate), off, PRIOR, K, 1.0, np.random.default_rng(0))) == [
        "old0",
        "old1",
        "old2",
        "old3",
        "old4",
    ]


def test_the_floor_is_paced_through_the_day_and_the_furthest_below_goes_first() -> None:
    slate = _slate(age=2.0, shown=6)
    early = seller_floor(slate, by_score(slate), CFG, PRIOR, K, 0.25, np.random.default_rng(0))  # due 5 so far
    assert "young1" not in _top(*early)
    late = seller_floor(slate, by_score(slate), CFG, PRIOR, K, 0.5, np.random.default_rng(0))  # due 10
    assert "young1" in _top(*late)
    unpaced = SellerFloorRules(enabled=True, days=7, min_impressions=20, pace=False)
    assert "young1" in _top(*seller_floor(slate, by_score(slate), unpaced, PRIOR, K, 0.25, np.random.default_rng(0)))
    # two sellers below the floor, one slot: s_new (6 shown) before s_other (10 shown); two slots: both
    both = _slate(age=2.0, shown=6, second_young=True)
    assert _top(*seller_floor(both, by_score(both), CFG, PRIOR, K, 1.0, np.random.default_rng(0)))[-1] == "young1"
    two = SellerFloorRules(enabled=True, days=7, min_impressions=20, max_slots=2)
    top = _top(*seller_floor(both, by_score(both), two, PRIOR, K, 1.0, np.random.default_rng(0)))
    assert top[:3] == ["old0", "old1", "old2"] and set(top[3:]) == {"young1", "other"}


def test_a_seller_already_in_the_top_k_takes_no_floor_slot() -> None:
    slate = _slate(age=2.0, shown=0)
    order = by_score(slate)
    order = np.r_[order[:4], [8], order[4:8], order[9:]]  # young0 (s_new) already at rank 5
    moved, new_order = seller_floor(slate, order, CFG, PRIOR, K, 1.0, np.random.default_rng(0))
    assert list(new_order) == list(order)


def test_the_rules_pipeline_runs_the_floor_only_when_enabled() -> None:
    base = load_rules(get_settings().rules_file)
    rules = RulesConfig.model_validate(
        {**base.model_dump(), "exploration": {"enabled": False}, "seller_floor": {"enabled": False}}
    )
    slate = _slate(age=2.0, shown=0)
    ctx = RuleContext(k=K, surface="search", cold_user=False, seed=1)
    assert "young1" not in _top(*apply_rules(slate, rules, ctx))
    on = rules.model_copy(update={"seller_floor": CFG})
    assert "young1" in _top(*apply_rules(slate, on, ctx))


def _cache(snapshot: str) -> ItemCache:
    frame = pd.DataFrame({name: [0.0, 0.0, 0.0] for name in ITEM_FEATURES})
    frame["item_id"] = ["a", "b", "c"]
    frame["item_seller_id"] = ["s1", "s1", "s2"]
    frame["item_age_days"] = [30.0, 2.0, 3.0]
    frame["feature_ts"] = pd.Timestamp(snapshot)
    return ItemCache.from_frame(frame)


def test_the_counter_counts_a_sellers_impressions_per_snapshot_and_paces_by_yesterdays_requests() -> None:
    exposure = SellerExposure()
    day1 = _cache("2026-11-01")
    rows = day1.rows(["a", "b", "c"])
    slate = make_slate(["a", "b", "c"], np.zeros(3), seller=day1.seller[rows])
    annotated, fraction = exposure.annotate(slate, day1, rows)
    assert list(annotated.seller_age_days) == [30.0, 30.0, 3.0]  # the seller's oldest item
    assert list(annotated.seller_shown_today) == [0, 0, 0] and fraction == 1.0  # no yesterday: the whole floor
    exposure.record(np.array(["s1", "s1", "s2"], dtype=object))
    annotated, _ = exposure.annotate(slate, day1, rows, count=False)  # /explain reads, does not count
    assert list(annotated.seller_shown_today) == [2, 2, 1] and exposure.requests == 1
    exposure.annotate(slate, day1, rows)
    exposure.annotate(slate, day1, rows)
    day2 = _cache("2026-11-02")
    annotated, fraction = exposure.annotate(slate, day2, rows)  # a new snapshot: a new day
    assert list(annotated.seller_shown_today) == [0, 0, 0]
    assert exposure.previous_requests == 3 and fraction == 1 / 3


def test_the_service_serves_a_young_seller_until_its_floor_is_met(serving_world) -> None:  # noqa: ANN001
    """/rank end to end: the service's counter feeds the rule, and the served impressions count toward the floor."""
    from dataclasses import replace

    from serving.schemas import RankRequest
    from serving.seller_exposure import seller_ages
    from serving.service import RankingService

    service = RankingService()
    items = service.state.items
    ages, sellers = seller_ages(items)[:-1], items.seller[:-1]
    young = str(sellers[np.nanargmin(ages)])
    days = float(np.nanmin(ages)) + 1e-6  # only the youngest seller is "new" under the floor
    assert (ages[sellers != young] > days).all()
    base = service.state.rules
    assert base is not None
    off = base.model_copy(
        update={
            "exploration": base.exploration.model_copy(update={"enabled": False}),
            "supply_demand": base.supply_demand.model_copy(update={"new_seller_min_items": 0}),
            "mixing": base.mixing.model_copy(update={"enabled": False}),
        }
    )
    user = serving_world.user_ids[0]
    stock = items.column("item_stock_units", items.rows([str(i) for i in items.ids]))
    sellers_of = dict(zip(items.ids.astype(str), sellers, strict=True))
    stocked = [str(i) for i, units in zip(items.ids, stock, strict=True) if units > 0]
    pool = [i for i in stocked if sellers_of[i] != young][:40] + [i for i in stocked if sellers_of[i] == young]
    by_model = service.rank(RankRequest(user_id=user, candidate_ids=pool, k=len(pool), apply_rules=False))
    order = [i.item_id for i in by_model.items]
    mine = [i for i in order if sellers_of[i] == young]
    candidates = [i for i in order[:20] if i not in mine] + mine[-1:]  # the seller's weakest item, last
    service.state = replace(service.state, rules=off)
    plain = service.rank(RankRequest(user_id=user, candidate_ids=candidates, k=5, request_id="r0"))
    assert mine[-1] not in [i.item_id for i in plain.items]
    floor = SellerFloorRules(enabled=True, days=days, min_impressions=3, max_slots=1, pace=False)
    service.state = replace(service.state, rules=off.model_copy(update={"seller_floor": floor}))
    served = []
    for n in range(5):
        response = service.rank(RankRequest(user_id=user, candidate_ids=candidates, k=5, request_id=f"r{n + 1}"))
        shown = {i.item_id: i.reasons for i in response.items}
        served.append(mine[-1] in shown and SELLER_FLOOR in shown[mine[-1]])
    assert served == [True, True, True, False, False]  # three impressions a day, then the model decides again
    assert service.seller_exposure.counts[young] == 3


def test_a_floor_rank_shows_the_floor_item_there_and_moves_the_items_below_down_one() -> None:
    slate = _slate(age=2.0, shown=5)
    at_two = SellerFloorRules(enabled=True, days=7, min_impressions=20, max_slots=1, pace=True, rank=2)
    moved, order = seller_floor(slate, by_score(slate), at_two, PRIOR, K, 1.0, np.random.default_rng(0))
    assert _top(moved, order) == ["old0", "young1", "old1", "old2", "old3"]  # old4 still the one displaced
    beyond = SellerFloorRules(enabled=True, days=7, min_impressions=20, max_slots=1, pace=True, rank=K + 3)
    moved, order = seller_floor(slate, by_score(slate), beyond, PRIOR, K, 1.0, np.random.default_rng(0))
    assert _top(moved, order) == ["old0", "old1", "old2", "old3", "young1"]  # past the top k: its bottom place


def test_max_candidate_rank_promotes_only_a_needy_sellers_item_within_the_first_n_of_the_order() -> None:
    """young0 is 9th in the order and young1 (the better draw) 10th: N = 8 promotes neither, 9 only young0, 10 and
    0 (anywhere, the old behaviour) young1."""
    slate = _slate(age=2.0, shown=5)
    order = by_score(slate)
    assert [str(i) for i in slate.item_ids[order[8:10]]] == ["young0", "young1"]

    def top_with(n: int) -> list[str]:
        cfg = SellerFloorRules(enabled=True, days=7, min_impressions=20, max_slots=1, max_candidate_rank=n)
        return _top(*seller_floor(slate, order, cfg, PRIOR, K, 1.0, np.random.default_rng(0)))

    assert top_with(8) == ["old0", "old1", "old2", "old3", "old4"]
    assert top_with(9) == ["old0", "old1", "old2", "old3", "young0"]
    assert top_with(10) == top_with(0) == ["old0", "old1", "old2", "old3", "young1"]
    assert SellerFloorRules().max_candidate_rank == 0  # the default keeps today's behaviour
