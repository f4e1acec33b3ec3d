"""Where a mart's exported parquet lies, in the build area or a published snapshot.

Most marts are one file, ``<mart>.parquet``, rewritten whole by each run (the retrieval snapshot marts, and
item_features, which a dozen readers in serving, training and monitoring open by name). The marts that grow by day
(:data:`DAY_PARTITIONED_MARTS`: the impression marts and the Feast offline sources in
:data:`DAY_PARTITIONED_FEATURE_MARTS`) are a folder ``<mart>/`` of one file per day partition,
``dt=YYYY-MM-DD.parquet`` (each with its ``dt`` column, sorted within the day as the single file was): a daily run
writes only the days it rewrote (dbt_project/macros/incremental.sql: export_mart; a feature mart's D and D + 1), so
its export grows with the day, not the history. Every reader takes the file list from here: read in day order, the
files hold the rows, columns and types the single file held. Feast reads a feature mart's folder itself
(:func:`mart_path`: its DuckDB offline store reads a folder of parquet files as one table).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

# Feast offline sources exported one file per day partition (Feast reads the folder: mart_path).
DAY_PARTITIONED_FEATURE_MARTS = (
    "user_features",
    "user_category_features",
    "user_window_features",
    "item_window_features",
    "seller_features",
)
# Exported one file per day partition.
DAY_PARTITIONED_MARTS = ("training_examples", "query_item_match", *DAY_PARTITIONED_FEATURE_MARTS)
DAY_FILE_GLOB = "dt=*.parquet"


def day_file(marts_dir: Path, name: str, day: date) -> Path:
    """The file of ``day``'s partition of day-partitioned mart ``name``."""
    return marts_dir / name / f"dt={day.isoformat()}.parquet"


def mart_path(marts_dir: Path, name: str) -> Path:
    """The one path that names mart ``name``: the folder of day files of a day-partitioned mart, else
    ``<name>.parquet``. What a Feast FileSource names (Feast's DuckDB offline store reads a folder as one table,
    ``feast apply`` reads its schema with pyarrow's ParquetDataset) and what the build reports for each mart."""
    return marts_dir / name if name in DAY_PARTITIONED_MARTS else marts_dir / f"{name}.parquet"


def file_day(path: Path) -> date:
    """The day of a partition file (``dt=YYYY-MM-DD.parquet``)."""
    return date.fromisoformat(path.name.removeprefix("dt=").removesuffix(".parquet"))


def mart_files(marts_dir: Path, name: str) -> list[Path]:
    """The parquet files of mart ``name`` in ``marts_dir``, in day order: the day files of the folder ``<name>/``,
    else ``[<name>.parquet]``; [] when the mart is not there."""
    folder = marts_dir / name
    days = sorted(folder.glob(DAY_FILE_GLOB)) if folder.is_dir() else []
    path = marts_dir / f"{name}.parquet"
    return days or ([path] if path.is_file() else [])


def mart_exists(marts_dir: Path, name: str) -> bool:
    return bool(mart_files(marts_dir, name))


def require_mart_files(
    marts_dir: Path, name: str, hint: str = "build the warehouse and publish the marts"
) -> list[Path]:
    """:func:`mart_files`, raising FileNotFoundError naming the paths when the mart is missing."""
    files = mart_files(marts_dir, name)
    if not files:
        raise FileNotFoundError(
            f"mart {name!r} is missing: neither {marts_dir / (name + '.parquet')} nor day files in "
            f"{marts_dir / name}: {hint}"
        )
    return files


def sql_files(files: list[Path]) -> str:
    """A DuckDB list literal of file paths: ``read_parquet(<this>)`` reads them as one table."""
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in files) + "]"


def read_mart(marts_dir: Path, name: str, columns: list[str] | None = None, **kwargs: Any) -> pd.DataFrame:
    """Mart ``name`` as one pandas frame (what ``pd.read_parquet(<name>.parquet)`` gave for a single file);
    ``kwargs`` go to ``pyarrow.parquet.read_table`` (e.g. ``filters``)."""
    import pyarrow.parquet as pq

    files = require_mart_files(marts_dir, name)
    source: Any = files[0] if len(files) == 1 else [str(p) for p in files]
    return pq.read_table(source, columns=columns, partitioning=None, **kwargs).to_pandas()


def build_files(directory: Path) -> list[Path]:
    """Every mart file in a build area or snapshot: the single files and the day files of each mart folder."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = sorted(directory.glob("*.parquet"))
    for folder in sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        found += sorted(folder.glob(DAY_FILE_GLOB))
    return found
