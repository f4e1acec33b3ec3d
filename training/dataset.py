"""Point-in-time training sets: training_examples joined to features through Feast historical retrieval."""

from __future__ import annotations

import logging
from datetime import date

import pandas as pd

from shoprank.feature_store import get_feature_store
from shoprank.ranking_features import add_derived_features
from shoprank.settings import Settings

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
    path = settings.marts_export_dir / "training_examples.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the dbt step first")
    examples = pd.read_parquet(path, columns=EXAMPLE_COLUMNS)
    examples["dt"] = pd.to_datetime(examples["dt"]).dt.date
    examples = examples[examples["dt"] <= run_date]
    if examples.empty:
        raise ValueError(f"training_examples has no rows on or before {run_date}")
    return examples


def with_seller_ids(settings: Settings, frame: pd.DataFrame) -> pd.DataFrame:
    """Add each item's seller_id (the seller view's join key) from the item catalogue; an item's seller is fixed."""
    items = pd.read_parquet(settings.marts_export_dir / "item_features.parquet", columns=["item_id", "item_seller_id"])
    sellers = items.drop_duplicates("item_id").rename(columns={"item_seller_id": "seller_id"})
    return frame.merge(sellers, on="item_id", how="left", validate="many_to_one")


def build_training_frame(settings: Settings, run_date: date, feature_service: str) -> pd.DataFrame:
    """One row per impression with the features as they were at the impression's timestamp."""
    examples = load_examples(settings, run_date)
    store = get_feature_store(settings)
    entity_df = examples.rename(columns={"event_ts": "event_timestamp"})
    entity_df["event_timestamp"] = pd.to_datetime(entity_df["event_timestamp"], utc=True)
    service = store.get_feature_service(feature_service)
    if any(p.name == "seller_features" for p in service.feature_view_projections):
        entity_df = with_seller_ids(settings, entity_df)
    features = store.get_historical_features(entity_df=entity_df, features=service).to_df()
    if len(features) != len(entity_df):
        raise RuntimeError(f"historical retrieval returned {len(features)} rows for {len(entity_df)} examples")
    frame = add_derived_features(features, settings.simulator.categories)
    frame = frame.sort_values(["request_id", "impression_id"], kind="mergesort").reset_index(drop=True)
    log.info("training frame: %d rows, %d requests", len(frame), frame["request_id"].nunique())
    return frame


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
    path = settings.marts_export_dir / "seller_features.parquet"
    if "seller_is_new" in frame.columns or not path.exists():
        return frame
    sellers = pd.read_parquet(path, columns=["seller_id", "dt", "seller_is_new"])
    sellers["dt"] = pd.to_datetime(sellers["dt"]).dt.date
    keyed = frame if "seller_id" in frame.columns else with_seller_ids(settings, frame)
    out = keyed.merge(sellers, on=["seller_id", "dt"], how="left", validate="many_to_one")
    return out if "seller_id" in frame.columns else out.drop(columns="seller_id")
