"""Point-in-time correctness, online/offline consistency and the registry, on the daily DAG's real run."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprank.mart_files import read_mart
from shoprank.ranking_features import feature_columns_for
from shoprank.settings import Settings

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def training_frame(daily_run: Settings) -> pd.DataFrame:
    from training.dataset import build_training_frame

    return build_training_frame(daily_run, daily_run.default_run_date, daily_run.training.feature_service)


def _counts_before(examples: pd.DataFrame, keys: list[str], window_days: int) -> pd.DataFrame:
    """Impressions per ``keys`` and day D over [D - window_days, D), straight from the examples (no mart)."""
    daily = examples.groupby([*keys, "dt"]).size().rename("n").reset_index()
    rows = []
    for day in sorted(examples["dt"].unique()):
        window = daily[(daily["dt"] < day) & (daily["dt"] >= day - timedelta(days=window_days))]
        rows.append(window.groupby(keys)["n"].sum().rename("expected").reset_index().assign(dt=day))
    return pd.concat(rows, ignore_index=True)


# (join keys, feature, window days): impression counts of every stored window the feature services read.
WINDOW_COUNTS = [
    (["user_id"], "user_impressions_30d", 30),
    (["item_id"], "item_impressions_7d", 7),
    # ranker_v3's window marts (checked when the trained service reads them)
    (["user_id"], "user_impressions_1d", 1),
    (["item_id"], "item_impressions_1d", 1),
    (["item_id"], "item_impressions_30d", 30),
    (["user_id", "item_category_id"], "uc_impressions_30d", 30),
]


def test_training_features_come_only_from_days_before_the_impression(daily_run: Settings, training_frame):
    from training.dataset import load_examples

    examples = load_examples(daily_run, daily_run.default_run_date)
    assert len(training_frame) == len(examples)
    categories = training_frame.drop_duplicates("item_id").set_index("item_id")["item_category_id"]
    examples["item_category_id"] = examples["item_id"].map(categories)
    checked = []
    for keys, feature, window in WINDOW_COUNTS:
        if feature not in training_frame.columns:
            continue
        expected = _counts_before(examples, keys, window)
        joined = training_frame[[*keys, "dt", feature]].merge(expected, on=[*keys, "dt"], how="left")
        joined["expected"] = joined["expected"].fillna(0)
        # Same-day impressions (including the row's own) would make the feature larger: equality proves no leak.
        mismatched = joined[joined[feature].fillna(0) != joined["expected"]]
        assert mismatched.empty, (feature, mismatched.head())
        checked.append(feature)
    assert len(checked) == len(WINDOW_COUNTS) or daily_run.training.feature_service != "ranker_v3", checked
    # The first day has no history at all: every user is cold and every count zero there.
    first_day = training_frame[training_frame["dt"] == training_frame["dt"].min()]
    assert (first_day["user_impressions_30d"].fillna(0) == 0).all()
    assert (first_day["user_is_cold_start"] == 1).all()


def test_training_rows_carry_the_snapshot_stamped_at_the_start_of_their_day(daily_run: Settings, training_frame):
    users = read_mart(daily_run.marts_export_dir, "user_features")
    users["dt"] = users["feature_ts"].dt.date
    sample = training_frame.sample(300, random_state=1)[["user_id", "dt", "user_ctr_30d"]]
    joined = sample.merge(users[["user_id", "dt", "user_ctr_30d"]], on=["user_id", "dt"], suffixes=("", "_mart"))
    assert len(joined) == len(sample)
    np.testing.assert_allclose(joined["user_ctr_30d"], joined["user_ctr_30d_mart"])


def test_no_holdout_request_or_day_is_in_training(daily_run: Settings):
    from training.train import HOLDOUT_FILE, candidate_dir

    out = candidate_dir(daily_run, daily_run.default_run_date)
    card = json.loads((out / "candidate.json").read_text())
    holdout = pd.read_parquet(out / HOLDOUT_FILE)
    assert set(holdout["dt"].astype(str)) == {str(daily_run.default_run_date)}
    assert card["train_window"][1] < card["holdout_window"][0]
    assert card["validation_window"][1] < card["holdout_window"][0]
    examples = read_mart(daily_run.marts_export_dir, "training_examples")
    examples["dt"] = pd.to_datetime(examples["dt"]).dt.date.astype(str)
    trained_on = examples[(examples["dt"] >= card["train_window"][0]) & (examples["dt"] <= card["train_window"][1])]
    assert not set(trained_on["request_id"]) & set(holdout["request_id"])
    assert card["train_rows"] == len(trained_on)


def test_online_values_equal_historical_retrieval_at_the_same_moment(daily_run: Settings):
    from shoprank.feature_store import get_feature_store

    store = get_feature_store(daily_run)
    service = store.get_feature_service(daily_run.training.feature_service)
    users = read_mart(daily_run.marts_export_dir, "user_features", ["user_id", "feature_ts"])
    items = pd.read_parquet(daily_run.marts_export_dir / "item_features.parquet", columns=["item_id", "feature_ts"])
    latest = users["feature_ts"].max()
    rng = np.random.default_rng(5)
    user_ids = rng.choice(users.loc[users["feature_ts"] == latest, "user_id"].unique(), 25, replace=False)
    item_ids = rng.choice(items.loc[items["feature_ts"] == latest, "item_id"].unique(), 25, replace=False)
    # category_id: the join key of the user x category view (ranker_v3), in training the item's category
    entities = pd.DataFrame({"user_id": user_ids, "item_id": item_ids, "category_id": rng.integers(0, 3, 25)})

    online = store.get_online_features(features=service, entity_rows=entities.to_dict("records")).to_df()
    moment = latest + pd.Timedelta(hours=12)  # after the newest snapshot, as serving sees it now
    offline = store.get_historical_features(entity_df=entities.assign(event_timestamp=moment), features=service)
    offline_df = offline.to_df()
    keys = ["user_id", "item_id", "category_id"]
    merged = online.merge(offline_df, on=keys, suffixes=("_online", "_offline"))
    assert len(merged) == len(entities)
    stored = [c for c in online.columns if c not in keys]
    assert len(stored) >= 20
    for column in stored:
        on, off = merged[f"{column}_online"], merged[f"{column}_offline"]
        if pd.api.types.is_numeric_dtype(on) and pd.api.types.is_numeric_dtype(off):
            np.testing.assert_allclose(on.astype(float), off.astype(float), rtol=1e-9, equal_nan=True, err_msg=column)
        else:
            assert on.astype(str).tolist() == off.astype(str).tolist(), column


def test_registered_model_is_the_champion_with_its_card_and_report(daily_run: Settings):
    import bentoml

    from training.registry import champion_tag, read_registry

    (model,) = bentoml.models.list(daily_run.training.model_name)
    card = model.info.metadata
    assert champion_tag(daily_run) == str(model.tag)
    assert [e["action"] for e in read_registry(daily_run)["events"]] == ["promote"]
    assert card["feature_columns"] == feature_columns_for(card["feature_service"], card["n_categories"])
    assert card["train_rows"] > 0 and card["code_version"] != ""
    assert card["params"]["ranker"]["early_stopped"] is True
    report = Path(card["report_path"])
    assert report.exists() and report.read_text().count("data:image/png;base64,") == 4
    metrics, k = card["metrics"], daily_run.training.ndcg_k
    for name in ("model", "popularity", "random"):
        assert all(f"{name}_ndcg@{cut}" in metrics for cut in (5, 10, 20))
        assert f"{name}_map@{k}" in metrics and f"{name}_auc_click" in metrics
    # The oracle ranks by the simulator's true click probability: no model should beat it by much.
    assert metrics[f"oracle_ndcg@{k}"] > metrics[f"popularity_ndcg@{k}"]
    assert 0 < metrics[f"model_oracle_ratio@{k}"] < 1.1
    assert metrics["ctr_auc_click"] > 0.6 and metrics["ctr_ece"] < 0.05


def test_serving_reads_the_v3_user_side_as_training_joins_it(daily_run: Settings):
    """Online == offline at one moment for ranker_v3's user side, through serving's reader (one online call for the
    user views and every category of the user x category view) against the point-in-time join plus the same fill
    training applies to absent pairs."""
    from serving.online_features import OnlineFeatureReader
    from serving.ranking import category_table, user_vector
    from shoprank.feature_store import get_feature_store
    from shoprank.ranking_features import USER_CATEGORY_FEATURES, fill_absent_user_category

    store = get_feature_store(daily_run)
    n_categories = daily_run.simulator.categories
    reader = OnlineFeatureReader(store, "ranker_v3", n_categories)
    users = read_mart(daily_run.marts_export_dir, "user_features", ["user_id", "feature_ts"])
    latest = users["feature_ts"].max()
    user_ids = np.random.default_rng(8).choice(users.loc[users["feature_ts"] == latest, "user_id"].unique(), 8)
    entities = pd.DataFrame([{"user_id": u, "category_id": c} for u in user_ids for c in range(n_categories)]).assign(
        event_timestamp=latest + pd.Timedelta(hours=12)
    )
    refs = reader.user_refs + reader.category_refs
    offline = fill_absent_user_category(store.get_historical_features(entity_df=entities, features=refs).to_df())
    offline = offline.set_index(["user_id", "category_id"])
    present = 0
    for user_id in user_ids:
        read = reader.user_features(str(user_id))
        cold, scalars = user_vector(read, n_categories, reader.user_feature_names)
        table = category_table(read, reader.category_feature_names, n_categories, cold)
        assert not cold
        rows = offline.loc[str(user_id)].sort_index()
        for name in reader.user_feature_names:
            np.testing.assert_allclose(scalars[name], float(rows[name].iloc[0]), equal_nan=True, err_msg=name)
        for name in USER_CATEGORY_FEATURES:
            np.testing.assert_allclose(table[name][:-1], rows[name].astype(float), equal_nan=True, err_msg=name)
        present += int(rows["uc_impressions_30d"].gt(0).sum())
    assert present > 0  # some pairs have rows, some are absent (filled): both paths were compared


def test_query_match_in_process_equals_the_marts_sql(daily_run: Settings):
    from shoprank.ranking_features import query_title_match, title_words

    mart = read_mart(daily_run.marts_export_dir, "query_item_match")
    assert len(mart) > 0 and mart["query_title_match"].gt(0).any()
    computed = [
        query_title_match(query, [title_words(title)])[0]
        for query, title in zip(mart["query"], mart["item_title"], strict=True)
    ]
    np.testing.assert_allclose(computed, mart["query_title_match"], rtol=1e-12)
