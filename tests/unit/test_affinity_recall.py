"""The feed's affinity source (issue 16): the catalogue's best items by quality x the user's category lift."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serving.candidates import RetrievalIndex
from serving.item_cache import SELLER_COLUMN, ItemCache
from shoprank.ranking_features import ITEM_FEATURES
from shoprank.settings import RecallSettings


def _index(tmp_path) -> RetrievalIndex:  # noqa: ANN001
    """40 items in 4 categories (item k in category k % 4); within a category the higher k, the more exposure and
    the better the click rate."""
    k = np.arange(40)
    frame = pd.DataFrame({"item_id": [f"i{j:03d}" for j in k], "feature_ts": pd.Timestamp("2026-01-07")})
    frame[SELLER_COLUMN] = "s1"
    for name in ITEM_FEATURES:
        frame[name] = 0.0
    frame["item_category_id"] = (k % 4).astype(float)
    frame["item_impressions_7d"] = 100.0 + 10 * k
    frame["item_clicks_7d"] = (100.0 + 10 * k) * (0.02 + 0.002 * k)
    frame["item_is_new"] = np.isin(k, [0, 4]).astype(float)  # two new items, too little known to score well
    return RetrievalIndex.build(ItemCache.from_frame(frame), tmp_path)  # no retrieval marts: those sources empty


def test_the_affinity_source_leads_the_feed_with_the_users_category_and_the_best_items(tmp_path) -> None:  # noqa: ANN001
    index = _index(tmp_path)
    shares = [0.0, 0.7, 0.3, 0.0]
    ids, sources = index.retrieve("u1", shares, 20, cfg=RecallSettings(affinity_share=0.5))
    assert len(ids) == 20 == len(set(ids))
    assert [sources[i] for i in ids[:10]] == ["affinity"] * 10 and "affinity" not in [sources[i] for i in ids[10:]]
    # the new items keep their share (0.1) right behind it, so the exploration rule still has them to boost; the
    # better by the affinity score first (both in category 0: i004 has the more exposure and the better rate)
    assert ids[10:12] == ["i004", "i000"] and {sources[i] for i in ids[10:12]} == {"new-item"}
    picked = [int(i[1:]) for i in ids[:10]]
    # the favourite category's best items lead; within a category a better item always comes first
    assert picked[0] == 37 and picked[0] % 4 == 1
    for c in range(4):
        in_c = [p for p in picked if p % 4 == c]
        assert in_c == sorted(in_c, reverse=True)
    # a category the user never clicked only gets in above one they did when its items are much better
    assert sum(p % 4 == 1 for p in picked) > sum(p % 4 == 3 for p in picked)
    assert index.affinity_items(shares, 10) == ids[:10]


def test_on_a_search_the_affinity_source_stays_out_and_without_shares_it_goes_by_quality(tmp_path) -> None:  # noqa: ANN001
    index = _index(tmp_path)
    cfg = RecallSettings(affinity_share=0.9)
    # a user without shares: the catalogue by quality alone (here: the higher k, the better), every category
    best = [f"i{j:03d}" for j in range(39, 34, -1)]
    assert index.affinity_items(None, 5) == index.affinity_items([0.0, 0.0, 0.0, 0.0], 5) == best
    cold, cold_sources = index.retrieve("stranger", None, 20, cfg=cfg)
    assert len(cold) == 20 and cold[:5] == best and cold_sources[best[0]] == "affinity"
    searched, search_sources = index.retrieve("u1", [0.0, 1.0, 0.0, 0.0], 20, query="red lamp", cfg=cfg)
    assert len(searched) == 20 and "affinity" not in search_sources.values()
    off, off_sources = index.retrieve("u1", [0.0, 1.0, 0.0, 0.0], 20, cfg=RecallSettings(affinity_share=0.0))
    assert "affinity" not in off_sources.values()


def test_affinity_ties_go_by_item_id_whatever_the_row_order() -> None:
    # rows deliberately out of id order, ids of unequal length; three items score 1, three 0
    ids = np.array(["i10", "i2", "i001", "i3", "j", "i20"], dtype=object)
    index = RetrievalIndex(
        row_ids=ids,
        row_category=np.zeros(len(ids), dtype=np.int64),
        quality=np.array([0.0, 0.0, 1.0, 0.0, 1.0, 1.0]),
        catalogue_shares=np.array([1.0]),
    )
    assert index.affinity_items([1.0], 3) == ["i001", "i20", "j"]
    assert index.affinity_items([1.0], 6) == ["i001", "i20", "j", "i10", "i2", "i3"]
