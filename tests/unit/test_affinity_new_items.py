"""The feed's new-item share picks its new items by the affinity source's score (issue 16): the new items of the
user's categories, not the catalogue's best-CTR new items for everyone."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serving.candidates import RetrievalIndex
from serving.item_cache import SELLER_COLUMN, ItemCache
from shoprank.ranking_features import ITEM_FEATURES
from shoprank.settings import RecallSettings

CFG = RecallSettings(affinity_share=0.5)  # n = 20: 10 affinity, then 2 new items
IN_TWO = [0.0, 0.0, 1.0, 0.0]  # all the user's clicks in category 2


def _index(tmp_path, star: bool = False) -> RetrievalIndex:  # noqa: ANN001
    """40 established items in 4 categories (item k in category k % 4, the higher k the better) and 8 new ones
    (n0..n7, category j % 4) with little exposure; the new items of category 0 have the best click rates. With
    ``star`` the new n6 (category 2) has the exposure and rate of the best established items."""
    k = np.arange(40)
    old = pd.DataFrame({"item_id": [f"i{j:03d}" for j in k], "category": k % 4})
    old["impressions"] = 100.0 + 10 * k
    old["clicks"] = old["impressions"] * (0.02 + 0.002 * k)
    j = np.arange(8)
    new = pd.DataFrame({"item_id": [f"n{i}" for i in j], "category": j % 4})
    new["impressions"] = 30.0 + j
    new["clicks"] = np.where(j % 4 == 0, 6.0, 2.0) + j / 10
    if star:
        new.loc[6, ["impressions", "clicks"]] = [600.0, 60.0]
    frame = pd.concat([old.assign(is_new=0.0), new.assign(is_new=1.0)], ignore_index=True)
    out = pd.DataFrame({"item_id": frame["item_id"], "feature_ts": pd.Timestamp("2026-01-07")})
    out[SELLER_COLUMN] = "s1"
    for name in ITEM_FEATURES:
        out[name] = 0.0
    out["item_category_id"] = frame["category"].astype(float)
    out["item_impressions_7d"] = frame["impressions"]
    out["item_clicks_7d"] = frame["clicks"]
    out["item_ctr_7d"] = frame["clicks"] / frame["impressions"]
    out["item_is_new"] = frame["is_new"]
    return RetrievalIndex.build(ItemCache.from_frame(out), tmp_path)  # no retrieval marts: those sources empty


def _new_items(ids: list[str], sources: dict[str, str]) -> list[str]:
    """The new-item share right behind the affinity source's 10 (the later new-item source refills after them)."""
    assert {sources[i] for i in ids[10:12]} == {"new-item"}
    return ids[10:12]


def test_a_users_new_items_are_those_of_their_category(tmp_path) -> None:  # noqa: ANN001
    index = _index(tmp_path)
    # the catalogue's order of new items (best CTR first, the same for every user) starts with category 0's
    assert index.new_items[:2] == ["n0", "n4"]
    next_day = {"n2", "n6"}  # the user's next clicks: the new items of their category
    ids, sources = index.retrieve("u1", IN_TWO, 20, cfg=CFG, user_clicks=12.0)
    picked = _new_items(ids, sources)
    assert picked == ["n6", "n2"] == index.affinity_new_items(IN_TWO, 2, user_clicks=12.0)
    assert len(next_day & set(ids)) == 2 and not next_day & set(index.new_items[:2])
    # a user without shares gets the new items best by quality alone (exposure x rate): category 0's, n4 first
    cold, cold_sources = index.retrieve("stranger", None, 20, cfg=CFG)
    assert _new_items(cold, cold_sources) == ["n4", "n0"]
    # deterministic: the same request twice and on an index rebuilt from the same items
    assert ids == index.retrieve("u1", IN_TWO, 20, cfg=CFG, user_clicks=12.0)[0]
    assert ids == _index(tmp_path).retrieve("u1", IN_TWO, 20, cfg=CFG, user_clicks=12.0)[0]


def test_the_share_stays_whole_when_the_affinity_source_took_a_new_item(tmp_path) -> None:  # noqa: ANN001
    index = _index(tmp_path, star=True)
    ids, sources = index.retrieve("u1", IN_TWO, 20, cfg=CFG, user_clicks=12.0)
    assert sources["n6"] == "affinity" and ids.index("n6") < 10
    # still two more new items, the next best of the user's category first
    assert _new_items(ids, sources) == ["n2", "n4"]


def test_a_search_keeps_the_catalogues_order_of_new_items(tmp_path) -> None:  # noqa: ANN001
    index = _index(tmp_path)
    ids, sources = index.retrieve("u1", IN_TWO, 20, query="red lamp", cfg=CFG, user_clicks=12.0)
    assert "affinity" not in sources.values()
    assert [i for i in ids if sources[i] == "new-item"] == index.new_items[:2]
