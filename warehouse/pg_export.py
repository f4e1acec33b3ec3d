"""Export the marts from the PostgreSQL warehouse to the build area, as the DuckDB target's post-hook does.

Each mart's post-hook on PostgreSQL records its export query (the same rows and order as DuckDB's ``copy ... to``) in
``<schema>._mart_exports`` (dbt_project/macros/incremental.sql: postgres__export_mart). After the build, this module
streams every recorded query into ``settings.marts_build_dir/<mart>.parquet`` with the DuckDB export's column types,
so the gates, `publish`, Feast, training and serving read the same files whichever warehouse built them, and the
services profile needs no DuckDB file.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from shoprank.settings import Settings

EXPORTS_TABLE = "_mart_exports"


def _arrow_type(pg_type: str) -> Any:
    """The parquet column type DuckDB's export writes for a PostgreSQL column type (same marts, same schema)."""
    import pyarrow as pa

    types = {
        "text": pa.string(),
        "varchar": pa.string(),
        "bpchar": pa.string(),
        "int8": pa.int64(),
        "int4": pa.int32(),
        "int2": pa.int16(),
        "float8": pa.float64(),
        "float4": pa.float32(),
        # DuckDB's sums and averages are doubles; the models cast where PostgreSQL would make them numeric.
        "numeric": pa.float64(),
        "bool": pa.bool_(),
        "date": pa.date32(),
        "timestamptz": pa.timestamp("us", tz="UTC"),
        "timestamp": pa.timestamp("us"),
    }
    try:
        return types[pg_type]
    except KeyError:
        raise ValueError(f"mart column type {pg_type} has no parquet mapping (warehouse/pg_export.py)") from None


def _export_query(conn: Any, query: str, path: Path, chunk_rows: int) -> int:
    """Stream ``query`` (a server-side cursor, ``chunk_rows`` at a time) into ``path``, written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from psycopg.postgres import types as pg_types

    staged = path.with_suffix(".parquet.tmp")
    rows = 0
    with conn.cursor(name=f"export_{path.stem}") as cursor:
        cursor.itersize = chunk_rows
        cursor.execute(query)
        batch = cursor.fetchmany(chunk_rows)
        description = cursor.description or []
        schema = pa.schema(
            [(column.name, _arrow_type(pg_types.get(column.type_code).name)) for column in description]  # type: ignore[union-attr]
        )
        with pq.ParquetWriter(staged, schema) as writer:
            while True:
                columns = list(zip(*batch, strict=True)) if batch else [() for _ in schema]
                writer.write_table(
                    pa.table(
                        [pa.array(values, type=field.type) for values, field in zip(columns, schema, strict=True)],
                        schema=schema,
                    )
                )
                rows += len(batch)
                if len(batch) < chunk_rows:
                    break
                batch = cursor.fetchmany(chunk_rows)
    staged.replace(path)
    return rows


def export_marts_from_postgres(settings: Settings) -> dict[str, Any]:
    """Write every mart whose post-hook recorded an export to the build area; returns rows per mart and seconds."""
    import psycopg
    from psycopg import sql

    started = time.perf_counter()
    schema = settings.services.warehouse_schema
    url = settings.services.postgres_url(settings.services.warehouse_database, driver="postgresql")
    settings.marts_build_dir.mkdir(parents=True, exist_ok=True)
    # A mart row as Python objects takes 1-2 kB; a chunk gets a tenth of the step's budget.
    chunk_rows = settings.resources.chunk_rows(bytes_per_row=2000, share=0.1)
    exported: dict[str, int] = {}
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "select 1 from information_schema.tables where table_schema = %s and table_name = %s",
            (schema, EXPORTS_TABLE),
        ).fetchone()
        if found is None:
            return {"marts": {}, "elapsed_s": 0.0}
        recorded = conn.execute(
            sql.SQL("select mart, query from {} order by mart").format(sql.Identifier(schema, EXPORTS_TABLE))
        ).fetchall()
        for mart, query in recorded:
            exported[mart] = _export_query(conn, query, settings.marts_build_dir / f"{mart}.parquet", chunk_rows)
    return {"marts": exported, "elapsed_s": round(time.perf_counter() - started, 2)}
