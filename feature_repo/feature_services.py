"""Feature services: one per ranker version declared in the feature contract. A model records its service's
name; serving asks for exactly it."""

from feast import FeatureService

from feature_repo.features import FEATURE_VIEWS
from feature_repo.on_demand import ON_DEMAND_VIEWS
from shoprank.feature_contract import OWNER, RANKERS, service_views

_ALL_VIEWS = {**FEATURE_VIEWS, **ON_DEMAND_VIEWS}

FEATURE_SERVICES = {
    ranker.name: FeatureService(
        name=ranker.name,
        features=[_ALL_VIEWS[name] for name in service_views(ranker.name)],
        tags={"ranker": "xgboost-lambdamart"},
        owner=OWNER,
        description=ranker.description,
    )
    for ranker in RANKERS.values()
}
