"""Feature views, derived from the feature contract (shoprank/feature_contract.py): one per declared view, each
reading its own mart, keyed on its entities. Features read together are read in one online call: serving asks for
all of a service's user-side views at once (serving/online_features.py) and builds its item-side views into an
in-process cache."""

from datetime import timedelta

from feast import FeatureView, Field
from feast.types import Float64, Int64, String

from feature_repo.data_sources import SOURCES
from feature_repo.entities import ENTITIES
from shoprank.feature_contract import OWNER, View, views
from shoprank.settings import get_settings

_DTYPES = {"int64": Int64, "float64": Float64, "string": String}


def feature_view(view: View) -> FeatureView:
    """The Feast view of one declared view."""
    return FeatureView(
        name=view.name,
        entities=[ENTITIES[name] for name in view.entities],
        ttl=timedelta(days=view.ttl_days),
        schema=[Field(name=f.name, dtype=_DTYPES[f.dtype]) for f in view.features],
        online=True,
        source=SOURCES[view.name],
        tags={"team": "ranking", "layer": "push" if view.source == "push" else "mart"},
        owner=OWNER,
        description=view.description,
    )


FEATURE_VIEWS = {name: feature_view(view) for name, view in views(get_settings().simulator.categories).items()}
