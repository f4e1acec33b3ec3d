"""The closed loop's rules: learned exploration (Thompson sampling from the content prior) and pacing by cover.

Pure functions over slates, like tests/serving/test_rules.py.
"""

from __future__ import annotations

import numpy as np

from serving.rules.config import LearnedExplorationRules, PacingRules, RulesConfig, load_rules
from serving.rules.learned_exploration import DISPLACED_BY_LEARNED, EXPLORE_LEARNED_ITEM, learned_explore
from serving.rules.pacing import PACED_OVERSTOCK, PACED_SCARCE, pace_by_cover
from serving.rules.pipeline import RuleContext, apply_rules
from serving.rules.slate import by_score, make_slate
from shoprank.settings import get_settings

K = 5


def _slate(new_prior: float, new_impressions: float = 0.0, new_clicks: float = 0.0):  # noqa: ANN202
    """Ten established items (0.05 CTR over 5000 impressions, scores 10..1) and two new ones outside the top 5:
    ``n1`` with the given prior and history, ``n2`` with a poor prior and no history."""
    n_old = 10
    ids = [f"old{i}" for i in range(n_old)] + ["n1", "n2"]
    scores = np.r_[np.arange(n_old, 0, -1, dtype=float), 0.5, 0.4]
    return make_slate(
        ids,
        scores,
        is_new_item=np.r_[np.zeros(n_old, dtype=bool), True, True],
        prior_ctr=np.r_[np.full(n_old, 0.05), new_prior, 0.005],
        prior_cvr=np.full(n_old + 2, 0.2),
        history_impressions=np.r_[np.full(n_old, 5000.0), new_impressions, 0.0],
        history_clicks=np.r_[np.full(n_old, 250.0), new_clicks, 0.0],
        history_purchases=np.r_[np.full(n_old, 50.0), 0.0, 0.0],
    )


def _explored(slate, cfg: LearnedExplorationRules, seeds: int = 200) -> dict[str, int]:  # noqa: ANN001
    """How often each item reached the top K over ``seeds`` request seeds."""
    counts: dict[str, int] = {}
    for seed in range(seeds):
        _, order = learned_explore(slate, by_score(slate), cfg, K, np.random.default_rng(seed))
        for item in slate.item_ids[order[:K]]:
            counts[str(item)] = counts.get(str(item), 0) + 1
    return counts


def test_a_newcomer_with_a_strong_prior_explores_into_the_lowest_established_place() -> None:
    cfg = LearnedExplorationRules(enabled=True, budget=0.2, prior_strength=30)
    slate = _slate(new_prior=0.3)
    moved, order = learned_explore(slate, by_score(slate), cfg, K, np.random.default_rng(0))
    top = [str(i) for i in moved.item_ids[order[:K]]]
    assert top == ["old0", "old1", "old2", "old3", "n1"]  # n1 took old4's place, the rest kept their order
    position = {str(i): p for p, i in enumerate(moved.item_ids)}
    assert EXPLORE_LEARNED_ITEM in moved.reasons[position["n1"]]
    assert DISPLACED_BY_LEARNED in moved.reasons[position["old4"]]


def test_the_prior_decides_who_explores_and_the_budget_caps_it() -> None:
    cfg = LearnedExplorationRules(enabled=True, budget=0.2, prior_strength=30)
    first, again = _explored(_slate(new_prior=0.08), cfg), _explored(_slate(new_prior=0.08), cfg)
    assert first == again  # seeded: the same draws
    counts = _explored(_slate(new_prior=0.08), cfg)
    assert counts.get("n1", 0) > 5 * counts.get("n2", 0)  # the poor prior (0.005) rarely wins a draw
    none = _explored(_slate(new_prior=0.3), cfg.model_copy(update={"budget": 0.0}))
    assert "n1" not in none and "n2" not in none


def test_the_boost_fades_with_impressions_and_ends_at_graduation() -> None:
    cfg = LearnedExplorationRules(enabled=True, budget=0.2, prior_strength=30, graduate_impressions=300)
    fresh = _explored(_slate(new_prior=0.08), cfg).get("n1", 0)
    # 250 impressions at the established items' own CTR: the posterior has narrowed onto theirs; wins get rarer.
    seasoned = _explored(_slate(new_prior=0.08, new_impressions=250, new_clicks=10), cfg).get("n1", 0)
    graduated = _explored(_slate(new_prior=0.3, new_impressions=300, new_clicks=90), cfg).get("n1", 0)
    assert fresh > seasoned
    assert graduated == 0  # past graduate_impressions the model alone decides, however good its history


def test_pacing_damps_scarce_stock_and_boosts_overstock_continuously() -> None:
    cfg = PacingRules(enabled=True, horizon_days=3, max_penalty=1.0, target_cover_days=30, max_boost=0.5)
    slate = make_slate(
        ["scarce", "low", "normal", "over", "huge", "unknown"],
        np.zeros(6),
        stock=np.array([1.0, 2.0, 20.0, 200.0, 1e6, np.nan]),
        purchases_7d=np.full(6, 7.0),  # one sale a day: cover = stock in days
    )
    paced = pace_by_cover(slate, cfg)
    unit = slate.spread()
    delta = paced.scores - slate.scores
    assert delta[0] < delta[1] < 0  # one day of cover is damped more than two
    assert np.isclose(delta[0], -unit * (1 - 1 / 3))
    assert delta[2] == 0 and delta[5] == 0  # 20 days is within the band; unknown stock is left alone
    assert 0 < delta[3] < delta[4] == 0.5 * unit  # boost grows with the cover, full at 10x the target
    assert PACED_SCARCE in paced.reasons[0] and PACED_OVERSTOCK in paced.reasons[3]


def test_the_pipeline_runs_the_new_rules_only_when_enabled() -> None:
    base = load_rules(get_settings().rules_file)
    assert not base.learned_exploration.enabled and not base.pacing.enabled
    slate = _slate(new_prior=0.3)
    ctx = RuleContext(k=K, surface="search", cold_user=False, seed=3)
    off = RulesConfig(version="t", exploration={"enabled": False}, supply_demand={"enabled": False})
    on = off.model_copy(update={"learned_exploration": LearnedExplorationRules(enabled=True, budget=0.2)})
    _, order_off = apply_rules(slate, off, ctx)
    moved, order_on = apply_rules(slate, on, ctx)
    assert "n1" not in slate.item_ids[order_off[:K]]
    assert "n1" in moved.item_ids[order_on[:K]]


def test_new_sellers_first_gives_the_slot_to_a_new_sellers_item_before_a_stronger_new_item() -> None:
    n_old = 10
    slate = make_slate(
        [f"old{i}" for i in range(n_old)] + ["new-item", "new-seller-item"],
        np.r_[np.arange(n_old, 0, -1, dtype=float), 0.5, 0.4],
        is_new_item=np.r_[np.zeros(n_old, dtype=bool), True, False],
        is_new_seller=np.r_[np.zeros(n_old, dtype=bool), False, True],
        prior_ctr=np.r_[np.full(n_old, 0.05), 0.3, 0.1],  # the new item's prior is the stronger one
        prior_cvr=np.full(n_old + 2, 0.2),
        history_impressions=np.r_[np.full(n_old, 5000.0), 0.0, 0.0],
        history_clicks=np.r_[np.full(n_old, 250.0), 0.0, 0.0],
        history_purchases=np.r_[np.full(n_old, 50.0), 0.0, 0.0],
    )
    cfg = LearnedExplorationRules(enabled=True, budget=0.2, prior_strength=30)  # one slot of the top 5
    by_draw = _explored(slate, cfg)
    sellers_first = _explored(slate, cfg.model_copy(update={"new_sellers_first": True}))
    assert by_draw.get("new-item", 0) > by_draw.get("new-seller-item", 0)
    assert sellers_first.get("new-seller-item", 0) > sellers_first.get("new-item", 0)
    # the slot is still one: never both newcomers, and the new item takes it when the seller's item loses its draw
    assert sellers_first.get("new-seller-item", 0) + sellers_first.get("new-item", 0) <= 200
    assert sellers_first.get("new-item", 0) > 0
