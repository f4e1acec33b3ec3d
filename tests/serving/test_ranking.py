"""Unit tests of the pure ranking functions (no BentoML, no Feast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serving.ranking import build_feature_frame, dedupe, is_unknown_user
from serving.retrieval import PopularityIndex
from shoprank.ranking_features import ITEM_FEATURES, model_feature_columns, model_matrix, stored_user_features

N_CAT = 4


class SumModel:
    """Scores a row by item_ctr_7d (column position from the contract), like a one-feature model."""

    def __init__(self, column: str = "item_ctr_7d") -> None:
        self.index = model_feature_columns().index(column)

    def predict(self, X: np.ndarray) -> np.ndarray:
        assert X.dtype == np.float32
        return np.nan_to_num(X[:, self.index], nan=-1.0)


def user(**overrides: float) -> dict[str, float]:
    values = {name: 1.0 for name in stored_user_features(N_CAT)}
    values.update({"user_is_cold_start": 0, "user_avg_click_price_30d": 10.0, "user_cat_share_02": 0.7})
    values.update(overrides)
    return values


def items(ids: list[str], ctr: list[float]) -> pd.DataFrame:
    frame = pd.DataFrame({name: 1.0 for name in ITEM_FEATURES}, index=pd.Index(ids, name="item_id"))
    frame["item_ctr_7d"] = ctr
    frame["item_category_id"] = 2
    frame["item_price"] = 20.0
    frame["item_seller_id"] = "s1"  # stored but not a model feature: ignored
    return frame


def test_dedupe_keeps_first_seen_order() -> None:
    assert dedupe(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]


def test_feature_frame_has_model_columns_in_candidate_order() -> None:
    frame = build_feature_frame(user(), items(["x", "y"], [0.1, 0.2]), ["y", "x"], N_CAT)
    assert list(frame["item_id"]) == ["y", "x"]
    assert set(model_feature_columns()) <= set(frame.columns)
    assert frame["user_category_affinity"].tolist() == [0.7, 0.7]
    assert frame["price_to_user_avg"].tolist() == [2.0, 2.0]
    assert (frame["user_is_cold_start"] == 0).all()


def test_unknown_item_gets_nan_features_not_an_error() -> None:
    frame = build_feature_frame(user(), items(["x"], [0.1]), ["x", "ghost"], N_CAT)
    ghost = frame.set_index("item_id").loc["ghost"]
    assert all(np.isnan(ghost[name]) for name in ITEM_FEATURES)
    assert ghost["user_category_affinity"] == 0.0
    scores = SumModel().predict(model_matrix(frame, model_feature_columns()))
    assert scores.tolist() == pytest.approx([0.1, -1.0])


@pytest.mark.parametrize("features", [None, {}, {name: None for name in stored_user_features(N_CAT)}])
def test_unknown_user_is_cold_start(features: dict | None) -> None:
    assert is_unknown_user(features, N_CAT)
    frame = build_feature_frame(features, items(["x", "y"], [0.3, 0.2]), ["x", "y"], N_CAT)
    assert (frame["user_is_cold_start"] == 1).all()
    assert frame["user_clicks_30d"].isna().all()
    assert (frame["user_category_affinity"] == 0.0).all()
    assert frame["price_to_user_avg"].isna().all()
    scores = SumModel().predict(model_matrix(frame, model_feature_columns()))
    assert scores.tolist() == pytest.approx([0.3, 0.2])


def test_known_user_with_some_missing_values_is_not_cold() -> None:
    features = user(user_ctr_30d=None)
    assert not is_unknown_user(features, N_CAT)
    frame = build_feature_frame(features, items(["x"], [0.3]), ["x"], N_CAT)
    assert frame["user_is_cold_start"].tolist() == [0]
    assert frame["user_ctr_30d"].isna().all()


def test_feature_frame_of_no_candidates_is_empty() -> None:
    frame = build_feature_frame(user(), items([], []), [], N_CAT)
    assert model_matrix(frame, model_feature_columns()).shape == (0, len(model_feature_columns()))


def test_popularity_index_uses_latest_snapshot_and_breaks_ties_by_id() -> None:
    t0, t1 = pd.Timestamp("2026-01-01", tz="UTC"), pd.Timestamp("2026-01-02", tz="UTC")
    mart = pd.DataFrame(
        {
            "item_id": ["a", "a", "b", "c", "d"],
            "feature_ts": [t1, t0, t1, t1, t1],
            "item_clicks_7d": [1, 100, 5, 5, None],
        }
    )
    index = PopularityIndex.from_frame(mart)
    assert index.top(10) == ["b", "c", "a", "d"]
    assert index.top(2) == ["b", "c"]
    assert index.scores(["a", "zzz"]).tolist() == [1.0, 0.0]
    assert PopularityIndex.from_frame(mart.iloc[:0]).top(3) == []


# ---- the fast path, the item cache, retrieval, the request log ------------------------------------------------
def test_fast_matrix_equals_the_training_path() -> None:
    from serving.item_cache import ItemCache
    from serving.ranking import fast_matrix, user_vector
    from shoprank.ranking_features import model_matrix

    ids = ["a", "b", "c"]
    stored = items(ids, [0.1, 0.2, 0.3]).reset_index()
    stored.loc[1, "item_category_id"] = 99  # out of range: affinity 0
    stored["feature_ts"] = pd.Timestamp("2026-01-01", tz="UTC")
    cache = ItemCache.from_frame(stored)
    candidates = ["c", "unknown", "a", "b"]
    columns = model_feature_columns()
    for user_features in (user(user_avg_click_price_30d=0.0), user(), None):
        cold, values = user_vector(user_features, N_CAT)
        fast = fast_matrix(values, cache.matrix[cache.rows(candidates)], columns, N_CAT)
        frame = build_feature_frame(user_features, cache.frame(candidates), candidates, N_CAT)
        slow = model_matrix(frame, columns)
        np.testing.assert_array_equal(np.isnan(fast), np.isnan(slow))
        np.testing.assert_allclose(np.nan_to_num(fast), np.nan_to_num(slow), rtol=1e-6)
        assert cold == (user_features is None)


def _v3_world(ids: list[str]):  # noqa: ANN202
    """An item cache with item_features, an item window view and a seller view, and a v3-style user read."""
    from serving.item_cache import ItemCache, ItemView
    from shoprank.ranking_features import (
        ITEM_WINDOW_FEATURES,
        SELLER_FEATURES,
        USER_CATEGORY_FEATURES,
        USER_WINDOW_FEATURES,
    )

    t0, t1 = pd.Timestamp("2026-01-01", tz="UTC"), pd.Timestamp("2026-01-02", tz="UTC")
    stored = items(ids, [0.1, 0.2, 0.3, 0.4]).reset_index()
    stored["item_category_id"] = [0, 2, 99, 3]  # 99: out of range (no category features)
    stored["item_price"] = [5.0, 20.0, 40.0, np.nan]
    stored["item_seller_id"] = ["s1", "s1", "s2", "s9"]  # s9: not in the seller view
    stored["feature_ts"] = t1
    window = pd.DataFrame({"item_id": ids[:3] * 2, "feature_ts": [t0] * 3 + [t1] * 3})  # ids[3] has no row
    for j, name in enumerate(ITEM_WINDOW_FEATURES):
        window[name] = np.arange(6, dtype=float) + j
    sellers = pd.DataFrame({"seller_id": ["s1", "s2"], "feature_ts": [t1, t1]})
    for j, name in enumerate(SELLER_FEATURES):
        sellers[name] = [1.0 + j, 2.0 + j]
    views = [
        (ItemView("item_window_features", Path("iw.parquet"), "item_id", tuple(ITEM_WINDOW_FEATURES)), window),
        (ItemView("seller_features", Path("s.parquet"), "seller_id", tuple(SELLER_FEATURES)), sellers),
    ]
    cache = ItemCache.from_frame(stored, views=views)
    read = user(user_avg_click_price_30d=10.0, user_cat_share_03=0.9)
    read.update({name: float(j) for j, name in enumerate(USER_WINDOW_FEATURES)})
    read["user_days_since_active"] = None
    for j, name in enumerate(USER_CATEGORY_FEATURES):  # category 1: no row (an absent pair)
        read[name] = (0.2 + j, None, 0.1 + j, 0.3 + j)
    read["uc_clicks_30d"] = (3, None, 1, 7)
    return cache, read


def test_item_cache_joins_item_and_seller_views_on_the_latest_snapshot() -> None:
    from shoprank.ranking_features import ITEM_WINDOW_FEATURES

    ids = ["a", "b", "c", "d"]
    cache, _ = _v3_world(ids)
    assert cache.columns[: len(ITEM_FEATURES)] == tuple(ITEM_FEATURES)
    rows = cache.rows(["c", "d", "zzz"])
    first = ITEM_WINDOW_FEATURES[0]
    assert cache.column(first, rows)[0] == 5.0  # the latest of c's two snapshots (3.0 then 5.0)
    assert np.isnan(cache.column(first, rows)[1:]).all()  # no window row; unknown item
    assert cache.column("seller_items", cache.rows(["a", "c", "d"]))[:2].tolist() == [3.0, 4.0]
    assert np.isnan(cache.column("seller_items", cache.rows(["d"]))).all()  # seller without a row


@pytest.mark.parametrize("service", ["ranker_v2", "ranker_v3"])
@pytest.mark.parametrize("surface", ["feed", "search"])
def test_fast_matrix_equals_the_training_path_for_every_service(service: str, surface: str) -> None:
    from serving.ranking import category_table, fast_matrix, query_match_columns, user_vector
    from shoprank.ranking_features import USER_CATEGORY_FEATURES, USER_WINDOW_FEATURES, feature_columns_for, title_words

    ids = ["a", "b", "c", "d"]
    cache, read = _v3_world(ids)
    titles = pd.DataFrame({"item_id": ids, "title": ["eco rug", "Pro Kite", "kite kite", None]})
    cache = cache.with_titles(titles)
    columns = feature_columns_for(service, N_CAT)
    candidates = ["d", "unknown", "a", "c", "b"]
    rows = cache.rows(candidates)
    query = "pro kite" if surface == "search" else None
    # what the reader returns for a user the store does not know: every value None
    unknown = {name: (None,) * N_CAT if isinstance(v, tuple) else None for name, v in read.items()}
    for user_features in (read, unknown):
        cold, values = user_vector(user_features, N_CAT, USER_WINDOW_FEATURES)
        table = category_table(user_features, USER_CATEGORY_FEATURES, N_CAT, cold)
        per_row = query_match_columns(columns, surface, query, cache.title_index, rows)
        fast = fast_matrix(values, cache.matrix[rows], columns, N_CAT, cache.column_index, table, per_row)
        # the reference: pandas, the training functions, the query match computed like the mart
        expected_match = [np.nan] * 5
        if query and service == "ranker_v3":
            expected_match = [0.0, 0.0, 0.0, 0.5, 1.0]
        request_columns = {"query_title_match": expected_match} if service == "ranker_v3" else {}
        frame = build_feature_frame(user_features, cache.frame(candidates), candidates, N_CAT, request_columns)
        slow = model_matrix(frame, columns)
        np.testing.assert_array_equal(np.isnan(fast), np.isnan(slow))
        np.testing.assert_allclose(np.nan_to_num(fast), np.nan_to_num(slow), rtol=1e-6)
        if service == "ranker_v3" and not cold:
            uc = fast[:, columns.index("uc_clicks_30d")]
            # d: category 3 -> 7; a: category 0 -> 3; b: category 2 -> 1; unknown item, c (category 99): absent -> 0
            assert uc.tolist() == [7.0, 0.0, 3.0, 0.0, 1.0]
    assert title_words("Pro Kite") == {"pro", "kite"}


def test_absent_user_category_pairs_read_as_zero_counts_for_known_users_only() -> None:
    from serving.ranking import category_table

    table = category_table(
        {"uc_clicks_30d": (None, 2), "uc_ctr_30d": (None, 0.5)}, ["uc_clicks_30d", "uc_ctr_30d"], 3, False
    )
    # category 2 (which the read did not even return) and the last entry (items of no known category): absent
    assert table["uc_clicks_30d"].tolist() == [0.0, 2.0, 0.0, 0.0]
    assert np.isnan(table["uc_ctr_30d"][[0, 2, 3]]).all() and table["uc_ctr_30d"][1] == 0.5
    cold = category_table(None, ["uc_clicks_30d"], 3, True)
    assert np.isnan(cold["uc_clicks_30d"]).all()


def test_a_model_needing_unknown_columns_is_not_servable() -> None:
    from serving.ranking import servable_columns_missing
    from shoprank.ranking_features import feature_columns_for

    columns = feature_columns_for("ranker_v3", N_CAT)
    user_names = stored_user_features(N_CAT)
    assert "uc_ctr_30d" in servable_columns_missing(columns, ITEM_FEATURES, user_names, [])
    assert servable_columns_missing(model_feature_columns(), ITEM_FEATURES, user_names, []) == []


def test_item_cache_keeps_the_latest_snapshot_and_flags_new_sellers() -> None:
    from serving.item_cache import ItemCache

    frame = pd.DataFrame(
        {
            "item_id": ["a", "a", "b", "c"],
            "feature_ts": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-02", "2026-01-02"], utc=True),
            "item_seller_id": ["old", "old", "old", "young"],
            **{name: [1.0, 2.0, 3.0, 4.0] for name in ITEM_FEATURES},
        }
    )
    frame["item_age_days"] = [30.0, 31.0, 2.0, 3.0]
    cache = ItemCache.from_frame(frame, new_seller_days=14)
    rows = cache.rows(["a", "zzz", "c"])
    assert list(cache.column("item_ctr_7d", rows)[[0, 2]]) == [2.0, 4.0] and np.isnan(
        cache.column("item_ctr_7d", rows)[1]
    )
    assert list(cache.seller_is_new[rows]) == [False, False, True]
    assert list(cache.seller[rows]) == ["old", "", "young"]


def test_retrieval_merges_sources_without_duplicates(serving_world) -> None:  # noqa: ANN001
    from serving.candidates import RetrievalIndex
    from serving.item_cache import ItemCache

    marts = serving_world.settings.marts_export_dir
    index = RetrievalIndex.build(ItemCache.from_marts(marts), marts)
    from shoprank.settings import RecallSettings

    # the sources before issue 16's affinity source (tests/unit/test_affinity_recall.py has it)
    ids, sources = index.retrieve("u000000", [1.0] + [0.0] * 11, 60, cfg=RecallSettings(affinity_share=0.0))
    assert len(ids) == len(set(ids)) == 60
    # co-visitation neighbours of the user's recent items, interleaved rank by rank, come first
    assert ids[:5] == ["i000100", "i000103", "i000101", "i000104", "i000102"]
    assert {sources[i] for i in ids[:5]} == {"covisitation"}
    assert {"category", "trending", "new-item", "popular"} <= set(sources.values())
    cold_ids, cold_sources = index.retrieve("stranger", None, 30)
    assert "covisitation" not in cold_sources.values() and len(cold_ids) == 30


def test_request_log_writes_contract_partitions(tmp_path) -> None:  # noqa: ANN001
    from datetime import UTC, datetime

    from serving.request_log import RequestLogger
    from shoprank.raw_contract import SCHEMAS

    logger = RequestLogger(tmp_path, buffer_rows=1000, flush_seconds=3600)
    ts = datetime(2026, 1, 8, 12, tzinfo=UTC)
    impressions = [
        {
            "user_id": "u1",
            "item_id": f"i{p}",
            "request_id": "r1",
            "position": p,
            "surface": "feed",
            "query": None,
            "price": 9.5,
            "event_ts": ts,
        }
        for p in (1, 2)
    ]
    logger.log({"request_id": "r1", "user_id": "u1", "request_ts": ts}, impressions)
    assert not list(tmp_path.rglob("*.parquet"))  # buffered
    logger.close()
    (events_file,) = (tmp_path / "events" / "dt=2026-01-08").glob("part-*.parquet")
    events = pd.read_parquet(events_file)
    assert list(events.columns) == SCHEMAS["events"].names
    assert list(events["position"]) == [1, 2] and set(events["event_type"]) == {"impression"}
    assert events["event_id"].is_unique
    assert len(list((tmp_path / "requests" / "dt=2026-01-08").glob("part-*.parquet"))) == 1
