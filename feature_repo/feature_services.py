"""Feature services: one per ranker version. A model records its service's name; serving asks for exactly it."""

from feast import FeatureService

from feature_repo.features import item_features, user_features

ranker_v1 = FeatureService(
    name="ranker_v1",
    features=[user_features, item_features],
    tags={"ranker": "xgboost-lambdamart"},
    owner="ranking@shoprank.dev",
    description="Features of the v1 XGBoost ranker: user and item daily snapshots.",
)
