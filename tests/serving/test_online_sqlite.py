"""The user's online read straight from the SQLite store (serving/online_sqlite.py) answers what Feast's
``get_online_features`` answers: every value and event timestamp, for every user / user x category view of every
feature service, for an existing user, the stale user x category pair, a cold user (a cold snapshot and a pushed
session row, no category rows) and a user the store has never seen."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from .conftest import STALE_PAIR, ServingWorld

COLD_USER = "u-direct-read-cold"


def _write_row(store: Any, view_name: str, keys: dict[str, Any], values: dict[str, Any]) -> None:
    """One online row of ``view_name`` stamped now: ``values``, every other feature 0 (or "" for strings)."""
    view = store.get_feature_view(view_name)
    row: dict[str, Any] = {**keys, view.batch_source.timestamp_field: pd.Timestamp.now(tz="UTC")}
    for field in view.features:
        kind = str(field.dtype)
        default = "" if "String" in kind else 0.0 if "Float" in kind else 0
        row[field.name] = values.get(field.name, default)
    store.write_to_online_store(view_name, pd.DataFrame([row]), allow_registry_cache=True)


@pytest.fixture(scope="module")
def store_with_cold_user(serving_world: ServingWorld) -> Any:
    from shoprank.feature_store import get_feature_store
    from shoprank.session import STORED_COLUMN, pack_row

    store = get_feature_store(serving_world.settings)
    _write_row(store, "user_features", {"user_id": COLD_USER}, {"user_is_cold_start": 1})
    _write_row(store, "user_window_features", {"user_id": COLD_USER}, {})
    session = [v for v in store.list_feature_views() if v.stream_source is not None]
    assert session, "the repo has a pushed (session) view"
    for view in session:
        _write_row(store, view.name, {"user_id": COLD_USER}, {STORED_COLUMN: pack_row({"sess_clicks": 2})})
    return store


def test_the_direct_sqlite_read_equals_feasts_for_every_view_and_user(
    serving_world: ServingWorld, store_with_cold_user: Any
) -> None:
    from serving.online_features import OnlineFeatureReader
    from serving.online_sqlite import SqliteUserRead
    from shoprank.feature_contract import RANKERS

    store = store_with_cold_user
    n_categories = serving_world.settings.simulator.categories
    users = [serving_world.user_ids[0], STALE_PAIR[0], COLD_USER, "never-seen"]
    views_read: set[str] = set()
    for service in RANKERS:
        reader = OnlineFeatureReader(store, service, n_categories)
        assert isinstance(reader.direct, SqliteUserRead), service
        views_read |= {view.name for view, _ in reader.user_views + reader.category_views}
        feast = OnlineFeatureReader(store, service, n_categories)
        feast.direct = None
        for user in users:
            direct = reader.direct.read(user, n_categories)
            expected = reader.feast_columns(user)
            assert direct == expected, (service, user)
            assert reader.user_features(user) == feast.user_features(user), (service, user)
    # every user-keyed view the repo defines was compared, pushed and category views included
    user_keyed = {
        v.name for v in store.list_feature_views() if {c.name for c in v.entity_columns} <= {"user_id", "category_id"}
    }
    assert views_read == user_keyed
    assert {"user_category_features", "user_session_features"} <= views_read


def test_the_cases_the_comparison_covers(serving_world: ServingWorld, store_with_cold_user: Any) -> None:
    """The users above hold what the comparison must cover: values present, a stale pair read as None, a cold user
    with a session and no category rows, and an unknown user with nothing (no timestamps)."""
    from serving.online_features import OnlineFeatureReader

    n_categories = serving_world.settings.simulator.categories
    reader = OnlineFeatureReader(store_with_cold_user, "ranker_v4", n_categories)
    assert reader.direct is not None
    warm = reader.user_features(serving_world.user_ids[0])
    assert warm["user_impressions_30d"] is not None and any(v is not None for v in warm["uc_clicks_30d"])
    user, category = STALE_PAIR
    assert reader.user_features(user)["uc_clicks_30d"][category] is None
    stale = reader.direct.read(user, n_categories)["uc_clicks_30d"]
    assert stale[0][category] is not None  # the store holds the old row; the reader drops it by its timestamp
    cold = reader.user_features(COLD_USER)
    assert cold["user_is_cold_start"] == 1 and cold["sess_clicks"] == 2
    assert all(v is None for v in cold["uc_clicks_30d"])
    unknown = reader.direct.read("never-seen", n_categories)
    assert all(v == [None] * len(v) and set(t) == {0} for v, t in unknown.values())


def test_a_store_other_than_sqlite_is_read_through_feast(
    serving_world: ServingWorld, store_with_cold_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving.online_features import OnlineFeatureReader

    store = store_with_cold_user
    monkeypatch.setattr(store.config.online_store, "type", "redis")
    reader = OnlineFeatureReader(store, "ranker_v3", serving_world.settings.simulator.categories)
    assert reader.direct is None
