"""The feed's affinity source with the user's click count (issue 16): the category lift as the Dirichlet posterior
mean of the user's category clicks (PSEUDO_CLICKS spread as the catalogue's shares), so a category lift needs clicks
behind it; without a count the shares' lift as before."""

from __future__ import annotations

import math

import numpy as np
import pytest

from serving.candidates import RetrievalIndex
from shoprank.settings import RecallSettings

from .test_affinity_recall import _index

ONE_CLICK = [0.0, 0.0, 0.0, 1.0]  # a single click, in category 3
HEAVY = [0.05, 0.8, 0.1, 0.05]  # 40 of 50 clicks in category 1


def _categories(ids: list[str]) -> list[int]:
    return [int(i[1:]) % 4 for i in ids]


def test_one_click_lifts_its_category_less_than_forty_of_fifty(tmp_path) -> None:  # noqa: ANN001
    index = _index(tmp_path)
    by_shares = index.affinity_items(ONE_CLICK, 12)
    counted = index.affinity_items(ONE_CLICK, 12, user_clicks=1.0)
    # by shares alone one click makes category 3 the user's (7 of 12); counted, the catalogue's best keep their place
    assert _categories(by_shares).count(3) == 7
    assert _categories(counted).count(3) < _categories(by_shares).count(3)
    # many clicks in a category lift it at least as much as their shares did
    heavy_shares = index.affinity_items(HEAVY, 12)
    heavy_counted = index.affinity_items(HEAVY, 12, user_clicks=50.0)
    assert _categories(heavy_counted).count(1) > _categories(heavy_shares).count(1)
    # the more clicks behind the same shares, the more of the category
    in_category = [_categories(index.affinity_items(HEAVY, 12, user_clicks=n)).count(1) for n in (1, 5, 50, 500)]
    assert in_category == sorted(in_category) and in_category[0] < in_category[-1]


def test_on_a_small_world_the_counts_retrieve_the_next_days_clicks_the_shares_miss(tmp_path) -> None:  # noqa: ANN001
    """The light user's next clicks are the best items of the categories they never clicked, the heavy user's are
    deeper in their category: counted, both are within the first 12; by shares alone 1 of 4."""
    index = _index(tmp_path)
    users = {"light": (ONE_CLICK, 1.0, {"i032", "i030"}), "heavy": (HEAVY, 50.0, {"i017", "i013"})}
    recall = {}
    for mode in ("shares", "counts"):
        hits = 0
        for shares, clicks, next_day in users.values():
            ids = index.affinity_items(shares, 12, user_clicks=clicks if mode == "counts" else None)
            hits += len(next_day & set(ids))
        recall[mode] = hits / 4
    assert recall == {"shares": 0.25, "counts": 1.0}


@pytest.mark.parametrize("clicks", [None, 0.0, math.nan, -3.0])
def test_without_a_count_the_lift_is_the_shares(tmp_path, clicks: float | None) -> None:  # noqa: ANN001
    index = _index(tmp_path)
    assert index.affinity_items(HEAVY, 15, user_clicks=clicks) == index.affinity_items(HEAVY, 15)
    # a user without shares: the catalogue by quality, whatever the count
    assert index.affinity_items(None, 5, user_clicks=clicks) == index.affinity_items(None, 5, user_clicks=7.0)


def test_retrieve_passes_the_count_to_the_feeds_affinity_source_only(tmp_path) -> None:  # noqa: ANN001
    index = _index(tmp_path)
    cfg = RecallSettings(affinity_share=0.5)
    ids, sources = index.retrieve("u1", ONE_CLICK, 20, cfg=cfg, user_clicks=1.0)
    assert ids[:10] == index.affinity_items(ONE_CLICK, 10, user_clicks=1.0)
    assert {sources[i] for i in ids[:10]} == {"affinity"}
    assert ids != index.retrieve("u1", ONE_CLICK, 20, cfg=cfg)[0]
    # deterministic: the same request twice, and on an index rebuilt from the same items
    assert ids == index.retrieve("u1", ONE_CLICK, 20, cfg=cfg, user_clicks=1.0)[0]
    assert ids == _index(tmp_path).retrieve("u1", ONE_CLICK, 20, cfg=cfg, user_clicks=1.0)[0]
    # a search has no affinity source: the count changes nothing there
    searched = index.retrieve("u1", ONE_CLICK, 20, query="red lamp", cfg=cfg, user_clicks=1.0)
    assert searched == index.retrieve("u1", ONE_CLICK, 20, query="red lamp", cfg=cfg)


def test_the_count_aware_lift_matches_its_formula() -> None:
    # two categories, equal quality everywhere but one item per category: the order follows the lift alone
    index = RetrievalIndex(
        row_ids=np.array(["a", "b"], dtype=object),
        row_category=np.array([0, 1], dtype=np.int64),
        quality=np.array([0.0, 0.2]),
        catalogue_shares=np.array([0.5, 0.5]),
    )
    # 3 clicks of 4 in category 0: lifts (3 + 2.5) / (9 x 0.5) = 1.22 and (1 + 2.5) / 4.5 = 0.78; scores
    # 0.6 x log 1.22 = 0.12 vs 0.2 + 0.6 x log 0.78 = 0.05: "a" leads
    assert index.affinity_items([0.75, 0.25], 2, user_clicks=4.0) == ["a", "b"]
    # half a click, all in category 0: lifts 3 / 2.75 and 2.5 / 2.75; 0.05 vs 0.14: "b" leads; by shares alone the
    # same user is lifted as if certain, (1 + 0.15) / 0.65 vs 0.15 / 0.65: 0.29 vs -0.53, "a" leads
    assert index.affinity_items([1.0, 0.0], 2, user_clicks=0.5) == ["b", "a"]
    assert index.affinity_items([1.0, 0.0], 2) == ["a", "b"]
