"""Feature services: one per ranker version. A model records its service's name; serving asks for exactly it."""

from feast import FeatureService

from feature_repo.features import (
    item_features,
    item_window_features,
    seller_features,
    user_category_features,
    user_features,
    user_window_features,
)
from feature_repo.on_demand import user_item_match

ranker_v1 = FeatureService(
    name="ranker_v1",
    features=[user_features, item_features],
    tags={"ranker": "xgboost-lambdamart"},
    owner="ranking@shoprank.dev",
    description="Features of the v1 XGBoost ranker: user and item daily snapshots.",
)

ranker_v2 = FeatureService(
    name="ranker_v2",
    features=[user_features, item_features, seller_features, user_item_match],
    tags={"ranker": "xgboost-lambdamart"},
    owner="ranking@shoprank.dev",
    description="Features of the v2 ranker: v1 plus the seller view and on-demand user-item match features.",
)

# ranker_v3's model also uses query_title_match (shoprank.ranking_features.QUERY_FEATURES), which no view holds: it
# is a function of the request's query and the item's title, with no entity to key it on. Training reads it per
# impression from the query_item_match mart; serving computes it per request (NaN on the feed, as in training).
ranker_v3 = FeatureService(
    name="ranker_v3",
    features=[user_features, item_features, user_window_features, item_window_features, user_category_features],
    tags={"ranker": "xgboost-lambdamart"},
    owner="ranking@shoprank.dev",
    description="Features of the v3 ranker: v1 plus the window marts (1/7/30-day item windows, short-term user "
    "activity, user x category engagement joined on the candidate's category).",
)
