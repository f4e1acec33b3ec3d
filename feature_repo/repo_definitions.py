"""Every Feast definition of the repo, in one place.

`shoprank feast-apply` applies the objects listed here, and the `feast` CLI run inside this folder (which reads
only this module, see .feastignore) finds the same objects, so `feast apply`, `feast ui` and the pipeline agree.
"""

from feature_repo.data_sources import item_features_source, user_features_source
from feature_repo.entities import item, user
from feature_repo.feature_services import ranker_v1
from feature_repo.features import item_features, user_features

DEFINITIONS = [
    user,
    item,
    user_features_source,
    item_features_source,
    user_features,
    item_features,
    ranker_v1,
]
