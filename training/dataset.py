"""Point-in-time training sets: training_examples joined to features through Feast historical retrieval."""

from __future__ import annotations

import logging
from datetime import date
from typing import TYPE_CHECKING

import pandas as pd

from shoprank.feature_store import get_feature_store, use_budgeted_offline_engine
from shoprank.mart_files import mart_exists, read_mart
from shoprank.ranking_features import CATEGORY_KEY, QUERY_FEATURES, add_derived_features, feature_columns_for
from shoprank.resources import within_budget
from shoprank.settings import Settings
from training.relevance_feature import QUERY_COLUMN, TITLE_COLUMN, add_relevance, reads_relevance
from training.session_dataset import add_session_features, retrieval_features

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)

EXAMPLE_COLUMNS = [
    "impression_id",
    "request_id",
    "user_id",
    "item_id",
    "event_ts",
    "relevance",
    "label_click",
    "label_purchase",
    "dt",
]


def load_examples(settings: Settings, run_date: date) -> pd.DataFrame:
    """Impressions up to and including run_date, as the training_examples mart exported them."""
    examples = read_mart(settings.marts_export_dir, "training_examples", EXAMPLE_COLUMNS)
    examples["dt"] = pd.to_datetime(examples["dt"]).dt.date
    examples = examples[examples["dt"] <= run_date]
    if examples.empty:
        raise ValueError(f"training_examples has no rows on or before {run_date}")
    return examples


# Join keys of feature views that are not the example's own (user_id, item_id), and the item_features column each
# is read from: an item's seller and category are fixed, so any snapshot of the catalogue gives them.
ITEM_KEYS = {"seller_id": "item_seller_id", CATEGORY_KEY: "item_category_id"}


def with_item_keys(settings: Settings, frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Add each item's ``keys`` (seller_id, category_id) from the item catalogue."""
    if not keys:
        return frame
    columns = [ITEM_KEYS[key] for key in keys]
    items = pd.read_parquet(settings.marts_export_dir / "item_features.parquet", columns=["item_id", *columns])
    items = items.drop_duplicates("item_id").rename(columns={v: k for k, v in ITEM_KEYS.items()})
    return frame.merge(items, on="item_id", how="left", validate="many_to_one")


def with_seller_ids(settings: Settings, frame: pd.DataFrame) -> pd.DataFrame:
    """Add each item's seller_id (the seller view's join key)."""
    return with_item_keys(settings, frame, ["seller_id"])


def service_item_keys(store: FeatureStore, feature_service: str) -> list[str]:
    """The ITEM_KEYS the service's feature views join on (on-demand views have no join keys of their own)."""
    from feast.errors import FeatureViewNotFoundException

    keys: set[str] = set()
    for projection in store.get_feature_service(feature_service).feature_view_projections:
        try:
            view = store.get_feature_view(projection.name)
        except FeatureViewNotFoundException:  # an on-demand view: computed from the other views' columns
            continue
        keys |= {column.name for column in view.entity_columns} & set(ITEM_KEYS)
    return sorted(keys)


def build_training_frame(settings: Settings, run_date: date, feature_service: str) -> pd.DataFrame:
    """One row per impression with the features as they were at the impression's timestamp."""
    examples = load_examples(settings, run_date)
    store = get_feature_store(settings)
    use_budgeted_offline_engine(settings)
    entity_df = examples.rename(columns={"event_ts": "event_timestamp"})
    entity_df["event_timestamp"] = pd.to_datetime(entity_df["event_timestamp"], utc=True)
    entity_df = with_item_keys(settings, entity_df, service_item_keys(store, feature_service))
    with within_budget(settings, "feast historical retrieval"):
        features = store.get_historical_features(
            entity_df=entity_df, features=retrieval_features(store, feature_service)
        ).to_df()
    if len(features) != len(entity_df):
        raise RuntimeError(f"historical retrieval returned {len(features)} rows for {len(entity_df)} examples")
    relevance = reads_relevance(feature_service)
    if set(QUERY_FEATURES) & set(feature_columns_for(feature_service, settings.simulator.categories)) or relevance:
        features = with_query_features(settings, features, relevance)
    frame = add_derived_features(features, settings.simulator.categories)
    frame = add_session_features(settings, frame, feature_service)  # unchanged unless the ranker reads the session
    if relevance:  # scored per day with the version trained on earlier labels
        frame = add_relevance(settings, frame)
    frame = frame.sort_values(["request_id", "impression_id"], kind="mergesort").reset_index(drop=True)
    log.info("training frame: %d rows, %d requests", len(frame), frame["request_id"].nunique())
    return frame


def with_query_features(settings: Settings, frame: pd.DataFrame, with_text: bool = False) -> pd.DataFrame:
    """Add QUERY_FEATURES per impression from the query_item_match mart (search impressions only: feed rows stay
    NaN, as serving leaves them without a query); ``with_text``: also the query and the title (for the relevance
    feature)."""
    matches = read_mart(
        settings.marts_export_dir, "query_item_match", ["impression_id", *QUERY_FEATURES, "query", "item_title"]
    )
    matches = matches.rename(columns={"query": QUERY_COLUMN, "item_title": TITLE_COLUMN})
    if not with_text:
        matches = matches.drop(columns=[QUERY_COLUMN, TITLE_COLUMN])
    return frame.merge(matches, on="impression_id", how="left", validate="one_to_one")


def time_split(frame: pd.DataFrame, holdout_days: int, burn_in_days: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split by day: skip the first ``burn_in_days``, hold out the last ``holdout_days``, train on the rest.

    Splitting on whole days keeps every request (one slate, one timestamp) on one side.
    """
    days = sorted(frame["dt"].unique())
    if len(days) <= burn_in_days + holdout_days:
        raise ValueError(
            f"need more than {burn_in_days} burn-in + {holdout_days} holdout days of examples, have {len(days)}"
        )
    first_holdout_day = days[-holdout_days]
    first_train_day = days[burn_in_days]
    holdout_mask = frame["dt"] >= first_holdout_day
    train_mask = (frame["dt"] >= first_train_day) & ~holdout_mask
    return frame[train_mask].reset_index(drop=True), frame[holdout_mask].reset_index(drop=True)


def validation_split(train: pd.DataFrame, validation_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold the last ``validation_days`` training days out for early stopping; (fit, validation).

    With too few training days the validation part is empty and the caller trains without early stopping.
    """
    days = sorted(train["dt"].unique())
    if len(days) <= validation_days:
        return train, train.iloc[0:0]
    validation_mask = train["dt"] >= days[-validation_days]
    return train[~validation_mask].reset_index(drop=True), train[validation_mask].reset_index(drop=True)


def add_slice_flags(settings: Settings, frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``seller_is_new`` (for the new-seller evaluation slice) when the feature service did not bring it.

    Point in time like every feature: the seller snapshot stamped at the start of the row's day. Without a
    seller_features mart (older warehouses) the frame is returned unchanged and the slice is skipped.
    """
    if "seller_is_new" in frame.columns or not mart_exists(settings.marts_export_dir, "seller_features"):
        return frame
    sellers = read_mart(settings.marts_export_dir, "seller_features", ["seller_id", "dt", "seller_is_new"])
    sellers["dt"] = pd.to_datetime(sellers["dt"]).dt.date
    keyed = frame if "seller_id" in frame.columns else with_seller_ids(settings, frame)
    out = keyed.merge(sellers, on=["seller_id", "dt"], how="left", validate="many_to_one")
    return out if "seller_id" in frame.columns else out.drop(columns="seller_id")
