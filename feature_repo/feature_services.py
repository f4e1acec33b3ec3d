"""Feature services: one per ranker version. A model records its service's name; serving asks for exactly it."""

from feast import FeatureService

from feature_repo.features import item_features, seller_features, user_features
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
