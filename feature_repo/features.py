"""Feature views: one per entity, since features read together share a view (one online read each)."""

from datetime import timedelta

from feast import FeatureView, Field
from feast.types import Float64, Int64, String

from feature_repo.data_sources import item_features_source, seller_features_source, user_features_source
from feature_repo.entities import item, seller, user
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
