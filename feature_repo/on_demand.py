"""On-demand features: computed from the user and item views at retrieval time, online and offline alike.

The logic lives in shoprank.ranking_features (pure pandas), so Feast's transformation and any in-process caller
produce the same values; the columns are the feature contract's ``user_item_match`` group.
"""

import pandas as pd
from feast import Field
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64

from feature_repo.features import FEATURE_VIEWS
from shoprank.feature_contract import COMPUTED, OWNER

_GROUP = COMPUTED["user_item_match"]
_DTYPES = {"price_to_user_band": Float64, "item_in_user_top_category": Int64}


@on_demand_feature_view(
    sources=[FEATURE_VIEWS["user_features"], FEATURE_VIEWS["item_features"]],
    schema=[Field(name=name, dtype=_DTYPES[name]) for name in _GROUP.columns],
    mode="pandas",
    tags={"team": "ranking", "layer": "on-demand"},
    owner=OWNER,
    description=_GROUP.description,
)
def user_item_match(inputs: pd.DataFrame) -> pd.DataFrame:
    # Feast stores this function's source and runs it alone: the import must live inside.
    from shoprank.ranking_features import request_time_features

    return request_time_features(inputs)


ON_DEMAND_VIEWS = {_GROUP.name: user_item_match}
