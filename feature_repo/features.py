"""Feature views: one per mart (a view reads one source), keyed on the mart's entity. Features read together are
read in one online call: serving asks for all of a service's user-side views at once (serving/online_features.py)
and builds its item-side views into an in-process cache."""

from datetime import timedelta

from feast import FeatureView, Field
from feast.types import Float64, Int64, String

from feature_repo.data_sources import (
    item_features_source,
    item_window_features_source,
    seller_features_source,
    user_category_features_source,
    user_features_source,
    user_window_features_source,
)
from feature_repo.entities import category, item, seller, user
from shoprank.ranking_features import category_share_columns
from shoprank.settings import get_settings

_N_CATEGORIES = get_settings().simulator.categories
_OWNER = "ranking@shoprank.dev"

user_features = FeatureView(
    name="user_features",
    entities=[user],
    ttl=timedelta(days=30),
    schema=[
        Field(name="user_impressions_30d", dtype=Int64),
        Field(name="user_clicks_30d", dtype=Int64),
        Field(name="user_purchases_30d", dtype=Int64),
        Field(name="user_ctr_30d", dtype=Float64),
        Field(name="user_avg_click_price_30d", dtype=Float64),
        Field(name="user_is_cold_start", dtype=Int64),
        *[Field(name=name, dtype=Float64) for name in category_share_columns(_N_CATEGORIES)],
    ],
    online=True,
    source=user_features_source,
    tags={"team": "ranking", "layer": "mart"},
    owner=_OWNER,
    description="Long-term (30 day) user activity and category interests.",
)

item_features = FeatureView(
    name="item_features",
    entities=[item],
    ttl=timedelta(days=30),
    schema=[
        Field(name="item_type_code", dtype=Int64),
        Field(name="item_category_id", dtype=Int64),
        Field(name="item_seller_id", dtype=String),
        Field(name="item_price", dtype=Float64),
        Field(name="item_stock_units", dtype=Float64),
        Field(name="item_age_days", dtype=Float64),
        Field(name="item_impressions_7d", dtype=Int64),
        Field(name="item_clicks_7d", dtype=Int64),
        Field(name="item_purchases_7d", dtype=Int64),
        Field(name="item_ctr_7d", dtype=Float64),
        Field(name="item_cvr_7d", dtype=Float64),
        Field(name="item_is_new", dtype=Int64),
    ],
    online=True,
    source=item_features_source,
    tags={"team": "ranking", "layer": "mart"},
    owner=_OWNER,
    description="Item catalogue attributes, stock, and smoothed 7-day engagement.",
)

seller_features = FeatureView(
    name="seller_features",
    entities=[seller],
    ttl=timedelta(days=30),
    schema=[
        Field(name="seller_age_days", dtype=Float64),
        Field(name="seller_is_new", dtype=Int64),
        Field(name="seller_items", dtype=Int64),
        Field(name="seller_impressions_7d", dtype=Int64),
        Field(name="seller_ctr_7d", dtype=Float64),
        Field(name="seller_cvr_7d", dtype=Float64),
    ],
    online=True,
    source=seller_features_source,
    tags={"team": "ranking", "layer": "mart"},
    owner=_OWNER,
    description="Seller age, catalogue size and smoothed 7-day engagement of the seller's items.",
)

# ---- ranker_v3: the window marts. One view per mart (a view reads one source); serving reads the user-side views
# in one online call and builds the item-side ones into its in-process item cache.
item_window_features = FeatureView(
    name="item_window_features",
    entities=[item],
    ttl=timedelta(days=30),
    schema=[
        # The 7-day counts are item_features' (same definition): a view may not repeat another's feature names.
        *[
            Field(name=f"item_{kind}_{days}d", dtype=Int64)
            for days in (1, 7, 30)
            for kind in ("impressions", "clicks", "purchases", "units_sold")
            if not (days == 7 and kind != "units_sold")
        ],
        *[Field(name=f"item_{rate}_{days}d_cat", dtype=Float64) for days in (1, 7, 30) for rate in ("ctr", "cvr")],
        Field(name="item_popularity_trend", dtype=Float64),
        Field(name="item_days_of_cover", dtype=Float64),
    ],
    online=True,
    source=item_window_features_source,
    tags={"team": "ranking", "layer": "mart"},
    owner=_OWNER,
    description="1/7/30-day item counts, CTR/CVR smoothed toward the category prior, popularity trend, days of cover.",
)

user_window_features = FeatureView(
    name="user_window_features",
    entities=[user],
    ttl=timedelta(days=30),
    schema=[
        Field(name="user_impressions_1d", dtype=Int64),
        Field(name="user_clicks_1d", dtype=Int64),
        Field(name="user_purchases_1d", dtype=Int64),
        Field(name="user_ctr_1d", dtype=Float64),
        Field(name="user_purchase_rate_30d", dtype=Float64),
        Field(name="user_price_band", dtype=Int64),
        Field(name="user_days_since_active", dtype=Float64),
        Field(name="user_last_active_day_impressions", dtype=Int64),
        Field(name="user_last_active_day_clicks", dtype=Int64),
    ],
    online=True,
    source=user_window_features_source,
    tags={"team": "ranking", "layer": "mart"},
    owner=_OWNER,
    description="Yesterday's user activity, the last active day, the 30-day purchase rate and the price band.",
)

user_category_features = FeatureView(
    name="user_category_features",
    entities=[user, category],
    # The mart is sparse (a pair without impressions in the window has no row, meaning zero): a one-day TTL makes
    # the point-in-time join see only the snapshot of the example's own day, never an older row of the pair.
    ttl=timedelta(days=1),
    schema=[
        Field(name="uc_impressions_30d", dtype=Int64),
        Field(name="uc_clicks_30d", dtype=Int64),
        Field(name="uc_purchases_30d", dtype=Int64),
        Field(name="uc_ctr_30d", dtype=Float64),
        Field(name="uc_click_share_30d", dtype=Float64),
    ],
    online=True,
    source=user_category_features_source,
    tags={"team": "ranking", "layer": "mart"},
    owner=_OWNER,
    description="The user's 30-day engagement with one item category; joined on the candidate's category.",
)
