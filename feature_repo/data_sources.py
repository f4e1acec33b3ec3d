"""Offline sources, derived from the feature contract: the parquet dbt exports for each view's mart, its file or, for a
day-partitioned mart, its folder of day files (shoprank/mart_files.py: mart_path; Feast's DuckDB offline store
reads the folder as one table with ibis.read_parquet, and ``feast apply`` its schema with pyarrow's ParquetDataset).

Rows are daily snapshots: a row stamped ``feature_ts`` = day D 00:00 UTC holds features computed only from data
before D, so Feast's point-in-time join never leaks the future into a training example. The marts directory is
the published snapshot (only data that passed every gate).
"""

from feast import FileSource, PushSource
from feast.data_format import ParquetFormat

from shoprank.feature_contract import View, views
from shoprank.mart_files import mart_path
from shoprank.settings import get_settings

_MARTS = get_settings().marts_export_dir


def file_source(view: View) -> FileSource:
    return FileSource(
        name=f"{view.mart}_source",
        path=str(mart_path(_MARTS, view.mart)),
        # explicit: Feast infers parquet only from a path ending in .parquet, and a folder's does not
        file_format=ParquetFormat(),
        timestamp_field="feature_ts",
        description=f"dbt mart {view.mart}: {view.description}",
    )


def push_source(view: View) -> PushSource:
    """A view written per event by the stream worker (``store.push(PUSH_SOURCE_NAMES[view], rows)``, rows stamped
    ``feature_ts``). Feast requires a batch source; nothing writes it: training computes these features from the raw
    events (training/session_dataset.py) and materialization skips the view (feature_repo/materialize.py)."""
    return PushSource(
        name=push_source_name(view.name),
        batch_source=file_source(view),
        description=f"pushed per event: {view.description}",
    )


def push_source_name(view_name: str) -> str:
    """The push source of a push view: what the stream worker passes to ``FeatureStore.push``."""
    return f"{view_name}_push"


SOURCES: dict[str, FileSource | PushSource] = {
    view.name: push_source(view) if view.source == "push" else file_source(view) for view in views(0).values()
}
