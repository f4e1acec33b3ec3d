"""The raw data contract: the tables every producer of raw data writes (the simulator, the real-data adapters, the
service's request and event logs) and the quality gates and the warehouse read.

All timestamps UTC. One folder per table, partitioned by day: ``<raw_dir>/<table>/dt=YYYY-MM-DD/part-0.parquet``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

TABLES = ("events", "items", "sellers", "inventory", "users")
ENTITY_TABLES = ("users", "sellers", "items")
EVENT_TYPES = ("impression", "click", "add_to_cart", "purchase")
ITEM_TYPES = ("product", "video", "live")
# The value domains of the entity tables' attributes.
REGIONS = ("na", "eu", "apac", "latam")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
SELLER_TIERS = ("bronze", "silver", "gold")


SCHEMAS: dict[str, pa.Schema] = {
    "events": pa.schema(
        [
            ("event_id", pa.string()),
            ("event_ts", pa.timestamp("us", tz="UTC")),
            ("event_type", pa.string()),
            ("user_id", pa.string()),
            ("item_id", pa.string()),
            ("request_id", pa.string()),
            ("position", pa.int64()),
            ("surface", pa.string()),
            ("query", pa.string()),
            ("price", pa.float64()),
            ("quantity", pa.int64()),
        ]
    ),
    "items": pa.schema(
        [
            ("item_id", pa.string()),
            ("item_type", pa.string()),
            ("seller_id", pa.string()),
            ("category_id", pa.int64()),
            ("price", pa.float64()),
            ("title", pa.string()),
            ("created_ts", pa.timestamp("us", tz="UTC")),
        ]
    ),
    "sellers": pa.schema(
        [
            ("seller_id", pa.string()),
            ("created_ts", pa.timestamp("us", tz="UTC")),
            ("region", pa.string()),
            ("tier", pa.string()),
        ]
    ),
    "inventory": pa.schema(
        [
            ("item_id", pa.string()),
            ("snapshot_ts", pa.timestamp("us", tz="UTC")),
            ("stock_units", pa.int64()),
        ]
    ),
    "users": pa.schema(
        [
            ("user_id", pa.string()),
            ("signup_ts", pa.timestamp("us", tz="UTC")),
            ("region", pa.string()),
            ("age_band", pa.string()),
        ]
    ),
}


def _pandas_metadata(schema: pa.Schema) -> dict[bytes, bytes]:
    """The pandas metadata a DataFrame of this schema carries, so pandas reads nullable ints back as Int64."""
    dtypes = {
        f.name: "Int64" if pa.types.is_integer(f.type) and f.name in NULLABLE_INTS else f.type.to_pandas_dtype()
        for f in schema
    }
    empty = pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in dtypes.items()})
    empty = empty.astype({f.name: "datetime64[us, UTC]" for f in schema if pa.types.is_timestamp(f.type)})
    return pa.Schema.from_pandas(empty, preserve_index=False).metadata or {}


NULLABLE_INTS = ("position", "quantity")


def write_partition(table: pa.Table | pd.DataFrame, path: Path, schema: pa.Schema | None = None) -> None:
    """Write one partition file atomically (cast to ``schema`` when given), with the pandas metadata that makes
    nullable ints read back as Int64."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, schema=schema, preserve_index=False)
    else:
        table = table.cast(schema) if schema is not None else table
        table = table.replace_schema_metadata(_pandas_metadata(table.schema))
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)  # atomic: readers never see half a partition


def partition_path(raw_dir: Path, table: str, day: date) -> Path:
    """Where a table's day partition lives: ``<raw_dir>/<table>/dt=<day>/part-0.parquet``."""
    return raw_dir / table / f"dt={day.isoformat()}" / "part-0.parquet"
