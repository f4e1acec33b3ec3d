"""Offline sources, derived from the feature contract: the parquet file dbt exports for each view's mart.

Rows are daily snapshots: a row stamped ``feature_ts`` = day D 00:00 UTC holds features computed only from data
before D, so Feast's point-in-time join never leaks the future into a training example. The marts directory is
the published snapshot (only data that passed every gate).
"""

from feast import FileSource

from shoprank.feature_contract import views
from shoprank.settings import get_settings

_MARTS = get_settings().marts_export_dir

SOURCES = {
    view.name: FileSource(
        name=f"{view.mart}_source",
        path=str(_MARTS / f"{view.mart}.parquet"),
        timestamp_field="feature_ts",
        description=f"dbt mart {view.mart}: {view.description}",
    )
    for view in views(0).values()
}
