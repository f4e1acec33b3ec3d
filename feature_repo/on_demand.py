"""On-demand features: computed from the user and item views at retrieval time, online and offline alike.

The logic lives in shoprank.ranking_features (pure pandas), so Feast's transformation and any in-process caller
produce the same values.
"""

import pandas as pd
from feast import Field
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64

from feature_repo.features import item_features, user_features


@on_demand_feature_view(
    sources=[user_features, item_features],
    schema=[
        Field(name="price_to_user_band", dtype=Float64),
        Field(name="item_in_user_top_category", dtype=Int64),
    ],
    mode="pandas",
    tags={"team": "ranking", "layer": "on-demand"},
    owner="ranking@shoprank.dev",
    description="Item price against the user's usual price band; whether the item is in the user's top category.",
)
def user_item_match(inputs: pd.DataFrame) -> pd.DataFrame:
    # Feast stores this function's source and runs it alone: the import must live inside.
    from shoprank.ranking_features import request_time_features

    return request_time_features(inputs)
