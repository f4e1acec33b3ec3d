"""Every Feast definition of the repo, in one place.

`shoprank feast-apply` applies the objects listed here, and the `feast` CLI run inside this folder (which reads
only this module, see .feastignore) finds the same objects, so `feast apply`, `feast ui` and the pipeline agree.
"""

from feature_repo.data_sources import (
    item_features_source,
    item_window_features_source,
    seller_features_source,
    user_category_features_source,
    user_features_source,
    user_window_features_source,
)
from feature_repo.entities import category, item, seller, user
from feature_repo.feature_services import ranker_v1, ranker_v2, ranker_v3
from feature_repo.features import (
    item_features,
    item_window_features,
    seller_features,
    user_category_features,
    user_features,
    user_window_features,
)
from feature_repo.on_demand import user_item_match

DEFINITIONS = [
    user,
    item,
    seller,
    category,
    user_features_source,
    item_features_source,
    seller_features_source,
    user_window_features_source,
    item_window_features_source,
    user_category_features_source,
    user_features,
    item_features,
    seller_features,
    user_window_features,
    item_window_features,
    user_category_features,
    user_item_match,
    ranker_v1,
    ranker_v2,
    ranker_v3,
]
