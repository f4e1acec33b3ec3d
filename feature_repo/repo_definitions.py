"""Every Feast definition of the repo, in one place.

`shoprank feast-apply` applies the objects listed here, and the `feast` CLI run inside this folder (which reads
only this module, see .feastignore) finds the same objects, so `feast apply`, `feast ui` and the pipeline agree.
"""

from feature_repo.data_sources import SOURCES
from feature_repo.entities import ENTITIES
from feature_repo.feature_services import FEATURE_SERVICES
from feature_repo.features import FEATURE_VIEWS
from feature_repo.on_demand import ON_DEMAND_VIEWS

DEFINITIONS = [
    *ENTITIES.values(),
    *SOURCES.values(),
    *FEATURE_VIEWS.values(),
    *ON_DEMAND_VIEWS.values(),
    *FEATURE_SERVICES.values(),
]

# The `feast` CLI finds definitions among a module's attributes, not inside lists: expose each by its name.
globals().update({obj.name: obj for obj in DEFINITIONS})
